//! [`RetryLayer`] and its service [`Retry`]: the policy shared by every service the layer
//! builds, and the decision in `call` whether a request may be retried at all.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::budget::Budget;
use super::future::ResponseFuture;
use super::{ReplayBody, RetryConfig};
use crate::config::Invalid;
use crate::resilience::metrics::RetryInstruments;
use crate::resilience::{
    BoxError, Classify, HttpClassifier, ResilienceError, ResilienceMetrics, now,
};

/// Retries failed calls: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct RetryLayer<C = HttpClassifier> {
    pub(super) shared: Arc<Shared>,
    classifier: C,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) name: Arc<str>,
    pub(super) config: RetryConfig,
    methods: Vec<Method>,
    pub(super) budget: Option<Budget>,
    pub(super) instruments: RetryInstruments,
}

impl RetryLayer {
    /// A retry policy named `name`, retrying what [`HttpClassifier::retryable`] calls a
    /// failure. Fails if `config` is invalid. Every service the layer builds shares one
    /// budget.
    pub fn new(
        name: &str,
        config: RetryConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        let methods = config.parse()?;
        let budget = config
            .budget
            .as_ref()
            .map(|b| Budget::new(b.ratio, b.min_per_second, b.ttl, now()));
        Ok(RetryLayer {
            shared: Arc::new(Shared {
                name: name.into(),
                methods,
                budget,
                config,
                instruments: metrics.retry(name),
            }),
            classifier: HttpClassifier::retryable(),
        })
    }
}

impl<C> RetryLayer<C> {
    /// Decides what to retry with `classifier` instead:
    /// [`Outcome::Failure`](crate::resilience::Outcome::Failure) is retried.
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            shared: self.shared,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
        }
    }
}

/// The retry service: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct Retry<S, C = HttpClassifier> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
}

impl<S, C, B, RB> Service<Request<B>> for Retry<S, C>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
    C: Classify<Response<RB>>,
{
    type Response = Response<RB>;
    type Error = ResilienceError;
    type Future = ResponseFuture<S, B, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ResilienceError::from_inner)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &self.shared;
        if let Some(budget) = &shared.budget {
            budget.deposit(now());
        }
        // A copy to replay from, if this request may be retried at all.
        let (parts, body) = req.into_parts();
        let copy = if shared.methods.contains(&parts.method) {
            body.try_replay().map(|copy| (parts.clone(), copy))
        } else {
            None
        };
        // The first attempt goes to the service that `poll_ready` made ready, at once; the
        // next ones to a clone, made ready in turn (kept only if there may be next ones).
        let future = self.inner.call(Request::from_parts(parts, body));
        let spare = copy.map(|(parts, body)| (self.inner.clone(), parts, body));
        ResponseFuture::first(future, Arc::clone(shared), self.classifier.clone(), spare)
    }
}
