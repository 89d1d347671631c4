//! Per-attempt and overall timeouts that fail with [`ResilienceError::Timeout`].
//!
//! tower's own `Timeout` fails with an opaque `Elapsed`; this one says how long it waited,
//! counts in `ms_chassis_timeouts_total{name,scope}`, and passes the other layers' errors
//! through flat. Put a [`TimeoutLayer::per_attempt`] innermost, so a hung call frees its
//! bulkhead slot and counts as a failure for the breaker, and optionally a
//! [`TimeoutLayer::overall`] outermost, so retries and their backoff stay within one
//! deadline. There is no "zero means off": a zero timeout fails every call that is not
//! ready at once; leaving the layer out is how to have no timeout.
//!
//! The deadline is set when the call is made, but its timer is created only if the inner
//! future is not ready on its first poll, as the server's request guard does: a call that
//! completes at once (a cached answer, an immediate rejection by an inner layer) never
//! registers in and removes itself from tokio's timer wheel.
//!
//! The client's overall timeout goes one step further (`TimeoutLayer::armed_late`, for the
//! client only): its timer is created only on the second poll that finds the call pending.
//! An HTTP call is never ready on its first poll, but is usually done on its second (its
//! response woke it), so the overall timer is then never created. This is sound only
//! because something inside is sure to wake the call before the overall deadline: the
//! first attempt's own timeout, never longer than the overall one, and any wait before it
//! (a bulkhead's or rate limiter's `max_wait`) that is no longer either; the client checks
//! that.
//!
//! ```
//! use std::time::Duration;
//!
//! use ms_chassis::resilience::timeout::TimeoutLayer;
//! use ms_chassis::resilience::{ResilienceError, ResilienceMetrics};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = ResilienceMetrics::unregistered();
//! let hangs = ServiceBuilder::new()
//!     .layer(TimeoutLayer::per_attempt("books", Duration::from_millis(10), &metrics))
//!     .service_fn(|_: ()| std::future::pending::<Result<(), std::io::Error>>());
//! let err = hangs.oneshot(()).await.unwrap_err();
//! assert!(matches!(err, ResilienceError::Timeout { after } if after.as_millis() == 10));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use prometheus::IntCounter;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::{BoxError, ResilienceError, ResilienceMetrics};

/// Which deadline a [`TimeoutLayer`] enforces: the `scope` label of its metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutScope {
    /// One attempt (inside retry).
    Attempt,
    /// The whole call, retries and backoff included.
    Overall,
}

impl TimeoutScope {
    pub(crate) fn label(self) -> &'static str {
        match self {
            TimeoutScope::Attempt => "attempt",
            TimeoutScope::Overall => "overall",
        }
    }
}

/// Bounds each call of the wrapped service by a duration.
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    after: Duration,
    scope: TimeoutScope,
    late: bool,
    name: Arc<str>,
    timeouts: IntCounter,
}

impl TimeoutLayer {
    /// A timeout for one attempt, to sit inside retry.
    pub fn per_attempt(name: &str, after: Duration, metrics: &ResilienceMetrics) -> Self {
        Self::new(name, after, TimeoutScope::Attempt, metrics)
    }

    /// A timeout for the whole call, to sit outside retry.
    pub fn overall(name: &str, after: Duration, metrics: &ResilienceMetrics) -> Self {
        Self::new(name, after, TimeoutScope::Overall, metrics)
    }

    fn new(name: &str, after: Duration, scope: TimeoutScope, metrics: &ResilienceMetrics) -> Self {
        TimeoutLayer {
            after,
            scope,
            late: false,
            name: name.into(),
            timeouts: metrics.timeouts(name, scope),
        }
    }

    /// Creates the timer only on the second poll that finds the call pending, not the
    /// first (see the [module docs](self)). Only for a timeout whose inner service is sure
    /// to wake a call, before this deadline, after its first poll.
    pub(crate) fn armed_late(self) -> Self {
        TimeoutLayer { late: true, ..self }
    }

    /// The duration it enforces.
    pub fn duration(&self) -> Duration {
        self.after
    }

    /// Which deadline it enforces.
    pub fn scope(&self) -> TimeoutScope {
        self.scope
    }

    /// The name it was built with (the `name` label of its metric).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            after: self.after,
            late: self.late,
            timeouts: self.timeouts.clone(),
        }
    }
}

/// The timeout's service: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    after: Duration,
    late: bool,
    timeouts: IntCounter,
}

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = ResilienceError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ResilienceError::from_inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let now = super::clock::tokio_now();
        // `tokio::time::sleep`'s fallback, for a duration too long to add: 30 years.
        let deadline = now
            .checked_add(self.after)
            .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30));
        ResponseFuture {
            inner: self.inner.call(req),
            deadline: LazyDeadline::new(deadline),
            late: self.late,
            after: self.after,
            timeouts: self.timeouts.clone(),
        }
    }
}

pin_project! {
    /// A deadline whose timer is created only when first asked about, for futures that
    /// are usually done before they need one (see the [module docs](self)). Shared by
    /// this layer, the client's body reads and the server's request guard.
    #[derive(Debug)]
    pub(crate) struct LazyDeadline {
        deadline: Instant,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl LazyDeadline {
    pub(crate) fn new(deadline: Instant) -> Self {
        LazyDeadline {
            deadline,
            sleep: None,
        }
    }

    /// Whether the deadline has passed. The first call creates the timer, which wakes the
    /// task at the deadline.
    pub(crate) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let mut this = self.project();
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        this.sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }

    /// Whether the timer exists yet.
    fn armed(&self) -> bool {
        self.sleep.is_some()
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        deadline: LazyDeadline,
        // Whether to let one pending poll pass without a timer first.
        late: bool,
        after: Duration,
        timeouts: IntCounter,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, ResilienceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(ResilienceError::from_inner));
        }
        if !this.deadline.armed() && std::mem::take(this.late) {
            return Poll::Pending;
        }
        if this.deadline.poll_expired(cx) {
            this.timeouts.inc();
            return Poll::Ready(Err(ResilienceError::Timeout { after: *this.after }));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::resilience::retry::{RetryConfig, RetryLayer};

    #[tokio::test(start_paused = true)]
    async fn a_hanging_call_fails_at_the_deadline_and_a_quick_one_passes() {
        let metrics = ResilienceMetrics::unregistered();
        let layer = TimeoutLayer::per_attempt("t", Duration::from_millis(250), &metrics);
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|hang: bool| async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>("done")
            }));
        let start = Instant::now();
        let err = svc.clone().oneshot(true).await.unwrap_err();
        assert!(
            matches!(err, ResilienceError::Timeout { after } if after == Duration::from_millis(250))
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited <= Duration::from_millis(252),
            "{waited:?}"
        );
        assert_eq!(svc.clone().oneshot(false).await.unwrap(), "done");
        assert_eq!(layer.timeouts.get(), 1);
    }

    /// The timer is created late, but the deadline counts from the call: a zero timeout
    /// passes a call ready at once and fails one that is not, and a future first polled
    /// 200 ms after its call has 50 ms left of its 250.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_call_not_the_first_poll() {
        let metrics = ResilienceMetrics::unregistered();
        let mut svc = ServiceBuilder::new()
            .layer(TimeoutLayer::per_attempt("t", Duration::ZERO, &metrics))
            .service(service_fn(|hang: bool| async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>("done")
            }));
        assert_eq!(
            svc.ready().await.unwrap().call(false).await.unwrap(),
            "done"
        );
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(matches!(err, ResilienceError::Timeout { .. }));

        let layer = TimeoutLayer::per_attempt("t", Duration::from_millis(250), &metrics);
        let mut svc = ServiceBuilder::new().layer(layer).service(service_fn(|()| {
            std::future::pending::<Result<(), std::io::Error>>()
        }));
        let start = Instant::now();
        let call = svc.ready().await.unwrap().call(());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(call.await.is_err());
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    /// Armed late, the timer waits for the second pending poll, and still fires at the
    /// deadline counted from the call: here the inner future wakes the call at 100 ms.
    #[tokio::test(start_paused = true)]
    async fn armed_late_the_deadline_still_holds() {
        let metrics = ResilienceMetrics::unregistered();
        let layer = TimeoutLayer::overall("t", Duration::from_millis(250), &metrics).armed_late();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|wake: bool| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wake {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>("done")
            }));
        assert_eq!(svc.clone().oneshot(false).await.unwrap(), "done");
        let start = Instant::now();
        let err = svc.oneshot(true).await.unwrap_err();
        assert!(matches!(err, ResilienceError::Timeout { after } if after.as_millis() == 250));
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn inner_errors_pass_through_flat() {
        let metrics = ResilienceMetrics::unregistered();
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::overall("t", Duration::from_secs(1), &metrics))
            .layer(TimeoutLayer::per_attempt(
                "t",
                Duration::from_millis(10),
                &metrics,
            ))
            .service(service_fn(|()| {
                std::future::pending::<Result<(), std::io::Error>>()
            }));
        let err = svc.oneshot(()).await.unwrap_err();
        assert!(
            matches!(err, ResilienceError::Timeout { after } if after == Duration::from_millis(10)),
            "the inner timeout's error, not nested: {err:?}"
        );
    }

    /// Per-attempt timeouts inside retry, an overall one outside: every attempt is cut at
    /// its deadline and the whole call at the overall one, whether the overall timer is
    /// armed at once or late (as the client's is).
    #[tokio::test(start_paused = true)]
    async fn overall_timeout_bounds_retries_of_hanging_attempts() {
        for late in [false, true] {
            overall_bounds_retries(late).await;
        }
    }

    async fn overall_bounds_retries(late: bool) {
        let metrics = ResilienceMetrics::unregistered();
        let overall = TimeoutLayer::overall("t", Duration::from_millis(1000), &metrics);
        let overall = if late { overall.armed_late() } else { overall };
        let attempts = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&attempts);
        let retry = RetryConfig {
            max_attempts: 100,
            budget: None,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            ..RetryConfig::default()
        };
        let svc = ServiceBuilder::new()
            .layer(overall)
            .layer(RetryLayer::new("t", retry, &metrics).unwrap())
            .layer(TimeoutLayer::per_attempt(
                "t",
                Duration::from_millis(300),
                &metrics,
            ))
            .service(service_fn(move |_: http::Request<String>| {
                seen.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<http::Response<()>, std::io::Error>>()
            }));
        let start = Instant::now();
        let err = svc
            .oneshot(http::Request::new(String::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ResilienceError::Timeout { after } if after == Duration::from_secs(1))
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1002),
            "{waited:?}"
        );
        // 300 ms each plus under 1 ms of backoff: the fourth attempt is cut by the overall.
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
    }
}
