//! The response future of the layers that admit a call at once, after a bounded wait, or
//! not at all: the [bulkhead](super::bulkhead) and the [rate limiter](super::rate_limit).
//!
//! Both decide in `call`. Admitted at once, the inner call runs inline; made to wait, a
//! boxed future waits (only then is anything allocated) and yields the inner call; refused,
//! the future fails with the layer's error on its first poll, without calling the inner
//! service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::bulkhead::Slot;
use super::{BoxError, ResilienceError};

/// A wait for admission: it yields the inner call, with the bulkhead slot it holds if any,
/// or the refusal.
pub(crate) type Admitting<F> =
    Pin<Box<dyn Future<Output = Result<(F, Option<Slot>), ResilienceError>> + Send>>;

pin_project! {
    /// The response future of [`Bulkhead`](super::bulkhead::Bulkhead) and
    /// [`RateLimit`](super::rate_limit::RateLimit), named by each as its `ResponseFuture`:
    /// see the [module docs](self).
    pub struct AdmissionFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F, slot: Option<Slot> },
        Waiting { wait: Admitting<F> },
        Refused { error: Option<ResilienceError> },
    }
}

impl<F> AdmissionFuture<F> {
    /// The inner call, admitted at once; `slot` is held until it completes.
    pub(crate) fn running(future: F, slot: Option<Slot>) -> Self {
        AdmissionFuture {
            state: State::Running { future, slot },
        }
    }

    /// A call waiting for admission.
    pub(crate) fn waiting(wait: Admitting<F>) -> Self {
        AdmissionFuture {
            state: State::Waiting { wait },
        }
    }

    /// A call refused with `error`.
    pub(crate) fn refused(error: ResilienceError) -> Self {
        AdmissionFuture {
            state: State::Refused { error: Some(error) },
        }
    }
}

impl<F> std::fmt::Debug for AdmissionFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for AdmissionFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, ResilienceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Running { future, slot } => {
                    let result = ready!(future.poll(cx));
                    // The slot is given back as soon as the response head is here, not
                    // when the future is dropped.
                    drop(slot.take());
                    return Poll::Ready(result.map_err(ResilienceError::from_inner));
                }
                StateProj::Waiting { wait } => match ready!(wait.as_mut().poll(cx)) {
                    Ok((future, slot)) => state.set(State::Running { future, slot }),
                    Err(e) => return Poll::Ready(Err(e)),
                },
                StateProj::Refused { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("AdmissionFuture polled after completion")));
                }
            }
        }
    }
}
