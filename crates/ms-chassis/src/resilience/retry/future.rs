//! The response future of [`Retry`](super::Retry): the first attempt inline, then the
//! retry loop (backoff, `Retry-After`, the budget) for a first attempt that failed and may
//! be retried.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use http::request::Parts;
use http::{Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Service, ServiceExt};

use super::layer::Shared;
use super::{ReplayBody, parse_retry_after};
use crate::resilience::{BoxError, Classify, Outcome, ResilienceError, now};

type Retries<T> = Pin<Box<dyn Future<Output = Result<T, ResilienceError>> + Send>>;

pin_project! {
    /// The response future of [`Retry`](super::Retry): the first attempt, inline; then, only if it failed
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

impl<S: Service<Request<B>>, B, C> ResponseFuture<S, B, C> {
    /// The first attempt, `future`; `spare` is a service and a copy of the request for the
    /// next ones, if the request may be retried at all.
    pub(super) fn first(
        future: S::Future,
        shared: Arc<Shared>,
        classifier: C,
        spare: Option<(S, Parts, B)>,
    ) -> Self {
        ResponseFuture {
            state: State::First {
                future,
                shared,
                classifier,
                spare,
            },
        }
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
