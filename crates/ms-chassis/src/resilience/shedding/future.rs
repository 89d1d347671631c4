//! The response future of [`LoadShed`](super::LoadShed). The permit is held until the
//! response head arrives, and gives the limit its latency sample then; a call that an
//! inner layer rejected gives it back without one, since it did no work.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::AdaptivePermit;
use crate::resilience::{BoxError, ResilienceError};

pin_project! {
    /// The response future of [`LoadShed`](super::LoadShed): the inner call holding its
    /// permit, or an immediate [`ResilienceError::Shed`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Running { #[pin] future: F, permit: Option<AdaptivePermit> },
        Shed { name: Option<Arc<str>> },
    }
}

impl<F> ResponseFuture<F> {
    /// The inner call, admitted with `permit`.
    pub(super) fn running(future: F, permit: AdaptivePermit) -> Self {
        ResponseFuture {
            kind: Kind::Running {
                future,
                permit: Some(permit),
            },
        }
    }

    /// A call shed by the limit named `name`.
    pub(super) fn shed(name: Arc<str>) -> Self {
        ResponseFuture {
            kind: Kind::Shed { name: Some(name) },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, ResilienceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running { future, permit } => {
                let result = ready!(future.poll(cx)).map_err(ResilienceError::from_inner);
                let permit = permit
                    .take()
                    .expect("ResponseFuture polled after completion");
                // A rejection by an inner layer did no work: its latency says nothing.
                match &result {
                    Err(e) if e.is_rejected() => drop(permit),
                    _ => permit.complete(),
                }
                Poll::Ready(result)
            }
            KindProj::Shed { name } => Poll::Ready(Err(ResilienceError::Shed {
                name: name.take().expect("ResponseFuture polled after completion"),
            })),
        }
    }
}
