//! The breaker's state machine: pure, no I/O, no clock of its own. Every method takes the
//! current time, so tests (and the property tests below) drive it with made-up instants.
//!
//! Each state change starts a new *generation*. A permit remembers the generation it was
//! granted in, and a result that comes back in a later generation is not recorded: a call
//! let through while CLOSED and finishing after the breaker has opened says nothing about
//! the half-open probes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::{CircuitBreakerConfig, SlidingWindowType};
use crate::resilience::Outcome;

/// A circuit breaker's state, as Resilience4j names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CircuitState {
    /// Calls flow; outcomes are recorded in the sliding window.
    Closed,
    /// Calls are rejected at once until `wait_in_open` has passed.
    Open,
    /// Up to `permitted_calls_in_half_open` probes are let through; their outcomes decide.
    HalfOpen,
    /// Rejects every call until an operator changes the state.
    ForcedOpen,
    /// Lets every call through and records nothing.
    Disabled,
}

impl CircuitState {
    pub(crate) const ALL: [CircuitState; 5] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
    ];

    /// The lower-case name used as the `state` metric label: `closed`, `open`,
    /// `half_open`, `forced_open`, `disabled`.
    pub fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for CircuitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CircuitState::Closed => "CLOSED",
            CircuitState::Open => "OPEN",
            CircuitState::HalfOpen => "HALF_OPEN",
            CircuitState::ForcedOpen => "FORCED_OPEN",
            CircuitState::Disabled => "DISABLED",
        })
    }
}

/// What a breaker's current window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CircuitBreakerMetrics {
    /// Percentage of failed calls in the window; `None` while it holds fewer than the
    /// minimum number of calls.
    pub failure_rate: Option<f64>,
    /// Percentage of slow calls (failed or not) in the window; `None` likewise.
    pub slow_call_rate: Option<f64>,
    /// Calls in the window.
    pub buffered_calls: u32,
    /// Failed calls in the window.
    pub failed_calls: u32,
    /// Slow calls in the window (failed or not).
    pub slow_calls: u32,
    /// Slow calls in the window that also failed.
    pub slow_failed_calls: u32,
    /// Calls rejected since the breaker was built or last reset.
    pub not_permitted_calls: u64,
}

/// Counts of recorded calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u32,
    pub(crate) failed: u32,
    pub(crate) slow: u32,
    pub(crate) slow_failed: u32,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failed += u32::from(failed);
        self.slow += u32::from(slow);
        self.slow_failed += u32::from(failed && slow);
    }

    fn sub(&mut self, other: &Tally) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
        self.slow_failed -= other.slow_failed;
    }

    fn failure_rate(&self) -> f64 {
        f64::from(self.failed) * 100.0 / f64::from(self.calls)
    }

    fn slow_rate(&self) -> f64 {
        f64::from(self.slow) * 100.0 / f64::from(self.calls)
    }

    /// True when, with at least `minimum` calls, either rate reaches its threshold.
    fn exceeds(&self, minimum: u32, cfg: &CircuitBreakerConfig) -> bool {
        self.calls >= minimum
            && self.calls > 0
            && (self.failure_rate() >= cfg.failure_rate_threshold
                || self.slow_rate() >= cfg.slow_call_rate_threshold)
    }

    fn metrics(&self, minimum: u32, not_permitted: u64) -> CircuitBreakerMetrics {
        let judged = self.calls >= minimum && self.calls > 0;
        CircuitBreakerMetrics {
            failure_rate: judged.then(|| self.failure_rate()),
            slow_call_rate: judged.then(|| self.slow_rate()),
            buffered_calls: self.calls,
            failed_calls: self.failed,
            slow_calls: self.slow,
            slow_failed_calls: self.slow_failed,
            not_permitted_calls: not_permitted,
        }
    }
}

/// The last N calls.
#[derive(Debug)]
struct CountWindow {
    size: usize,
    calls: VecDeque<(bool, bool)>,
    tally: Tally,
}

/// The calls of the last N seconds, in one-second buckets counted from the window's start.
#[derive(Debug)]
struct TimeWindow {
    origin: Instant,
    /// Bucket `i` holds the calls of the live second `s` with `s % len == i`.
    buckets: Vec<Tally>,
    head: u64,
    tally: Tally,
}

#[derive(Debug)]
enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    fn new(cfg: &CircuitBreakerConfig, now: Instant) -> Self {
        let size = cfg.sliding_window_size as usize;
        match cfg.sliding_window_type {
            SlidingWindowType::CountBased => Window::Count(CountWindow {
                size,
                calls: VecDeque::with_capacity(size.min(1024)),
                tally: Tally::default(),
            }),
            SlidingWindowType::TimeBased => Window::Time(TimeWindow {
                origin: now,
                buckets: vec![Tally::default(); size],
                head: 0,
                tally: Tally::default(),
            }),
        }
    }

    fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        match self {
            Window::Count(w) => {
                if w.calls.len() == w.size
                    && let Some((f, s)) = w.calls.pop_front()
                {
                    let mut old = Tally::default();
                    old.add(f, s);
                    w.tally.sub(&old);
                }
                w.calls.push_back((failed, slow));
                w.tally.add(failed, slow);
            }
            Window::Time(w) => {
                w.advance(now);
                let len = w.buckets.len() as u64;
                w.buckets[(w.head % len) as usize].add(failed, slow);
                w.tally.add(failed, slow);
            }
        }
    }

    fn tally(&mut self, now: Instant) -> Tally {
        match self {
            Window::Count(w) => w.tally,
            Window::Time(w) => {
                w.advance(now);
                w.tally
            }
        }
    }
}

impl TimeWindow {
    /// Moves the head to `now`'s second, emptying the buckets of seconds that left.
    fn advance(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        if second <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        if second - self.head >= len {
            self.buckets.fill(Tally::default());
            self.tally = Tally::default();
        } else {
            // Bucket `s % len` held second `s - len`, which has now left the window.
            for s in self.head + 1..=second {
                let bucket = &mut self.buckets[(s % len) as usize];
                self.tally.sub(bucket);
                *bucket = Tally::default();
            }
        }
        self.head = second;
    }
}

/// Leave to make one call, granted by [`Machine::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permit {
    generation: u64,
}

/// The breaker's state machine.
#[derive(Debug)]
pub(crate) struct Machine {
    cfg: CircuitBreakerConfig,
    state: CircuitState,
    generation: u64,
    /// CLOSED's window; kept while OPEN or FORCED_OPEN to report why.
    window: Window,
    consecutive_failures: u32,
    open_until: Instant,
    /// Openings since the breaker last closed, for the growing wait.
    open_streak: u32,
    half_open_permits: u32,
    half_open: Tally,
    not_permitted: u64,
}

impl Machine {
    /// A CLOSED breaker. `cfg` must have passed [`CircuitBreakerConfig::validate`].
    pub(crate) fn new(cfg: CircuitBreakerConfig, now: Instant) -> Self {
        Machine {
            window: Window::new(&cfg, now),
            cfg,
            state: CircuitState::Closed,
            generation: 0,
            consecutive_failures: 0,
            open_until: now,
            open_streak: 0,
            half_open_permits: 0,
            half_open: Tally::default(),
            not_permitted: 0,
        }
    }

    pub(crate) fn config(&self) -> &CircuitBreakerConfig {
        &self.cfg
    }

    /// The state at `now`: an OPEN breaker whose wait is over becomes HALF_OPEN.
    pub(crate) fn state(&mut self, now: Instant) -> CircuitState {
        self.tick(now);
        self.state
    }

    /// When the current OPEN state ends (meaningful only while OPEN).
    pub(crate) fn open_until(&self) -> Instant {
        self.open_until
    }

    /// Asks to make a call. `None` means rejected (and counted as not permitted).
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Option<Permit> {
        self.tick(now);
        let permitted = match self.state {
            CircuitState::Closed | CircuitState::Disabled => true,
            CircuitState::Open | CircuitState::ForcedOpen => false,
            CircuitState::HalfOpen if self.half_open_permits > 0 => {
                self.half_open_permits -= 1;
                true
            }
            CircuitState::HalfOpen => false,
        };
        if permitted {
            Some(Permit {
                generation: self.generation,
            })
        } else {
            self.not_permitted += 1;
            None
        }
    }

    /// Gives a permit back unused (the call was cancelled, or its outcome is ignored).
    pub(crate) fn release(&mut self, permit: Permit, now: Instant) {
        self.tick(now);
        if permit.generation == self.generation && self.state == CircuitState::HalfOpen {
            self.half_open_permits += 1;
        }
    }

    /// Records a finished call that took `elapsed`.
    pub(crate) fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        elapsed: Duration,
        now: Instant,
    ) {
        if outcome == Outcome::Ignored {
            self.release(permit, now);
            return;
        }
        self.tick(now);
        if permit.generation != self.generation {
            return;
        }
        let failed = outcome == Outcome::Failure;
        let slow = elapsed > self.cfg.slow_call_duration;
        match self.state {
            CircuitState::Closed => {
                self.window.record(now, failed, slow);
                self.consecutive_failures = if failed {
                    self.consecutive_failures + 1
                } else {
                    0
                };
                let consecutive_trip = self
                    .cfg
                    .consecutive_failure_threshold
                    .is_some_and(|n| self.consecutive_failures >= n);
                let minimum = self.cfg.effective_minimum_calls();
                if consecutive_trip || self.window.tally(now).exceeds(minimum, &self.cfg) {
                    self.open(now);
                }
            }
            CircuitState::HalfOpen => {
                self.half_open.add(failed, slow);
                let probes = self.cfg.permitted_calls_in_half_open;
                if self.half_open.calls >= probes {
                    if self.half_open.exceeds(probes, &self.cfg) {
                        self.open(now);
                    } else {
                        self.close(now);
                    }
                }
            }
            CircuitState::Open | CircuitState::ForcedOpen | CircuitState::Disabled => {}
        }
    }

    /// The current window's counts and rates.
    pub(crate) fn metrics(&mut self, now: Instant) -> CircuitBreakerMetrics {
        self.tick(now);
        match self.state {
            CircuitState::HalfOpen => self
                .half_open
                .metrics(self.cfg.permitted_calls_in_half_open, self.not_permitted),
            _ => self
                .window
                .tally(now)
                .metrics(self.cfg.effective_minimum_calls(), self.not_permitted),
        }
    }

    /// FORCED_OPEN: rejects everything until told otherwise.
    pub(crate) fn force_open(&mut self) {
        self.transition(CircuitState::ForcedOpen);
    }

    /// CLOSED, with an empty window.
    pub(crate) fn force_closed(&mut self, now: Instant) {
        self.close(now);
    }

    /// DISABLED: lets everything through, records nothing.
    pub(crate) fn disable(&mut self) {
        self.transition(CircuitState::Disabled);
    }

    /// CLOSED, as if new: empty window, no openings, no rejections counted.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.close(now);
        self.not_permitted = 0;
    }

    /// New settings; the breaker restarts CLOSED with an empty window.
    pub(crate) fn reconfigure(&mut self, cfg: CircuitBreakerConfig, now: Instant) {
        self.cfg = cfg;
        self.close(now);
    }

    fn tick(&mut self, now: Instant) {
        if self.state == CircuitState::Open && now >= self.open_until {
            self.transition(CircuitState::HalfOpen);
            self.half_open_permits = self.cfg.permitted_calls_in_half_open;
            self.half_open = Tally::default();
        }
    }

    fn open(&mut self, now: Instant) {
        self.transition(CircuitState::Open);
        self.open_streak = self.open_streak.saturating_add(1);
        self.open_until = now + self.cfg.open_wait(self.open_streak);
        self.consecutive_failures = 0;
    }

    fn close(&mut self, now: Instant) {
        self.transition(CircuitState::Closed);
        self.window = Window::new(&self.cfg, now);
        self.consecutive_failures = 0;
        self.open_streak = 0;
    }

    fn transition(&mut self, to: CircuitState) {
        self.state = to;
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests;
