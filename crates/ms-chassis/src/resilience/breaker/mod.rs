//! A circuit breaker with Resilience4j's semantics, plus a trip on consecutive failures.
//!
//! When a dependency is failing, calling it anyway wastes the caller's threads, sockets and
//! latency budget and keeps the dependency from recovering. The breaker watches outcomes in
//! a sliding window and, past a failure-rate or slow-call-rate threshold, *opens*: calls
//! then fail at once with [`ResilienceError::CircuitOpen`](crate::resilience::ResilienceError)
//! without touching the network and without waiting. After `wait_in_open` it lets
//! `permitted_calls_in_half_open` probes through; their outcomes close it again or re-open
//! it (for longer, if `wait_in_open_multiplier` > 1).
//!
//! The states are Resilience4j's: CLOSED, OPEN, HALF_OPEN, plus FORCED_OPEN and DISABLED,
//! which only an operator sets through the [`CircuitBreakerHandle`]. The window is
//! count-based (the last N calls) or time-based (the last N seconds, in one-second
//! buckets). Resilience4j refuses to add a trip on N consecutive failures (its issues #6
//! and #785); `consecutive_failure_threshold` adds one, which catches a dead dependency
//! before `minimum_calls` have been seen.
//!
//! The state machine lives in `state.rs`, pure and clock-free, and is property-tested
//! against a reference model. The service asks it for a permit in `poll_ready` (so a
//! rejection never waits for the inner service to become ready) and reports the outcome,
//! as judged by a [`Classify`](crate::resilience::Classify), when the response future
//! completes; a future dropped before that gives its permit back. The call's duration is
//! measured up to the response head, not the body.
//!
//! ```
//! use ms_chassis::resilience::breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};
//! use ms_chassis::resilience::{ResilienceError, ResilienceMetrics};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut config = CircuitBreakerConfig::default();
//! config.consecutive_failure_threshold = Some(2);
//! let layer =
//!     CircuitBreakerLayer::new("books", config, &ResilienceMetrics::unregistered()).unwrap();
//! let handle = layer.handle();
//! let svc = ServiceBuilder::new().layer(layer).service_fn(|_: ()| async {
//!     Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap())
//! });
//!
//! for _ in 0..2 {
//!     svc.clone().oneshot(()).await.unwrap(); // two 503s in a row...
//! }
//! assert_eq!(handle.state(), CircuitState::Open); // ...open the breaker
//! let err = svc.clone().oneshot(()).await.unwrap_err();
//! assert!(matches!(err, ResilienceError::CircuitOpen { .. }));
//! # }
//! ```

mod config;
mod future;
mod layer;
mod state;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use config::{CircuitBreakerConfig, SlidingWindowType};
pub use future::ResponseFuture;
pub use layer::{CircuitBreaker, CircuitBreakerLayer};
pub use state::{CircuitBreakerMetrics, CircuitState};

use super::metrics::BreakerInstruments;
use super::{Outcome, now};
use crate::config::Invalid;
use state::{Machine, Permit};

/// What the breaker is shared between: every service the layer built, and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    name: Arc<str>,
    inner: Mutex<Inner>,
    instruments: BreakerInstruments,
}

#[derive(Debug)]
struct Inner {
    machine: Machine,
    /// The state last logged.
    shown: CircuitState,
}

impl Shared {
    fn new(
        name: &str,
        config: CircuitBreakerConfig,
        instruments: BreakerInstruments,
    ) -> Result<Self, Invalid> {
        config.validate()?;
        let shared = Shared {
            name: name.into(),
            inner: Mutex::new(Inner {
                machine: Machine::new(config, now()),
                shown: CircuitState::Closed,
            }),
            instruments,
        };
        Ok(shared)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the machine, then logs a change of state.
    fn with<R>(&self, f: impl FnOnce(&mut Machine, Instant) -> R) -> R {
        self.with_at(now(), f)
    }

    /// [`with`](Self::with), at `now` read by the caller.
    fn with_at<R>(&self, now: Instant, f: impl FnOnce(&mut Machine, Instant) -> R) -> R {
        let mut inner = self.lock();
        let r = f(&mut inner.machine, now);
        let state = inner.machine.state(now);
        if state != inner.shown {
            let from = std::mem::replace(&mut inner.shown, state);
            if state == CircuitState::Open {
                let wait = inner.machine.open_until().saturating_duration_since(now);
                tracing::warn!(
                    breaker = %self.name,
                    %from,
                    to = %state,
                    wait = %humantime::format_duration(round_ms(wait)),
                    "circuit breaker opened"
                );
            } else {
                tracing::info!(breaker = %self.name, %from, to = %state, "circuit breaker state changed");
            }
        }
        r
    }

    /// The state and the window now, for the gauges.
    pub(crate) fn state_and_metrics(&self) -> (CircuitState, CircuitBreakerMetrics) {
        self.with(|m, now| (m.state(now), m.metrics(now)))
    }

    /// Asks for a permit; a rejection is counted.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<CallPermit> {
        match self.with(|m, now| m.try_acquire(now)) {
            Some(permit) => Some(CallPermit {
                shared: Arc::clone(self),
                permit: Some(permit),
            }),
            None => {
                self.instruments.not_permitted.inc();
                None
            }
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Leave to make one call; given back on drop unless its outcome was recorded.
#[derive(Debug)]
pub(crate) struct CallPermit {
    shared: Arc<Shared>,
    permit: Option<Permit>,
}

impl CallPermit {
    /// Records the outcome of the call, which started at `started` and ends now. One clock
    /// read serves both the call's duration and the machine.
    pub(crate) fn record(&mut self, outcome: Outcome, started: Instant) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let now = now();
        let elapsed = now.saturating_duration_since(started);
        let i = &self.shared.instruments;
        let slow = self.shared.with_at(now, |m, now| {
            m.record(permit, outcome, elapsed, now);
            elapsed > m.config().slow_call_duration
        });
        match outcome {
            Outcome::Success if slow => i.slow.inc(),
            Outcome::Success => i.successful.inc(),
            Outcome::Failure => i.failed.inc(),
            Outcome::Ignored => i.ignored.inc(),
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.shared.with(|m, now| m.release(permit, now));
        }
    }
}

/// A breaker's name, state and window, as `/admin/breakers` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CircuitBreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// Its state now.
    pub state: CircuitState,
    /// Its current window.
    pub metrics: CircuitBreakerMetrics,
}

/// Reads and steers one breaker: its state, its window, and the operator's overrides.
/// Cheap to clone; every clone sees the same breaker as the services the layer built.
#[derive(Clone, Debug)]
pub struct CircuitBreakerHandle {
    shared: Arc<Shared>,
}

impl CircuitBreakerHandle {
    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The state now. An OPEN breaker whose wait is over reports (and becomes) HALF_OPEN.
    pub fn state(&self) -> CircuitState {
        self.shared.with(|m, now| m.state(now))
    }

    /// The current window's counts and rates.
    pub fn metrics(&self) -> CircuitBreakerMetrics {
        self.shared.with(|m, now| m.metrics(now))
    }

    /// Name, state and metrics at one instant.
    pub fn snapshot(&self) -> CircuitBreakerSnapshot {
        self.shared.with(|m, now| CircuitBreakerSnapshot {
            name: self.shared.name.to_string(),
            state: m.state(now),
            metrics: m.metrics(now),
        })
    }

    /// A layer over this same breaker (judging with the default classifier), to build
    /// another stack around it: the HTTP client rebuilds its stack on a config change and
    /// keeps its breaker's state this way.
    pub fn layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::from_shared(Arc::clone(&self.shared))
    }

    /// The settings in force.
    pub fn config(&self) -> CircuitBreakerConfig {
        self.shared.lock().machine.config().clone()
    }

    /// FORCED_OPEN: reject every call until another override.
    pub fn force_open(&self) {
        self.shared.with(|m, _| m.force_open());
    }

    /// CLOSED, with an empty window: calls flow and are judged again.
    pub fn force_closed(&self) {
        self.shared.with(|m, now| m.force_closed(now));
    }

    /// DISABLED: let every call through and record nothing.
    pub fn disable(&self) {
        self.shared.with(|m, _| m.disable());
    }

    /// CLOSED, as if new: empty window, the OPEN wait back to `wait_in_open`, the count of
    /// rejected calls back to zero.
    pub fn reset(&self) {
        self.shared.with(|m, now| m.reset(now));
    }

    /// Applies new settings (a config reload). The breaker restarts CLOSED with an empty
    /// window; invalid settings leave it untouched.
    pub fn reconfigure(&self, config: CircuitBreakerConfig) -> Result<(), Invalid> {
        config.validate()?;
        self.shared.with(|m, now| m.reconfigure(config, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
