//! Adaptive load shedding: a concurrency limit that follows latency, and sheds what is
//! beyond it.
//!
//! Past its capacity a service gets nothing more done by taking more work; it only queues.
//! Every accepted request then waits longer, callers time out and retry, and the queue
//! grows. A fixed concurrency cap (`server.limits.concurrency`) stops the worst of it, but
//! the right number moves with every deploy, dependency and machine. [`AdaptiveLimit`]
//! finds it from what callers feel, latency, and sheds the excess at once (503 and
//! `Retry-After` on the server, [`ResilienceError::Shed`](super::ResilienceError::Shed) in
//! [`LoadShedLayer`]), so that the requests it accepts keep a bounded latency.
//!
//! # The algorithm
//!
//! A latency gradient, as in Netflix concurrency-limits' `Gradient2` and Envoy's adaptive
//! concurrency filter. It was chosen over a CPU-based shedder (go-zero's) because CPU is only
//! one of the things a service runs out of: a connection pool, a lock or a slow database
//! queue requests while the CPU idles, and in a container CPU usage is hard to read right
//! (quotas, throttling). Queueing always shows up as latency, measured the same everywhere.
//!
//! Each admitted call reports its latency when it ends. Once per `window` (with at least
//! 10 samples in it), one caller recalculates the limit from that window:
//!
//! 1. **Two latencies.** `short` is a fast moving average (weight ½) of the window's mean
//!    latency: what requests see now. `long` is a slow one (≈ 600 windows, a plain mean
//!    over the first 10): the baseline, what requests see when nothing queues.
//! 2. **Drift recovery.** When `long` is more than twice `short`, `long` shrinks by 5% per
//!    window: a baseline learned under load, or before the service got faster, comes down
//!    quickly instead of over 600 windows.
//! 3. **App-limited guard.** The window's mean concurrency, by Little's law (the sum of its
//!    latencies over its length), is what the service actually uses. Below half the limit
//!    the limit stays as it is: light traffic proves nothing about a higher limit, and
//!    latency noise in a quiet service must not ratchet the limit down either.
//! 4. **Gradient.** `gradient = clamp(tolerance × long / short, 0.5, 1.0)`: 1 while latency
//!    is within `tolerance` of the baseline, less as it climbs, never below ½ per window.
//!    The new limit is `limit × gradient + √limit` — the square root is the queue allowed
//!    on top, which lets the limit probe upward while latency holds — blended in with
//!    `smoothing` (`limit × (1 − smoothing) + new × smoothing`) and kept within
//!    `[min_limit, max_limit]`.
//!
//! Under overload, latency rises above `long × tolerance`, the gradient drops below 1 and
//! the limit shrinks until the queue it allows no longer pushes latency up; when latency
//! recovers, the gradient is 1 and the limit grows by `√limit × smoothing` per window, as
//! long as the service uses it.
//!
//! The baseline follows lasting changes at the pace of its ≈ 600 windows (a minute with the
//! default `window`). That is what lets a service whose latency really changed (a slower
//! dependency, a heavier release) stop shedding after a while; the price is that during an
//! overload that lasts many minutes, the latency the limit is held to creeps up with it.
//!
//! # Cost
//!
//! The limit takes no lock and allocates nothing on the request path. Admission is one
//! atomic add (on the server, the in-flight count it keeps anyway) and one relaxed load;
//! completion is a clock read and one atomic add (the window's latency sum and sample count
//! share one word). The recalculation runs once per window, in whichever
//! completing call wins a `try_lock` (a compare-and-swap; the losers skip it, nobody waits).
//!
//! # On the server
//!
//! `resilience.load_shedding` in config turns it on for the user's routes, beside the fixed
//! `server.limits.concurrency` cap (whichever is lower wins). A shed request never reaches
//! its handler: it gets `503` `application/problem+json` with `Retry-After`. It is off by
//! default because the baseline is learned from the service's own traffic: a service whose
//! latency varies with its inputs (a report endpoint beside a lookup), or that runs cold
//! for its first minutes, needs its `tolerance` and `min_limit` chosen with its latency
//! profile in view, and a wrong guess sheds healthy traffic.
//!
//! ```yaml
//! resilience:
//!   load_shedding:
//!     enabled: false
//!     initial_limit: 20
//!     min_limit: 10
//!     max_limit: 1000
//!     tolerance: 1.5
//!     smoothing: 0.5
//!     window: 100ms
//!     retry_after: 1s
//! ```
//!
//! # As a layer
//!
//! [`LoadShedLayer`] does the same for any tower service, such as a client's calls to one
//! dependency:
//!
//! ```
//! use ms_chassis::resilience::shedding::{LoadShedLayer, LoadSheddingConfig};
//! use ms_chassis::resilience::{ResilienceError, ResilienceMetrics};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut config = LoadSheddingConfig::default();
//! (config.min_limit, config.initial_limit) = (1, 1); // to show a shed call
//! let layer = LoadShedLayer::new("books", config, &ResilienceMetrics::unregistered())?;
//! let limit = layer.limit().clone(); // to read the current limit
//!
//! let mut books = ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(String::from("a book")))
//!     });
//! let first = books.ready().await?.call(http::Request::new(String::new()));
//! // The first call holds the only slot: the second is shed at once.
//! let second = books.ready().await?.call(http::Request::new(String::new()));
//! assert!(matches!(second.await, Err(ResilienceError::Shed { .. })));
//! assert_eq!(first.await?.into_body(), "a book");
//! assert_eq!((limit.limit(), limit.in_flight()), (1, 0));
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod limit;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use future::ResponseFuture;
pub use layer::{LoadShed, LoadShedLayer};
pub use limit::{AdaptiveLimit, AdaptivePermit};

use super::durations;
use crate::config::Invalid;

/// Adaptive load shedding settings; see the [module docs](self) for the algorithm.
///
/// ```yaml
/// load_shedding:
///   enabled: false      # on the server; a LoadShedLayer ignores it
///   initial_limit: 20
///   min_limit: 10
///   max_limit: 1000
///   tolerance: 1.5
///   smoothing: 0.5
///   window: 100ms
///   retry_after: 1s
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LoadSheddingConfig {
    /// Shed the server's excess requests (`resilience.load_shedding` only). Default
    /// **false**: the latency baseline is learned from the service's own traffic, so turn
    /// it on with the service's latency profile in view. The fixed
    /// `server.limits.concurrency` cap applies either way.
    pub enabled: bool,
    /// The limit before any latency is seen. Default 20 (Netflix's). Set it near the
    /// service's usual concurrency: a service that runs more requests at once sheds some of
    /// them at start, until the limit has grown to fit (by about `√limit × smoothing` per
    /// window); the limit moves only once traffic uses half of it.
    pub initial_limit: usize,
    /// The limit never goes below this, so that a latency spike that has nothing to do with
    /// load cannot throttle the service to a trickle. Default 10; lower it for a service
    /// whose capacity is a handful of requests (a small connection pool).
    pub min_limit: usize,
    /// The limit never grows above this. Default 1000, just under the server's default
    /// `server.limits.concurrency` (1024), which caps the server's requests anyway.
    pub max_limit: usize,
    /// How much slower than the baseline the current latency may get before the limit
    /// shrinks: 1.5 (the default, Netflix's) tolerates 50% more. At least 1; raise it for a
    /// service with noisy latency.
    pub tolerance: f64,
    /// How much of each recalculated limit is taken, in (0, 1]. The default, 0.5, moves the
    /// limit half way per window: a surge is caught within a few windows, and one odd window
    /// moves the limit by at most a quarter. (Netflix's 0.2 is applied per request; here
    /// each window already averages at least 10 of them.)
    pub smoothing: f64,
    /// How often the limit is recalculated (each time from at least 10 latency samples).
    /// Default `100ms`: fast enough to catch a surge within a second, long enough to hold a
    /// useful number of samples.
    #[serde(with = "durations")]
    pub window: Duration,
    /// `Retry-After` on a shed response, in whole seconds (at least `1s`). Default `1s`.
    #[serde(with = "durations")]
    pub retry_after: Duration,
}

impl Default for LoadSheddingConfig {
    fn default() -> Self {
        LoadSheddingConfig {
            enabled: false,
            initial_limit: 20,
            min_limit: 10,
            max_limit: 1000,
            tolerance: 1.5,
            smoothing: 0.5,
            window: Duration::from_millis(100),
            retry_after: Duration::from_secs(1),
        }
    }
}

impl LoadSheddingConfig {
    /// The keys whose rules read one another: `min_limit ≤ initial_limit ≤ max_limit`.
    pub(crate) const LIMIT_FIELDS: [&'static str; 3] = ["min_limit", "initial_limit", "max_limit"];

    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let err = |field, message: String| Err(Invalid::new(field, message));
        if self.min_limit == 0 {
            return err("min_limit", "expected at least 1".to_owned());
        }
        if self.max_limit < self.min_limit {
            return err(
                "max_limit",
                format!("expected at least min_limit ({})", self.min_limit),
            );
        }
        if !(self.min_limit..=self.max_limit).contains(&self.initial_limit) {
            return err(
                "initial_limit",
                format!(
                    "expected a limit from min_limit ({}) to max_limit ({})",
                    self.min_limit, self.max_limit
                ),
            );
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 1.0) {
            return err("tolerance", "expected a number of at least 1".to_owned());
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return err("smoothing", "expected a number in (0, 1]".to_owned());
        }
        if self.window < Duration::from_millis(1) {
            return err("window", "expected at least 1ms".to_owned());
        }
        if self.retry_after < Duration::from_secs(1) {
            return err(
                "retry_after",
                "expected at least 1s (Retry-After is in whole seconds)".to_owned(),
            );
        }
        Ok(())
    }

    /// `retry_after` as the whole seconds of a `Retry-After` header, rounded up.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_off() {
        let c = LoadSheddingConfig::default();
        assert!(!c.enabled);
        c.validate().unwrap();
        assert_eq!(c.retry_after_secs(), 1);
    }

    #[test]
    fn yaml_keys_and_durations_parse_and_serialize_back() {
        let c: LoadSheddingConfig = serde_json::from_value(serde_json::json!({
            "enabled": true, "min_limit": 2, "initial_limit": 4, "window": "50ms",
            "retry_after": "1500ms",
        }))
        .unwrap();
        assert!(c.enabled);
        assert_eq!((c.min_limit, c.initial_limit, c.max_limit), (2, 4, 1000));
        assert_eq!(c.window, Duration::from_millis(50));
        assert_eq!(c.retry_after_secs(), 2, "rounded up");
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["window"], "50ms");
        assert_eq!(back["tolerance"], 1.5);
    }

    #[test]
    fn each_rule_names_its_key() {
        let bad = |f: fn(&mut LoadSheddingConfig)| {
            let mut c = LoadSheddingConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.min_limit = 0).key, "min_limit");
        assert_eq!(bad(|c| c.max_limit = 5).key, "max_limit");
        assert_eq!(bad(|c| c.initial_limit = 5).key, "initial_limit");
        assert_eq!(bad(|c| c.initial_limit = 5000).key, "initial_limit");
        assert_eq!(bad(|c| c.tolerance = 0.9).key, "tolerance");
        assert_eq!(bad(|c| c.tolerance = f64::NAN).key, "tolerance");
        assert_eq!(bad(|c| c.smoothing = 0.0).key, "smoothing");
        assert_eq!(bad(|c| c.smoothing = 1.5).key, "smoothing");
        assert_eq!(bad(|c| c.window = Duration::ZERO).key, "window");
        assert_eq!(
            bad(|c| c.retry_after = Duration::from_millis(500)).key,
            "retry_after"
        );
        assert_eq!(
            bad(|c| c.initial_limit = 5).to_string(),
            "initial_limit: expected a limit from min_limit (10) to \
             max_limit (1000)"
        );
    }
}
