use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;

use super::CallPermit;
use crate::resilience::{BoxError, Classify, ResilienceError, now};

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker): the inner call, or
    /// an immediate [`ResilienceError::CircuitOpen`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Running {
            #[pin]
            future: F,
            permit: CallPermit,
            classifier: C,
            started: Instant,
        },
        Rejected {
            name: Option<Arc<str>>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn running(future: F, permit: CallPermit, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Running {
                future,
                permit,
                classifier,
                started: now(),
            },
        }
    }

    pub(crate) fn rejected(name: Arc<str>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { name: Some(name) },
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, ResilienceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running {
                future,
                permit,
                classifier,
                started,
            } => {
                let result = ready!(future.poll(cx)).map_err(ResilienceError::from_inner);
                let outcome = classifier.classify(result.as_ref());
                permit.record(outcome, *started);
                Poll::Ready(result)
            }
            KindProj::Rejected { name } => Poll::Ready(Err(ResilienceError::CircuitOpen {
                name: name.take().expect("ResponseFuture polled after completion"),
            })),
        }
    }
}
