use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::{CallPermit, CircuitBreakerConfig, CircuitBreakerHandle, Shared};
use crate::config::Invalid;
use crate::resilience::{BoxError, Classify, HttpClassifier, ResilienceError, ResilienceMetrics};

/// Wraps services in one shared [`CircuitBreaker`]. Every service the layer builds, and
/// every clone of them, shares the same breaker state.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = HttpClassifier> {
    shared: Arc<Shared>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A breaker named `name` (the `name` label of its metrics), judging outcomes with
    /// [`HttpClassifier::server_errors`]. Fails if `config` is invalid.
    pub fn new(
        name: &str,
        config: CircuitBreakerConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        let shared = Arc::new(Shared::new(name, config, metrics.breaker(name))?);
        metrics.track_breaker(&shared);
        Ok(CircuitBreakerLayer {
            shared,
            classifier: HttpClassifier::server_errors(),
        })
    }
}

impl CircuitBreakerLayer {
    /// A layer over an existing breaker's state.
    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        CircuitBreakerLayer {
            shared,
            classifier: HttpClassifier::server_errors(),
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Judges outcomes with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// A handle on the breaker, for the admin endpoint and for tests.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            admission: None,
        }
    }
}

/// The breaker's service: see the [module docs](super).
#[derive(Debug)]
pub struct CircuitBreaker<S, C = HttpClassifier> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
    /// Decided in `poll_ready`, used by the next `call`.
    admission: Option<Admission>,
}

#[derive(Debug)]
enum Admission {
    Permitted(CallPermit),
    Rejected,
}

impl<S, C> CircuitBreaker<S, C> {
    /// A handle on the breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A clone shares the breaker but not a permit taken by `poll_ready`.
impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            admission: None,
        }
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
{
    type Response = S::Response;
    type Error = ResilienceError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let shared = &self.shared;
        let admission = self.admission.get_or_insert_with(|| match shared.admit() {
            Some(permit) => Admission::Permitted(permit),
            None => Admission::Rejected,
        });
        match admission {
            // Ready at once: `call` will reject without touching the inner service.
            Admission::Rejected => Poll::Ready(Ok(())),
            Admission::Permitted(_) => match self.inner.poll_ready(cx) {
                Poll::Ready(Err(e)) => {
                    self.admission = None;
                    Poll::Ready(Err(ResilienceError::from_inner(e)))
                }
                other => other.map_err(ResilienceError::from_inner),
            },
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.admission.take() {
            Some(Admission::Permitted(permit)) => {
                ResponseFuture::running(self.inner.call(req), permit, self.classifier.clone())
            }
            Some(Admission::Rejected) => ResponseFuture::rejected(Arc::clone(self.shared.name())),
            None => panic!("CircuitBreaker::call without poll_ready returning Ready first"),
        }
    }
}
