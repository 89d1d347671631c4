//! The adaptive limit itself: the latency samples of the current window in one atomic word,
//! and the estimator that turns a closed window into a new limit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::LoadSheddingConfig;
use crate::config::Invalid;
use crate::resilience::metrics::SheddingInstruments;
use crate::resilience::{ResilienceMetrics, now};

/// The low bits of the sample word count the window's samples, the high bits sum their
/// latencies in microseconds.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// A window closes at this many samples whatever its age. With concurrent callers adding
/// while it closes, a window holds well under 2^17 samples: far from the count's 2^20.
const FLUSH_SAMPLES: u64 = 1 << 16;
/// One sample is at most 2^26 µs (67 s), so 2^17 of them fit the 44-bit sum.
const MAX_SAMPLE_MICROS: u64 = (1 << 26) - 1;
/// Fewer samples than this do not close a window: its mean would be noise.
const MIN_SAMPLES: u64 = 10;

/// Weight of each window in the short-term latency.
const SHORT_WEIGHT: f64 = 0.5;
/// The long-term latency averages about this many windows...
const LONG_WINDOWS: f64 = 600.0;
/// ...after a plain mean of the first this many.
const WARMUP_WINDOWS: u64 = 10;
/// Drift recovery: when the baseline is more than `DRIFT_RATIO` times the current latency,
/// it shrinks by `DRIFT_DECAY` per window.
const DRIFT_RATIO: f64 = 2.0;
const DRIFT_DECAY: f64 = 0.95;
/// The limit shrinks by at most half (before smoothing) per window.
const MIN_GRADIENT: f64 = 0.5;
/// Latencies below 1 µs are read as 1 µs, so the gradient never divides by zero.
const MIN_LATENCY_SECS: f64 = 1e-6;

/// An adaptive concurrency limit (see the [module docs](super) for the algorithm). Cheap to
/// clone: clones share one limit.
///
/// Calls take a slot with [`try_acquire`](Self::try_acquire), which fails once the limit is
/// reached, and report their latency with [`AdaptivePermit::complete`].
///
/// ```
/// use ms_chassis::resilience::ResilienceMetrics;
/// use ms_chassis::resilience::shedding::{AdaptiveLimit, LoadSheddingConfig};
///
/// let limit = AdaptiveLimit::new(
///     "reports",
///     &LoadSheddingConfig::default(),
///     &ResilienceMetrics::unregistered(),
/// )
/// .unwrap();
/// match limit.try_acquire() {
///     Some(permit) => {
///         // ... do the work ...
///         permit.complete(); // reports its latency
///     }
///     None => { /* overloaded: refuse the work */ }
/// }
/// assert_eq!(limit.in_flight(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Written by every completion: the current window's latency sum and sample count.
    samples: CacheLine<AtomicU64>,
    /// Written by every permit taken or given back. (The server guard counts its own.)
    in_flight: CacheLine<AtomicUsize>,
    /// Read by every admission, written once per window.
    limit: AtomicUsize,
    /// When the current window opened, in nanoseconds since `epoch`.
    window_start: AtomicU64,
    /// `window` in nanoseconds; a config reload may change it.
    window: AtomicU64,
    epoch: Instant,
    /// Locked with `try_lock` by the one caller that closes a window (and with `lock` by
    /// a reconfiguration). The settings live beside it so that a reload changes them
    /// between two windows, never during one.
    estimator: Mutex<(Estimator, Params)>,
    name: Arc<str>,
    metrics: SheddingInstruments,
}

/// Keeps a value on its own cache line, so that writes to it do not slow down readers of
/// its neighbours.
#[derive(Debug, Default)]
#[repr(align(128))]
struct CacheLine<T>(T);

impl AdaptiveLimit {
    /// An adaptive limit named `name` (the `name` label of its metrics). Fails if the
    /// settings are invalid (see [`LoadSheddingConfig::validate`]); `enabled` is not read.
    pub fn new(
        name: &str,
        config: &LoadSheddingConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        config.validate()?;
        let params = Params::of(config);
        let metrics = metrics.load_shedding(name);
        metrics.limit.set(gauge_value(config.initial_limit));
        Ok(AdaptiveLimit {
            inner: Arc::new(Inner {
                samples: CacheLine::default(),
                in_flight: CacheLine::default(),
                limit: AtomicUsize::new(config.initial_limit),
                window_start: AtomicU64::new(0),
                window: AtomicU64::new(nanos(config.window)),
                epoch: now(),
                estimator: Mutex::new((Estimator::new(config.initial_limit as f64), params)),
                name: name.into(),
                metrics,
            }),
        })
    }

    /// The current limit: calls admitted at once.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Applies new settings (a config reload): `min_limit`, `max_limit`, `tolerance`,
    /// `smoothing` and `window` take effect from the next window, and the current limit is
    /// moved into the new bounds. `initial_limit` only matters at start, and `enabled` is
    /// not read. Invalid settings leave the limit untouched.
    pub fn reconfigure(&self, config: &LoadSheddingConfig) -> Result<(), Invalid> {
        config.validate()?;
        let inner = &*self.inner;
        let mut guard = inner
            .estimator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (estimator, params) = &mut *guard;
        *params = Params::of(config);
        estimator.limit = estimator.limit.clamp(params.min, params.max);
        inner.window.store(nanos(config.window), Ordering::Relaxed);
        let limit = estimator.limit as usize;
        inner.limit.store(limit, Ordering::Relaxed);
        inner.metrics.limit.set(gauge_value(limit));
        Ok(())
    }

    /// Permits held right now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.0.load(Ordering::Relaxed)
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Takes a slot, or returns `None` (and counts a shed call) when the limit is reached.
    pub fn try_acquire(&self) -> Option<AdaptivePermit> {
        let in_flight = &self.inner.in_flight.0;
        let before = in_flight.fetch_add(1, Ordering::Acquire);
        if !self.admits(before) {
            in_flight.fetch_sub(1, Ordering::Release);
            self.count_shed();
            return None;
        }
        Some(AdaptivePermit {
            limit: self.clone(),
            start: now(),
        })
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        Arc::clone(&self.inner.name)
    }

    /// Whether a call may start while `in_flight` others are running.
    pub(crate) fn admits(&self, in_flight: usize) -> bool {
        in_flight < self.limit()
    }

    pub(crate) fn count_shed(&self) {
        self.inner.metrics.shed.inc();
    }

    /// Reports the latency of an admitted call that ended at `now`. Closes the window when
    /// it is `window` old (and holds enough samples), recalculating the limit.
    pub(crate) fn observe(&self, latency: Duration, now: Instant) {
        let inner = &*self.inner;
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_SAMPLE_MICROS);
        let before = inner
            .samples
            .0
            .fetch_add((micros << COUNT_BITS) | 1, Ordering::Relaxed);
        let count = (before & COUNT_MASK) + 1;
        if count < MIN_SAMPLES {
            return;
        }
        let at = inner.since_epoch(now);
        if count < FLUSH_SAMPLES && !inner.window_over(at) {
            return;
        }
        inner.close_window(at);
    }
}

impl Inner {
    fn since_epoch(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.epoch))
    }

    fn window_over(&self, at: u64) -> bool {
        at.saturating_sub(self.window_start.load(Ordering::Relaxed))
            >= self.window.load(Ordering::Relaxed)
    }

    /// Runs in the one caller that wins the estimator's `try_lock`; the others return at once.
    fn close_window(&self, at: u64) {
        let mut guard = match self.estimator.try_lock() {
            Ok(e) => e,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let taken = self.samples.0.swap(0, Ordering::Relaxed);
        let count = taken & COUNT_MASK;
        if count < MIN_SAMPLES || (count < FLUSH_SAMPLES && !self.window_over(at)) {
            // Another caller closed this window just before us: these samples are the next's.
            self.samples.0.fetch_add(taken, Ordering::Relaxed);
            return;
        }
        let elapsed = at.saturating_sub(self.window_start.swap(at, Ordering::Relaxed));
        let total_secs = (taken >> COUNT_BITS) as f64 * 1e-6;
        let latency = (total_secs / count as f64).max(MIN_LATENCY_SECS);
        // Little's law: the mean number of calls in flight during the window.
        let in_flight = total_secs / (elapsed.max(1) as f64 * 1e-9);
        let (estimator, params) = &mut *guard;
        let limit = estimator.next(params, latency, in_flight);
        self.limit.store(limit, Ordering::Relaxed);
        self.metrics.limit.set(gauge_value(limit));
        self.metrics.short_latency.set(estimator.short);
        self.metrics.long_latency.set(estimator.long);
    }
}

/// A slot under an [`AdaptiveLimit`], from [`AdaptiveLimit::try_acquire`].
///
/// [`complete`](Self::complete) it when the call ends, to report its latency. Dropping it
/// frees the slot without a sample: do that for a call that was cancelled, or refused by
/// something else before it did any work.
#[derive(Debug)]
#[must_use = "dropping the permit frees the slot at once"]
pub struct AdaptivePermit {
    limit: AdaptiveLimit,
    start: Instant,
}

impl AdaptivePermit {
    /// Frees the slot and reports the call's latency (from `try_acquire` until now).
    pub fn complete(self) {
        let now = now();
        self.limit
            .observe(now.saturating_duration_since(self.start), now);
    }
}

impl Drop for AdaptivePermit {
    fn drop(&mut self) {
        self.limit.inner.in_flight.0.fetch_sub(1, Ordering::Release);
    }
}

/// The settings the estimator reads, as numbers.
#[derive(Debug, Clone)]
struct Params {
    min: f64,
    max: f64,
    tolerance: f64,
    smoothing: f64,
}

impl Params {
    fn of(config: &LoadSheddingConfig) -> Self {
        Params {
            min: config.min_limit as f64,
            max: config.max_limit as f64,
            tolerance: config.tolerance,
            smoothing: config.smoothing,
        }
    }
}

/// The limit as a real number, and the two latency averages, in seconds.
#[derive(Debug, Clone, PartialEq)]
struct Estimator {
    limit: f64,
    short: f64,
    long: f64,
    windows: u64,
}

impl Estimator {
    fn new(initial: f64) -> Self {
        Estimator {
            limit: initial,
            short: 0.0,
            long: 0.0,
            windows: 0,
        }
    }

    /// Takes one closed window — its mean latency (seconds) and mean concurrency — and
    /// returns the new limit.
    fn next(&mut self, p: &Params, latency: f64, in_flight: f64) -> usize {
        self.windows += 1;
        if self.windows == 1 {
            self.short = latency;
            self.long = latency;
        } else {
            self.short += SHORT_WEIGHT * (latency - self.short);
            let weight = if self.windows <= WARMUP_WINDOWS {
                1.0 / self.windows as f64
            } else {
                2.0 / (LONG_WINDOWS + 1.0)
            };
            self.long += weight * (latency - self.long);
        }
        if self.long > DRIFT_RATIO * self.short {
            self.long *= DRIFT_DECAY;
        }
        if in_flight >= self.limit / 2.0 {
            let gradient = (p.tolerance * self.long / self.short).clamp(MIN_GRADIENT, 1.0);
            let target = self.limit * gradient + self.limit.sqrt();
            let smoothed = self.limit * (1.0 - p.smoothing) + target * p.smoothing;
            self.limit = smoothed.clamp(p.min, p.max);
        }
        // In [min_limit, max_limit], both integers: the cast neither wraps nor saturates.
        self.limit as usize
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn gauge_value(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e-3;

    fn params() -> Params {
        Params {
            min: 8.0,
            max: 200.0,
            tolerance: 1.5,
            smoothing: 0.2,
        }
    }

    /// An estimator that has learned a 10 ms baseline at full use, limit still 20.
    fn warmed() -> Estimator {
        let mut e = Estimator::new(20.0);
        for _ in 0..WARMUP_WINDOWS {
            // Latency at the baseline, but too little use to move the limit.
            e.next(&params(), 10.0 * MS, 1.0);
        }
        assert_eq!((e.limit, e.long), (20.0, 10.0 * MS));
        e
    }

    #[test]
    fn latency_above_baseline_times_tolerance_lowers_the_limit() {
        let mut e = warmed();
        // Within tolerance: never lower.
        e.next(&params(), 14.0 * MS, 20.0);
        assert!(e.limit >= 20.0, "{e:?}");
        let before = e.limit;
        // Four times the baseline, at full use: down every window, towards the floor.
        let mut last = before;
        for _ in 0..10 {
            e.next(&params(), 40.0 * MS, last);
            assert!(e.limit < last, "{e:?}");
            last = e.limit;
        }
        assert!(e.limit < before * 0.75, "{e:?}");
    }

    #[test]
    fn one_window_takes_the_gradient_step_exactly() {
        let mut e = warmed();
        // short = 10 + 0.5 × (30 − 10) = 20 ms; gradient = 1.5 × 10 / 20 = 0.75.
        // long moves 2/601 of the way: the gradient comes out a hair above 0.75.
        e.next(&params(), 30.0 * MS, 20.0);
        let long = 10.0 * MS + 2.0 / 601.0 * 20.0 * MS;
        let gradient = 1.5 * long / (20.0 * MS);
        let target = 20.0 * gradient + 20f64.sqrt();
        let expected = 20.0 * 0.8 + target * 0.2;
        assert!(
            (e.limit - expected).abs() < 1e-9,
            "{} vs {expected}",
            e.limit
        );
    }

    #[test]
    fn the_limit_grows_back_when_latency_recovers() {
        let mut e = warmed();
        for _ in 0..30 {
            let l = e.limit;
            e.next(&params(), 50.0 * MS, l);
        }
        let low = e.limit;
        assert!(low < 12.0, "{e:?}");
        for _ in 0..200 {
            let l = e.limit;
            e.next(&params(), 10.0 * MS, l);
        }
        assert!(e.limit > 3.0 * low, "{low} → {e:?}");
    }

    #[test]
    fn the_limit_stays_within_min_and_max() {
        let mut e = warmed();
        for _ in 0..60 {
            let l = e.limit;
            assert_eq!(e.next(&params(), 5_000.0 * MS, l), e.limit as usize);
            assert!(e.limit >= 8.0, "{e:?}");
        }
        assert_eq!(e.limit, 8.0, "at the floor under sustained slowness");
        let mut e = warmed();
        for _ in 0..2_000 {
            let l = e.limit;
            e.next(&params(), 10.0 * MS, l);
            assert!(e.limit <= 200.0, "{e:?}");
        }
        assert_eq!(e.limit, 200.0, "at the ceiling while fast and fully used");
    }

    #[test]
    fn an_app_limited_service_keeps_its_limit() {
        let mut e = warmed();
        // Fast, but using under half the limit: no growth.
        for _ in 0..100 {
            e.next(&params(), 10.0 * MS, 9.9);
        }
        assert_eq!(e.limit, 20.0);
        // Slow, but with little in flight: its own concurrency is not the cause.
        for _ in 0..100 {
            e.next(&params(), 100.0 * MS, 5.0);
        }
        assert_eq!(e.limit, 20.0);
        // At half the limit it grows.
        e.next(&params(), 1.0 * MS, 10.0);
        assert!(e.limit > 20.0, "{e:?}");
    }

    #[test]
    fn a_baseline_learned_under_load_drifts_down() {
        let mut e = Estimator::new(20.0);
        for _ in 0..WARMUP_WINDOWS {
            e.next(&params(), 100.0 * MS, 1.0);
        }
        // The service is really five times faster: the baseline follows in tens of windows,
        // not hundreds.
        for _ in 0..60 {
            e.next(&params(), 20.0 * MS, 1.0);
        }
        assert!(e.long < 45.0 * MS, "{e:?}");
    }

    /// An [`AdaptiveLimit`] fed through its real entry point, with injected instants.
    mod fed {
        use super::*;

        fn limit(initial: usize) -> AdaptiveLimit {
            let config = LoadSheddingConfig {
                initial_limit: initial,
                min_limit: 2,
                max_limit: 100,
                window: Duration::from_millis(100),
                ..LoadSheddingConfig::default()
            };
            AdaptiveLimit::new("t", &config, &ResilienceMetrics::unregistered()).unwrap()
        }

        /// One 100 ms window of calls, `in_flight` at a time, each taking `latency`.
        fn window(l: &AdaptiveLimit, t: &mut Instant, latency: Duration, in_flight: u32) {
            let n = (Duration::from_millis(100).as_secs_f64() / latency.as_secs_f64()
                * f64::from(in_flight))
            .round() as u32;
            let step = Duration::from_millis(100) / n;
            for _ in 0..n {
                *t += step;
                l.observe(latency, *t);
            }
        }

        #[test]
        fn windows_close_on_time_and_move_the_limit_both_ways() {
            let l = limit(20);
            let mut t = l.inner.epoch;
            for _ in 0..10 {
                window(&l, &mut t, Duration::from_millis(10), 4);
            }
            assert_eq!(l.limit(), 20, "app-limited: 4 in flight of 20");
            assert!((l.inner.metrics.long_latency.get() - 0.01).abs() < 1e-9);
            for _ in 0..20 {
                let n = l.limit() as u32;
                window(&l, &mut t, Duration::from_millis(40), n);
            }
            let low = l.limit();
            assert!(low < 12, "shrinks under slow full use: {low}");
            assert_eq!(l.inner.metrics.limit.get(), low as i64);
            for _ in 0..100 {
                let n = l.limit() as u32;
                window(&l, &mut t, Duration::from_millis(10), n);
            }
            assert!(l.limit() > 2 * low, "grows back: {low} → {}", l.limit());
        }

        #[test]
        fn a_window_needs_ten_samples_and_its_full_length() {
            let l = limit(20);
            let mut t = l.inner.epoch;
            for _ in 0..9 {
                t += Duration::from_secs(1);
                l.observe(Duration::from_millis(100), t);
            }
            assert_eq!(l.inner.estimator.lock().unwrap().0.windows, 0, "9 samples");
            l.observe(Duration::from_millis(100), t);
            assert_eq!(l.inner.estimator.lock().unwrap().0.windows, 1);
            for _ in 0..50 {
                t += Duration::from_millis(1);
                l.observe(Duration::from_millis(100), t);
            }
            assert_eq!(
                l.inner.estimator.lock().unwrap().0.windows,
                1,
                "only 50 ms into the next window"
            );
        }

        #[test]
        fn permits_count_in_flight_and_shed_beyond_the_limit() {
            let l = limit(2);
            let a = l.try_acquire().unwrap();
            let _b = l.try_acquire().unwrap();
            assert!(l.try_acquire().is_none());
            assert_eq!(l.in_flight(), 2);
            assert_eq!(l.inner.metrics.shed.get(), 1);
            a.complete();
            assert_eq!(l.in_flight(), 1);
            assert_eq!(l.inner.samples.0.load(Ordering::Relaxed) & COUNT_MASK, 1);
            assert!(l.try_acquire().is_some());
        }
    }
}
