use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::request::Parts;
use http::{Method, Request, Response, header};
use tower::{Layer, Service, ServiceExt};

use super::budget::Budget;
use super::{ReplayBody, RetryConfig, parse_retry_after};
use crate::resilience::metrics::RetryInstruments;
use crate::resilience::{
    BoxError, Classify, HttpClassifier, Outcome, ResilienceConfigError, ResilienceError,
    ResilienceMetrics, now,
};

/// Retries failed calls: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct RetryLayer<C = HttpClassifier> {
    pub(super) shared: Arc<Shared>,
    classifier: C,
}

#[derive(Debug)]
pub(super) struct Shared {
    name: Arc<str>,
    config: RetryConfig,
    methods: Vec<Method>,
    budget: Option<Budget>,
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
    ) -> Result<Self, ResilienceConfigError> {
        let methods = config.parse(name)?;
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
    /// Decides what to retry with `classifier` instead: [`Outcome::Failure`] is retried.
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

/// The response future of [`Retry`]: the attempts, the backoff between them.
pub struct ResponseFuture<T> {
    inner: Pin<Box<dyn Future<Output = Result<T, ResilienceError>> + Send>>,
}

impl<T> std::fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, ResilienceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
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
    type Future = ResponseFuture<Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ResilienceError::from_inner)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(budget) = &self.shared.budget {
            budget.deposit(now());
        }
        // The first attempt goes to the service that `poll_ready` made ready; keep a clone.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(attempts(
                ready,
                req,
                Arc::clone(&self.shared),
                self.classifier.clone(),
            )),
        }
    }
}

/// Why a failed attempt is not retried.
enum Stop {
    NotRetryable,
    AttemptsExhausted,
    RetryAfterTooLong,
    BudgetExhausted,
}

async fn attempts<S, C, B, RB>(
    mut svc: S,
    req: Request<B>,
    shared: Arc<Shared>,
    classifier: C,
) -> Result<Response<RB>, ResilienceError>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    C: Classify<Response<RB>>,
{
    let (parts, body) = req.into_parts();
    // A copy to replay from, if this request may be retried at all.
    let spare: Option<(Parts, B)> = if shared.methods.contains(&parts.method) {
        body.try_replay().map(|copy| (parts.clone(), copy))
    } else {
        None
    };
    let mut req = Request::from_parts(parts, body);
    let mut attempt = 1;
    loop {
        let result = svc.call(req).await.map_err(ResilienceError::from_inner);
        if classifier.classify(result.as_ref()) != Outcome::Failure {
            return result;
        }
        let next = match plan_retry(&shared, attempt, &result, spare.as_ref()) {
            Ok(next) => next,
            Err(stop) => {
                let i = &shared.instruments;
                match stop {
                    Stop::NotRetryable => i.not_retryable.inc(),
                    Stop::AttemptsExhausted => i.attempts_exhausted.inc(),
                    Stop::RetryAfterTooLong => i.retry_after_too_long.inc(),
                    Stop::BudgetExhausted => i.budget_exhausted.inc(),
                }
                return result;
            }
        };
        let (delay, next_req) = next;
        drop(result);
        shared.instruments.retried.inc();
        tracing::debug!(
            client = %shared.name,
            attempt = attempt + 1,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
        svc.ready().await.map_err(ResilienceError::from_inner)?;
        req = next_req;
        attempt += 1;
    }
}

/// The wait and the request for the next attempt, or why there is none. The budget is
/// asked last, so it is spent only on a retry that will happen.
fn plan_retry<B: ReplayBody, RB>(
    shared: &Shared,
    attempt: u32,
    result: &Result<Response<RB>, ResilienceError>,
    spare: Option<&(Parts, B)>,
) -> Result<(Duration, Request<B>), Stop> {
    let (parts, body) = spare.ok_or(Stop::NotRetryable)?;
    if attempt >= shared.config.max_attempts {
        return Err(Stop::AttemptsExhausted);
    }
    let retry_after = result
        .as_ref()
        .ok()
        .and_then(|res| res.headers().get(header::RETRY_AFTER))
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let delay = match retry_after {
        Some(wait) if wait > shared.config.max_retry_after => return Err(Stop::RetryAfterTooLong),
        Some(wait) => wait,
        None => shared
            .config
            .backoff_bound(attempt)
            .mul_f64(fastrand::f64()),
    };
    let body = body.try_replay().ok_or(Stop::NotRetryable)?;
    if let Some(budget) = &shared.budget
        && !budget.try_withdraw(now())
    {
        return Err(Stop::BudgetExhausted);
    }
    Ok((delay, Request::from_parts(parts.clone(), body)))
}
