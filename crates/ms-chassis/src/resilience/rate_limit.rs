//! A rate limiter: a token bucket of `burst` tokens refilled at `rate` per `period`.
//!
//! It protects a dependency that has a quota (or the service itself, on the server side)
//! from more traffic than agreed. A call takes a token; with none left it waits up to
//! `max_wait` for one, reserving it so later callers queue behind it, or fails with
//! [`ResilienceError::RateLimited`] without being attempted. `max_wait: 0` rejects at once.
//!
//! The bucket is kept as GCRA (one "theoretical arrival time"), which is exact in integer
//! time, needs no refill task, and costs one mutex-guarded comparison per call. A waiting
//! call that is dropped keeps its reservation: the token is spent.
//!
//! ```
//! use std::time::Duration;
//!
//! use ms_chassis::resilience::ResilienceMetrics;
//! use ms_chassis::resilience::rate_limit::{RateLimitConfig, RateLimitLayer};
//!
//! let mut config = RateLimitConfig::default();
//! config.rate = 50; // 50 calls
//! config.period = Duration::from_secs(1); // per second
//! config.burst = Some(10); // at most 10 at once
//! config.max_wait = Duration::from_millis(100);
//! let layer = RateLimitLayer::new("books", config, &ResilienceMetrics::unregistered()).unwrap();
//! # drop(layer);
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::admission::AdmissionFuture;
use super::{BoxError, ResilienceError, ResilienceMetrics, durations, now};
use crate::config::Invalid;

/// A rate limiter's settings.
///
/// ```yaml
/// rate_limit: { rate: 100, period: 1s, burst: null, max_wait: 0s }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Tokens added per `period`. Default 100.
    pub rate: u32,
    /// The period of `rate`. Default `1s`.
    #[serde(with = "durations")]
    pub period: Duration,
    /// Bucket size: calls allowed at once after a quiet spell. Default (`null`): `rate`.
    pub burst: Option<u32>,
    /// How long a call waits for a token; `0` (the default) rejects at once.
    #[serde(with = "durations")]
    pub max_wait: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: 100,
            period: Duration::from_secs(1),
            burst: None,
            max_wait: Duration::ZERO,
        }
    }
}

impl RateLimitConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let err = |field, msg: &str| Err(Invalid::new(field, msg));
        if self.rate == 0 {
            return err("rate", "expected at least 1");
        }
        if self.period.is_zero() {
            return err("period", "expected a duration above 0");
        }
        if self.burst == Some(0) {
            return err("burst", "expected at least 1, or null for `rate`");
        }
        if (self.period / self.rate).is_zero() {
            return err("rate", "expected at most one call per nanosecond");
        }
        Ok(())
    }
}

/// Wraps services in one shared rate limiter.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    bucket: Mutex<Bucket>,
    max_wait: Duration,
    limited: IntCounter,
}

/// GCRA: `tat` is when the bucket will be full again; one token is `interval` of it.
#[derive(Debug)]
struct Bucket {
    tat: Instant,
    interval: Duration,
    /// How far `tat` may run ahead of now: `interval * (burst - 1)`.
    tolerance: Duration,
}

/// What the bucket says about one call.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Go,
    Wait(Duration),
    Reject,
}

impl Bucket {
    fn take(&mut self, now: Instant, max_wait: Duration) -> Verdict {
        let from = self.tat.max(now);
        let earliest = from.checked_sub(self.tolerance).unwrap_or(now);
        if earliest <= now {
            self.tat = from + self.interval;
            return Verdict::Go;
        }
        let wait = earliest - now;
        if wait <= max_wait {
            self.tat = from + self.interval;
            Verdict::Wait(wait)
        } else {
            Verdict::Reject
        }
    }
}

impl RateLimitLayer {
    /// A rate limiter named `name`. Fails on a zero rate, period or burst.
    pub fn new(
        name: &str,
        config: RateLimitConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        config.validate()?;
        let burst = config.burst.unwrap_or(config.rate);
        let interval = config.period / config.rate;
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                name: name.into(),
                bucket: Mutex::new(Bucket {
                    tat: now(),
                    interval,
                    tolerance: interval.saturating_mul(burst - 1),
                }),
                max_wait: config.max_wait,
                limited: metrics.rate_limited(name),
            }),
        })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The rate limiter's service: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    Req: Send + 'static,
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
        let verdict = self
            .shared
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(now(), self.shared.max_wait);
        match verdict {
            Verdict::Go => AdmissionFuture::running(self.inner.call(req), None),
            Verdict::Reject => {
                self.shared.limited.inc();
                AdmissionFuture::refused(ResilienceError::RateLimited {
                    name: Arc::clone(&self.shared.name),
                })
            }
            Verdict::Wait(wait) => {
                // Wait with the service that `poll_ready` made ready; keep a clone.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                AdmissionFuture::waiting(Box::pin(async move {
                    tokio::time::sleep(wait).await;
                    Ok((ready.call(req), None))
                }))
            }
        }
    }
}

/// The response future of [`RateLimit`]: a call admitted, waiting for a token, or refused.
pub type ResponseFuture<F> = AdmissionFuture<F>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant as TokioInstant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    fn config(rate: u32, period_ms: u64, burst: Option<u32>, max_wait_ms: u64) -> RateLimitConfig {
        RateLimitConfig {
            rate,
            period: Duration::from_millis(period_ms),
            burst,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_one_token_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tat: t0,
            interval: Duration::from_millis(100),
            tolerance: Duration::from_millis(200),
        };
        let ms = Duration::from_millis;
        assert_eq!(b.take(t0, ms(0)), Verdict::Go);
        assert_eq!(b.take(t0, ms(0)), Verdict::Go);
        assert_eq!(b.take(t0, ms(0)), Verdict::Go);
        assert_eq!(b.take(t0, ms(0)), Verdict::Reject, "burst of 3 used up");
        assert_eq!(b.take(t0 + ms(99), ms(0)), Verdict::Reject);
        assert_eq!(b.take(t0 + ms(100), ms(0)), Verdict::Go);
        assert_eq!(b.take(t0 + ms(100), ms(250)), Verdict::Wait(ms(100)));
        assert_eq!(b.take(t0 + ms(100), ms(250)), Verdict::Wait(ms(200)));
        assert_eq!(
            b.take(t0 + ms(100), ms(250)),
            Verdict::Reject,
            "300 ms > max_wait"
        );
        // After a long pause the bucket is full again, but no fuller.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later, ms(0)), Verdict::Go);
        }
        assert_eq!(b.take(later, ms(0)), Verdict::Reject);
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_burst_calls_are_rejected_without_reaching_the_service() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let layer = RateLimitLayer::new(
            "r",
            config(5, 1000, Some(3), 0),
            &ResilienceMetrics::unregistered(),
        )
        .unwrap();
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(move |()| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::io::Error>(()) }
            }));
        let mut results = vec![];
        for _ in 0..5 {
            results.push(svc.clone().oneshot(()).await);
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 3);
        assert!(
            results[3..]
                .iter()
                .all(|r| matches!(r, Err(ResilienceError::RateLimited { .. })))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(layer.shared.limited.get(), 2);
        // 5 per second: one token every 200 ms.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(svc.clone().oneshot(()).await.is_ok());
        assert!(svc.clone().oneshot(()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn callers_wait_for_their_token_when_allowed_to() {
        let layer = RateLimitLayer::new(
            "r",
            config(10, 1000, Some(1), 1000),
            &ResilienceMetrics::unregistered(),
        )
        .unwrap();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|()| async {
                Ok::<_, std::io::Error>(TokioInstant::now())
            }));
        let start = TokioInstant::now();
        let handles: Vec<_> = (0..5)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        let mut at = vec![];
        for h in handles {
            at.push(h.await.unwrap().unwrap() - start);
        }
        at.sort();
        // One every 100 ms, in order, none early.
        for (i, t) in at.iter().enumerate() {
            let want = Duration::from_millis(100 * i as u64);
            assert!(
                *t >= want && *t <= want + Duration::from_millis(2),
                "call {i} at {t:?}"
            );
        }
        // The bucket is now 100 ms ahead. Twelve callers at once would wait 100, 200, ...,
        // 1200 ms: a 1 s max_wait admits ten, and the last two are rejected at once.
        let t = TokioInstant::now();
        let burst: Vec<_> = (0..12)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        let mut rejected = 0;
        for h in burst {
            match h.await.unwrap() {
                Err(ResilienceError::RateLimited { .. }) => rejected += 1,
                Err(e) => panic!("{e}"),
                Ok(_) => {}
            }
        }
        assert_eq!(rejected, 2);
        let took = TokioInstant::now() - t;
        assert!(
            took >= Duration::from_millis(1000) && took <= Duration::from_millis(1010),
            "{took:?}"
        );
    }

    #[test]
    fn zero_rate_is_a_config_error() {
        let e = RateLimitLayer::new(
            "r",
            config(0, 1000, None, 0),
            &ResilienceMetrics::unregistered(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "rate: expected at least 1");
    }
}
