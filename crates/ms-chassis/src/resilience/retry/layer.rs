use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use http::request::Parts;
use http::{Method, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt};

use super::budget::Budget;
use super::{ReplayBody, RetryConfig, parse_retry_after};
use crate::config::Invalid;
use crate::resilience::metrics::RetryInstruments;
use crate::resilience::{
    BoxError, Classify, HttpClassifier, Outcome, ResilienceError, ResilienceMetrics, now,
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

type Retries<T> = Pin<Box<dyn Future<Output = Result<T, ResilienceError>> + Send>>;

pin_project! {
    /// The response future of [`Retry`]: the first attempt, inline; then, only if it failed
    /// and may be retried, the backoff and further attempts, boxed. Most calls succeed at
    /// the first attempt, and so allocate nothing here.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, C>
    where
        S: Service<Request<B>>,
    {
        First {
            #[pin]
            future: S::Future,
            shared: Arc<Shared>,
            classifier: C,
            // A service for the next attempts, and a copy of the request to replay, if it
            // may be retried at all.
            spare: Option<(S, Parts, B)>,
        },
        Retrying {
            retries: Retries<S::Response>,
        },
    }
}

impl<S: Service<Request<B>>, B, C> std::fmt::Debug for ResponseFuture<S, B, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, C, B, RB> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
    C: Classify<Response<RB>>,
{
    type Output = Result<Response<RB>, ResilienceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Retrying { retries } => return retries.as_mut().poll(cx),
                StateProj::First {
                    future,
                    shared,
                    classifier,
                    spare,
                } => {
                    let result = ready!(future.poll(cx)).map_err(ResilienceError::from_inner);
                    if classifier.classify(result.as_ref()) != Outcome::Failure {
                        return Poll::Ready(result);
                    }
                    let Some((svc, parts, body)) = spare.take() else {
                        shared.instruments.not_retryable.inc();
                        return Poll::Ready(result);
                    };
                    let retries = Box::pin(retries(
                        svc,
                        (parts, body),
                        Arc::clone(shared),
                        classifier.clone(),
                        result,
                    ));
                    state.set(State::Retrying { retries });
                }
            }
        }
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
        ResponseFuture {
            state: State::First {
                future,
                shared: Arc::clone(shared),
                classifier: self.classifier.clone(),
                spare,
            },
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

/// The attempts after a first one that failed with `result`, and the backoff before each.
async fn retries<S, C, B, RB>(
    mut svc: S,
    spare: (Parts, B),
    shared: Arc<Shared>,
    classifier: C,
    mut result: Result<Response<RB>, ResilienceError>,
) -> Result<Response<RB>, ResilienceError>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    C: Classify<Response<RB>>,
{
    let mut attempt = 1;
    loop {
        let next = match plan_retry(&shared, attempt, &result, &spare) {
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
        result = svc
            .call(next_req)
            .await
            .map_err(ResilienceError::from_inner);
        if classifier.classify(result.as_ref()) != Outcome::Failure {
            return result;
        }
        attempt += 1;
    }
}

/// The wait and the request for the next attempt, or why there is none. The budget is
/// asked last, so it is spent only on a retry that will happen.
fn plan_retry<B: ReplayBody, RB>(
    shared: &Shared,
    attempt: u32,
    result: &Result<Response<RB>, ResilienceError>,
    (parts, body): &(Parts, B),
) -> Result<(Duration, Request<B>), Stop> {
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
