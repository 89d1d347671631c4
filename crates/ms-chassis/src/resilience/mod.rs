//! Resilience as tower layers: circuit breaker, retry, timeout, bulkhead, rate limit and
//! adaptive load shedding.
//!
//! Calls between services fail, and one slow dependency left unchecked takes the whole
//! fleet down with it. Each piece here is a plain [`tower::Layer`], so the same code guards
//! the HTTP client's calls and, where it makes sense, the server's routes. Every layer fails
//! with one error type, [`ResilienceError`], that says *why* a call did not succeed, and
//! every layer exports Prometheus metrics through [`ResilienceMetrics`].
//!
//! # Where the types are
//!
//! Each piece is a module with tower-http's names: `breaker::{CircuitBreaker,
//! CircuitBreakerLayer, CircuitBreakerConfig, ResponseFuture}`, `bulkhead::{Bulkhead,
//! BulkheadLayer, BulkheadConfig, ResponseFuture}`, and so on for [`retry`], [`timeout`],
//! [`rate_limit`] and [`shedding`]: the service, its layer, its settings and its response
//! future, reached through the module only. This root keeps what the pieces share: the
//! error ([`ResilienceError`]), the metrics ([`ResilienceMetrics`]), what counts as a
//! failure ([`Classify`], [`HttpClassifier`], [`Outcome`]) and [`BoxError`].
//!
//! # The order
//!
//! The client stacks them, outermost first, as
//! `timeout(overall)( retry( breaker( bulkhead( timeout(attempt)( call ) ) ) ) )`:
//!
//! - **retry** is outermost so that each attempt is judged by the breaker and bounded by
//!   the bulkhead on its own; an open breaker fails an attempt at once, and retry does not
//!   retry that rejection.
//! - **breaker** sees every attempt's outcome, including per-attempt timeouts, which count
//!   as failures. Rejections by the bulkhead are local overload, not a sick dependency, and
//!   are ignored by the default classifier.
//! - **bulkhead** bounds how many attempts are in flight at once.
//! - **timeout** (per attempt) is innermost, so a hung connection frees its bulkhead slot
//!   and reports a failure to the breaker. An optional overall timeout wraps everything,
//!   backoff sleeps included.
//!
//! ```
//! use std::time::Duration;
//!
//! use ms_chassis::resilience::ResilienceMetrics;
//! use ms_chassis::resilience::breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};
//! use ms_chassis::resilience::bulkhead::{BulkheadConfig, BulkheadLayer};
//! use ms_chassis::resilience::retry::{RetryConfig, RetryLayer};
//! use ms_chassis::resilience::timeout::TimeoutLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let registry = ms_chassis::metrics::prometheus::Registry::new();
//! let metrics = ResilienceMetrics::new(&registry)?;
//! let breaker = CircuitBreakerLayer::new("books", CircuitBreakerConfig::default(), &metrics)?;
//! let handle = breaker.handle(); // for /admin/breakers
//!
//! let books = ServiceBuilder::new()
//!     .layer(TimeoutLayer::overall("books", Duration::from_secs(10), &metrics))
//!     .layer(RetryLayer::new("books", RetryConfig::default(), &metrics)?)
//!     .layer(breaker)
//!     .layer(BulkheadLayer::new("books", BulkheadConfig::default(), &metrics)?)
//!     .layer(TimeoutLayer::per_attempt("books", Duration::from_secs(2), &metrics))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(String::from("a book")))
//!     });
//!
//! let response = books.oneshot(http::Request::new(String::new())).await?;
//! assert_eq!(response.into_body(), "a book");
//! assert_eq!(handle.state(), CircuitState::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # What counts as a failure
//!
//! The breaker and retry ask a [`Classify`] implementation. The default,
//! [`HttpClassifier`], calls a response a failure when its status is 5xx (retry adds 429),
//! and an error a failure when it is a timeout or an error of the wrapped service (connect
//! refused, reset, DNS, TLS: [`ResilienceError::is_connect`] tells the connect ones apart).
//! Rejections by another resilience layer are [`Outcome::Ignored`].

mod admission;
pub mod breaker;
pub mod bulkhead;
pub(crate) mod clock;
pub mod rate_limit;
pub mod retry;
pub mod shedding;
pub mod timeout;

pub(crate) mod durations;
mod metrics;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use shedding::LoadSheddingConfig;

pub(crate) use clock::now;
pub use metrics::ResilienceMetrics;

/// A boxed error of a wrapped service, as tower passes them around.
pub type BoxError = tower::BoxError;

/// Why a call through the resilience layers did not return a response.
///
/// Every layer has this as its error type, and a layer wrapping another layer passes the
/// inner [`ResilienceError`] through unchanged (it is never nested), so a whole stack fails
/// with one flat enum. The errors of the innermost service end up in [`Inner`](Self::Inner);
/// the HTTP client maps them to its own typed errors by downcasting
/// (`error.downcast_ref::<reqwest::Error>()`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResilienceError {
    /// The call, or one attempt of it, took longer than its timeout.
    #[error("timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The circuit breaker is open (or forced open): the call was not attempted.
    #[error("circuit breaker `{name}` is open: call not permitted")]
    CircuitOpen {
        /// The breaker's name.
        name: Arc<str>,
    },
    /// The bulkhead had no free slot within its `max_wait`: the call was not attempted.
    #[error("bulkhead `{name}` is full: call not permitted")]
    BulkheadFull {
        /// The bulkhead's name.
        name: Arc<str>,
    },
    /// The rate limiter had no token within its `max_wait`: the call was not attempted.
    #[error("rate limit `{name}` exceeded: call not permitted")]
    RateLimited {
        /// The rate limiter's name.
        name: Arc<str>,
    },
    /// The load shedder's adaptive concurrency limit was reached: the service is overloaded
    /// and the call was shed without being attempted.
    #[error("load shedder `{name}` is at its concurrency limit: call shed")]
    Shed {
        /// The load shedder's name.
        name: Arc<str>,
    },
    /// The wrapped service failed: a connect error, a reset, a protocol error.
    #[error(transparent)]
    Inner(BoxError),
}

impl ResilienceError {
    /// Wraps an error of the wrapped service. A [`ResilienceError`] coming from an inner
    /// layer is passed through as it is, not nested.
    pub fn from_inner(error: impl Into<BoxError>) -> Self {
        match error.into().downcast::<ResilienceError>() {
            Ok(own) => *own,
            Err(other) => ResilienceError::Inner(other),
        }
    }

    /// A short, stable name for the variant: `timeout`, `circuit_open`, `bulkhead_full`,
    /// `rate_limited`, `shed` or `inner`. Suitable for metric labels and problem types.
    /// (As [`ClientErrorKind::name`](crate::client::ClientErrorKind::name) is for the
    /// client's errors.)
    pub fn name(&self) -> &'static str {
        match self {
            ResilienceError::Timeout { .. } => "timeout",
            ResilienceError::CircuitOpen { .. } => "circuit_open",
            ResilienceError::BulkheadFull { .. } => "bulkhead_full",
            ResilienceError::RateLimited { .. } => "rate_limited",
            ResilienceError::Shed { .. } => "shed",
            ResilienceError::Inner(_) => "inner",
        }
    }

    /// True when a resilience layer refused the call without attempting it (open breaker,
    /// full bulkhead, exhausted rate limit, shed load). Such calls never reached the
    /// dependency.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            ResilienceError::CircuitOpen { .. }
                | ResilienceError::BulkheadFull { .. }
                | ResilienceError::RateLimited { .. }
                | ResilienceError::Shed { .. }
        )
    }

    /// True for [`ResilienceError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, ResilienceError::Timeout { .. })
    }

    /// True when the wrapped service failed to connect: somewhere in the error's source
    /// chain is an I/O error that only connecting gives: connection refused, or an
    /// unreachable host or network, or an address not available. A reset, an abort or a
    /// timeout can come after the connection was made (a reset in the middle of a response
    /// is not a connect error), so they are not counted here; a client that knows the
    /// phase says so itself (reqwest's `is_connect`, which the chassis's client prefers).
    pub fn is_connect(&self) -> bool {
        let ResilienceError::Inner(inner) = self else {
            return false;
        };
        let mut cause: Option<&(dyn StdError + 'static)> = Some(inner.as_ref());
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                return matches!(
                    io.kind(),
                    ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
                );
            }
            cause = e.source();
        }
        false
    }

    /// The status a server answers with when this error ends a request it was serving:
    /// 504 for a timeout, 503 for an open breaker, a full bulkhead or shed load, 429 when
    /// rate limited, 502 when the wrapped service failed.
    pub fn status_hint(&self) -> StatusCode {
        match self {
            ResilienceError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ResilienceError::CircuitOpen { .. }
            | ResilienceError::BulkheadFull { .. }
            | ResilienceError::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ResilienceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ResilienceError::Inner(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The inner error of [`ResilienceError::Inner`], if that is what this is.
    pub fn inner(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            ResilienceError::Inner(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// How a finished call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed: the breaker records a failure, retry may try again.
    Failure,
    /// The call does not count either way (the breaker frees its permit and records
    /// nothing; retry does not retry).
    Ignored,
}

/// Decides what counts as a failure, for the breaker and for retry.
///
/// Implemented for [`HttpClassifier`] and for any
/// `Fn(Result<&Res, &ResilienceError>) -> Outcome + Clone + Send + Sync + 'static`, so a
/// closure is enough for a custom rule:
///
/// ```
/// use ms_chassis::resilience::{Outcome, ResilienceError};
/// // Count only 503s and timeouts.
/// let classify = |r: Result<&http::Response<()>, &ResilienceError>| match r {
///     Ok(res) if res.status() == 503 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(e) if e.is_timeout() => Outcome::Failure,
///     Err(_) => Outcome::Ignored,
/// };
/// # fn takes<C: ms_chassis::resilience::Classify<http::Response<()>>>(_: C) {}
/// # takes(classify);
/// ```
pub trait Classify<Res>: Clone + Send + Sync + 'static {
    /// Classifies one finished call (or attempt).
    fn classify(&self, result: Result<&Res, &ResilienceError>) -> Outcome;
}

impl<Res, F> Classify<Res> for F
where
    F: Fn(Result<&Res, &ResilienceError>) -> Outcome + Clone + Send + Sync + 'static,
{
    fn classify(&self, result: Result<&Res, &ResilienceError>) -> Outcome {
        self(result)
    }
}

/// The default classifier for `http::Response<B>` results.
///
/// - A response is a failure when `failure_status(status)` says so: 5xx for the breaker
///   ([`HttpClassifier::server_errors`], the [`Default`]), 5xx and 429 for retry
///   ([`HttpClassifier::retryable`]).
/// - An error is classified by `error_outcome`: by default timeouts and errors of the
///   wrapped service (connect errors and other transport failures) are failures;
///   rejections by other resilience layers are ignored.
#[derive(Clone, Copy, Debug)]
pub struct HttpClassifier {
    failure_status: fn(StatusCode) -> bool,
    error_outcome: fn(&ResilienceError) -> Outcome,
}

impl HttpClassifier {
    /// 5xx responses, timeouts and transport errors are failures. The breaker's default.
    pub fn server_errors() -> Self {
        HttpClassifier {
            failure_status: |s| s.is_server_error(),
            error_outcome: default_error_outcome,
        }
    }

    /// 5xx and 429 responses, timeouts and transport errors are failures. Retry's default.
    pub fn retryable() -> Self {
        HttpClassifier {
            failure_status: |s| s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS,
            error_outcome: default_error_outcome,
        }
    }

    /// Replaces the rule for responses.
    pub fn failure_status(mut self, rule: fn(StatusCode) -> bool) -> Self {
        self.failure_status = rule;
        self
    }

    /// Replaces the rule for errors.
    pub fn error_outcome(mut self, rule: fn(&ResilienceError) -> Outcome) -> Self {
        self.error_outcome = rule;
        self
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::server_errors()
    }
}

fn default_error_outcome(e: &ResilienceError) -> Outcome {
    if e.is_rejected() {
        Outcome::Ignored
    } else {
        Outcome::Failure
    }
}

impl<B> Classify<http::Response<B>> for HttpClassifier {
    fn classify(&self, result: Result<&http::Response<B>, &ResilienceError>) -> Outcome {
        match result {
            Ok(res) if (self.failure_status)(res.status()) => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(e) => (self.error_outcome)(e),
        }
    }
}

/// `resilience:` the service's own resilience settings (the clients' are under
/// `clients.<name>`).
///
/// ```yaml
/// resilience:
///   load_shedding: { enabled: false, ... }   # see LoadSheddingConfig
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ResilienceSection {
    /// `resilience.load_shedding`: adaptive load shedding of the user's routes. Off by
    /// default; see [`LoadSheddingConfig`].
    pub load_shedding: LoadSheddingConfig,
}

impl ResilienceSection {
    /// Rules that types alone cannot express; keys relative to `resilience`.
    pub(crate) fn validate(&self, rules: &mut crate::config::Rules<'_>) {
        let Err(e) = self.load_shedding.validate() else {
            return;
        };
        // The limit rules compare three keys: none may stand for a dropped value.
        let compared = LoadSheddingConfig::LIMIT_FIELDS.contains(&e.key.as_str());
        let dropped = LoadSheddingConfig::LIMIT_FIELDS
            .iter()
            .any(|f| rules.defaulted(&format!("load_shedding.{f}")));
        if !(compared && dropped) {
            rules.section("load_shedding").extend([e]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn inner_resilience_errors_are_passed_through_not_nested() {
        let inner = ResilienceError::Timeout {
            after: Duration::from_millis(5),
        };
        let outer = ResilienceError::from_inner(inner);
        assert!(matches!(outer, ResilienceError::Timeout { after } if after.as_millis() == 5));
        assert_eq!(outer.to_string(), "timed out after 5ms");

        let io = std::io::Error::other("boom");
        let outer = ResilienceError::from_inner(io);
        assert_eq!(outer.name(), "inner");
        assert_eq!(outer.status_hint(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ResilienceError::RateLimited { name: "r".into() }.status_hint(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(
            outer
                .inner()
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .is_some()
        );
    }

    #[test]
    fn connect_errors_are_found_down_the_source_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(ResilienceError::from_inner(Wrapper(refused)).is_connect());
        let other = std::io::Error::from(std::io::ErrorKind::InvalidData);
        assert!(!ResilienceError::from_inner(Wrapper(other)).is_connect());
        // A reset may come after connecting: in the middle of a response, say.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!ResilienceError::from_inner(Wrapper(reset)).is_connect());
        assert!(
            !ResilienceError::Timeout {
                after: Duration::ZERO
            }
            .is_connect()
        );
    }

    #[test]
    fn default_classifier_counts_5xx_timeouts_and_transport_errors() {
        let c = HttpClassifier::default();
        let res = |s: u16| http::Response::builder().status(s).body(()).unwrap();
        assert_eq!(c.classify(Ok(&res(200))), Outcome::Success);
        assert_eq!(c.classify(Ok(&res(404))), Outcome::Success);
        assert_eq!(c.classify(Ok(&res(429))), Outcome::Success);
        assert_eq!(c.classify(Ok(&res(500))), Outcome::Failure);
        assert_eq!(c.classify(Ok(&res(503))), Outcome::Failure);
        let timeout = ResilienceError::Timeout {
            after: Duration::ZERO,
        };
        assert_eq!(
            Classify::<http::Response<()>>::classify(&c, Err(&timeout)),
            Outcome::Failure
        );
        let refused = ResilienceError::from_inner(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ));
        assert_eq!(
            Classify::<http::Response<()>>::classify(&c, Err(&refused)),
            Outcome::Failure
        );
        let full = ResilienceError::BulkheadFull { name: "b".into() };
        assert_eq!(
            Classify::<http::Response<()>>::classify(&c, Err(&full)),
            Outcome::Ignored
        );
        let r = HttpClassifier::retryable();
        assert_eq!(r.classify(Ok(&res(429))), Outcome::Failure);
        let custom = HttpClassifier::default().failure_status(|s| s == StatusCode::CONFLICT);
        assert_eq!(custom.classify(Ok(&res(409))), Outcome::Failure);
        assert_eq!(custom.classify(Ok(&res(500))), Outcome::Success);
    }
}
