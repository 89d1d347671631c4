//! Retry of failed HTTP calls: bounded, spread out, budgeted, and only when safe.
//!
//! A retry turns a transient failure (a dropped connection, a 503 from an instance being
//! replaced) into a success. Done carelessly it turns an outage into a retry storm. So:
//!
//! - **Bounded:** at most `max_attempts` attempts in all.
//! - **Spread out:** exponential backoff with *full jitter*: before attempt `n + 1` the
//!   wait is uniform in `[0, min(max_backoff, initial_backoff * multiplier^(n-1))]`, so
//!   clients that failed together do not retry together.
//! - **Told when:** a failed response with `Retry-After` (delta-seconds or an HTTP-date)
//!   is retried after exactly that long instead. A `Retry-After` beyond `max_retry_after`
//!   means the server will not be back soon: the response is returned, not waited out.
//! - **Budgeted:** retries never exceed `budget.ratio` of requests plus a small
//!   `budget.min_per_second` reserve over `budget.ttl` (Finagle's and Linkerd's retry
//!   budget), so a failing dependency sees at most `1 + ratio` times its normal traffic.
//! - **Safe:** only idempotent methods by default (GET, HEAD, OPTIONS, PUT, DELETE,
//!   TRACE), and only requests whose body can be replayed: the body type implements
//!   [`ReplayBody`], which buffered bodies (`String`, `Vec<u8>`, `Bytes`,
//!   `http_body_util::Full`) do and a streaming `axum::body::Body` does not (it is sent
//!   once and never retried).
//!
//! What is worth retrying is decided by a [`Classify`](crate::resilience::Classify), by
//! default [`HttpClassifier::retryable`](crate::resilience::HttpClassifier::retryable):
//! 5xx and 429 responses, timeouts and transport errors. Rejections by an inner breaker,
//! bulkhead or rate limiter are returned at once, never retried.
//!
//! ```
//! use ms_chassis::resilience::ResilienceMetrics;
//! use ms_chassis::resilience::retry::{RetryConfig, RetryLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut config = RetryConfig::default();
//! config.max_attempts = 4;
//! let retry = RetryLayer::new("books", config, &ResilienceMetrics::unregistered()).unwrap();
//! let flaky = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let svc = ServiceBuilder::new().layer(retry).service_fn(move |_: http::Request<String>| {
//!     let n = flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     let status = if n < 2 { 503 } else { 200 };
//!     async move { Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap()) }
//! });
//! let res = svc.oneshot(http::Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), 200); // the third attempt
//! # }
//! ```

mod budget;
mod future;
mod layer;

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};

pub use future::ResponseFuture;
pub use layer::{Retry, RetryLayer};

use super::durations;
use crate::config::Invalid;

/// A retry policy's settings: the `retry:` block of a client in `config.yaml`.
///
/// ```yaml
/// retry:
///   max_attempts: 3          # attempts in all, the first included; 1 turns retry off
///   initial_backoff: 100ms   # the first backoff's upper bound
///   max_backoff: 2s          # no backoff is longer
///   multiplier: 2            # growth of the bound per attempt
///   max_retry_after: 10s     # a longer Retry-After is not waited out
///   methods: [GET, HEAD, OPTIONS, PUT, DELETE, TRACE]
///   budget: { ratio: 0.2, min_per_second: 10, ttl: 10s }   # null: no budget
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first included. Default 3.
    pub max_attempts: u32,
    /// Upper bound of the first backoff. Default `100ms`.
    #[serde(with = "durations")]
    pub initial_backoff: Duration,
    /// Cap on every backoff. Default `2s`.
    #[serde(with = "durations")]
    pub max_backoff: Duration,
    /// Growth of the backoff bound per attempt. Default 2.
    pub multiplier: f64,
    /// The longest `Retry-After` that is waited out; a longer one ends the retries.
    /// Default `10s`.
    #[serde(with = "durations")]
    pub max_retry_after: Duration,
    /// Methods that may be retried. Default the idempotent ones: GET, HEAD, OPTIONS, PUT,
    /// DELETE, TRACE. Add POST only for endpoints that are idempotent by design.
    pub methods: Vec<String>,
    /// The retry budget; `null` retries without one (not recommended).
    pub budget: Option<RetryBudgetConfig>,
}

/// The retry budget's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RetryBudgetConfig {
    /// Retries allowed per original request, e.g. `0.2` for one retry per five requests.
    /// Default 0.2.
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic, so a quiet client can retry.
    /// Default 10.
    pub min_per_second: u32,
    /// The window over which requests and retries are counted. Default `10s`.
    #[serde(with = "durations")]
    pub ttl: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            max_retry_after: Duration::from_secs(10),
            methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]
                .map(String::from)
                .to_vec(),
            budget: Some(RetryBudgetConfig::default()),
        }
    }
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.parse().map(drop)
    }

    /// Checks the settings and parses the methods.
    pub(crate) fn parse(&self) -> Result<Vec<Method>, Invalid> {
        let err = |field, msg: String| Err(Invalid::new(field, msg));
        if self.max_attempts == 0 {
            return err(
                "max_attempts",
                "expected at least 1 (1 means no retries)".into(),
            );
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return err("multiplier", "expected a number of at least 1".into());
        }
        if self.max_backoff < self.initial_backoff {
            return err("max_backoff", "expected at least initial_backoff".into());
        }
        if let Some(b) = &self.budget {
            if !(b.ratio.is_finite() && b.ratio >= 0.0) {
                return err("budget.ratio", "expected a number of at least 0".into());
            }
            if b.ttl < Duration::from_millis(10) {
                return err("budget.ttl", "expected at least 10ms".into());
            }
        }
        self.methods
            .iter()
            .map(|m| {
                let upper = m.trim().to_ascii_uppercase();
                Method::from_bytes(upper.as_bytes()).map_err(|_| {
                    Invalid::new(
                        "methods",
                        format!("expected HTTP method names, found {m:?}"),
                    )
                })
            })
            .collect()
    }

    /// The upper bound of the backoff before attempt `attempt + 1` (`attempt` >= 1).
    pub(crate) fn backoff_bound(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exp);
        if secs.is_finite() && secs < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_backoff
        }
    }
}

/// A request body that can be sent again. Retry only retries requests whose body says
/// it can; a body that returns `None` is sent once.
///
/// Implemented for the buffered body types; implement it for your own with a cheap
/// clone:
///
/// ```
/// # use ms_chassis::resilience::retry::ReplayBody;
/// #[derive(Clone)]
/// struct Json(std::sync::Arc<[u8]>);
/// impl ReplayBody for Json {
///     fn try_replay(&self) -> Option<Self> {
///         Some(self.clone())
///     }
/// }
/// ```
pub trait ReplayBody: Sized {
    /// A copy of the body for another attempt, or `None` if it cannot be replayed.
    fn try_replay(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($t:ty),* $(,)?) => {$(
        impl ReplayBody for $t {
            fn try_replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

replay_by_clone!(String, Vec<u8>, Bytes, (), &'static str, &'static [u8]);

impl<D: Clone> ReplayBody for http_body_util::Full<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for http_body_util::Empty<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(http_body_util::Empty::new())
    }
}

/// A streaming body: sent once, never retried.
impl ReplayBody for axum::body::Body {
    fn try_replay(&self) -> Option<Self> {
        None
    }
}

/// Reads a `Retry-After` value: delta-seconds, or an HTTP-date (a date in the past means
/// now). `None` if it is neither.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
