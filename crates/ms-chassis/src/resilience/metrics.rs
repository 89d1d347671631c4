//! The Prometheus families every resilience layer reports into.
//!
//! One [`ResilienceMetrics`] registers each family once on a registry; every layer built
//! with it adds its own `name` label values. The per-layer children are looked up once, at
//! construction, so the hot path only touches atomics. A breaker's gauges (state, failure
//! and slow-call ratios, buffered calls) are not kept on the calls' path at all: they are
//! read from the breaker when the registry is gathered (a scrape), so they cost the calls
//! nothing and never show a window that time has since moved on from.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::breaker::{CircuitState, Shared as BreakerShared};
use super::timeout::TimeoutScope;

/// The resilience metric families, registered on one [`prometheus::Registry`]. Cheap to
/// clone; build it once per registry and pass it to every layer.
///
/// | metric | type | labels |
/// | --- | --- | --- |
/// | `ms_chassis_circuit_breaker_state` | gauge, 1 for the current state | `name`, `state` |
/// | `ms_chassis_circuit_breaker_calls_total` | counter | `name`, `kind` = `successful`, `slow`, `failed`, `ignored`, `not_permitted` |
/// | `ms_chassis_circuit_breaker_failure_ratio` | gauge, 0-1; -1 below `minimum_calls` | `name` |
/// | `ms_chassis_circuit_breaker_slow_call_ratio` | gauge, 0-1; -1 below `minimum_calls` | `name` |
/// | `ms_chassis_circuit_breaker_buffered_calls` | gauge | `name` |
/// | `ms_chassis_retries_total` | counter | `name`, `outcome` = `retried`, `attempts_exhausted`, `budget_exhausted`, `retry_after_too_long`, `not_retryable` |
/// | `ms_chassis_timeouts_total` | counter | `name`, `scope` = `attempt`, `overall` |
/// | `ms_chassis_bulkhead_active_calls` | gauge | `name` |
/// | `ms_chassis_bulkhead_rejected_total` | counter | `name` |
/// | `ms_chassis_rate_limited_total` | counter | `name` |
/// | `ms_chassis_load_shedding_limit` | gauge, the current adaptive concurrency limit | `name` |
/// | `ms_chassis_load_shed_total` | counter of calls shed at that limit | `name` |
/// | `ms_chassis_load_shedding_latency_seconds` | gauge, the shedder's latency estimates | `name`, `estimate` = `short`, `long` |
///
/// The breaker's call kinds do not overlap: `slow` are successful calls slower than
/// `slow_call_duration`, `successful` the fast ones; every failure is `failed`. Names must
/// be unique per registry: two layers of one kind with the same name share their series.
#[derive(Clone, Debug)]
pub struct ResilienceMetrics {
    families: Arc<Families>,
}

#[derive(Debug)]
struct Families {
    breaker_gauges: BreakerGauges,
    breaker_calls: IntCounterVec,
    retries: IntCounterVec,
    timeouts: IntCounterVec,
    bulkhead_active: IntGaugeVec,
    bulkhead_rejected: IntCounterVec,
    rate_limited: IntCounterVec,
    shedding_limit: IntGaugeVec,
    shed: IntCounterVec,
    shedding_latency: GaugeVec,
}

impl ResilienceMetrics {
    /// Creates the families and registers them on `registry`. Fails if they are already
    /// registered there: build one `ResilienceMetrics` per registry and clone it. A
    /// service has one already, [`Metrics::resilience`](crate::metrics::Metrics::resilience),
    /// which its `/metrics` exports.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        let f = &m.families;
        registry.register(Box::new(GaugesOf(Arc::clone(&m.families))))?;
        registry.register(Box::new(f.breaker_calls.clone()))?;
        registry.register(Box::new(f.retries.clone()))?;
        registry.register(Box::new(f.timeouts.clone()))?;
        registry.register(Box::new(f.bulkhead_active.clone()))?;
        registry.register(Box::new(f.bulkhead_rejected.clone()))?;
        registry.register(Box::new(f.rate_limited.clone()))?;
        registry.register(Box::new(f.shedding_limit.clone()))?;
        registry.register(Box::new(f.shed.clone()))?;
        registry.register(Box::new(f.shedding_latency.clone()))?;
        Ok(m)
    }

    /// Families registered nowhere: the layers count, nothing exports. For tests and
    /// benchmarks.
    pub fn unregistered() -> Self {
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let float_vec = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        ResilienceMetrics {
            families: Arc::new(Families {
                breaker_gauges: BreakerGauges {
                    state: gauge_vec(
                        "ms_chassis_circuit_breaker_state",
                        "Circuit breaker state: 1 for the current state, 0 for the others.",
                        &["name", "state"],
                    ),
                    failure_ratio: float_vec(
                        "ms_chassis_circuit_breaker_failure_ratio",
                        "Failed calls in the breaker's window, 0-1; -1 below minimum_calls.",
                        &["name"],
                    ),
                    slow_ratio: float_vec(
                        "ms_chassis_circuit_breaker_slow_call_ratio",
                        "Slow calls in the breaker's window, 0-1; -1 below minimum_calls.",
                        &["name"],
                    ),
                    buffered: gauge_vec(
                        "ms_chassis_circuit_breaker_buffered_calls",
                        "Calls recorded in the breaker's current window.",
                        &["name"],
                    ),
                    breakers: Mutex::new(Vec::new()),
                },
                breaker_calls: counter_vec(
                    "ms_chassis_circuit_breaker_calls_total",
                    "Calls seen by a circuit breaker, by kind.",
                    &["name", "kind"],
                ),
                retries: counter_vec(
                    "ms_chassis_retries_total",
                    "Retry decisions after a failed attempt, by outcome.",
                    &["name", "outcome"],
                ),
                timeouts: counter_vec(
                    "ms_chassis_timeouts_total",
                    "Calls or attempts that timed out.",
                    &["name", "scope"],
                ),
                bulkhead_active: gauge_vec(
                    "ms_chassis_bulkhead_active_calls",
                    "Calls holding a bulkhead slot.",
                    &["name"],
                ),
                bulkhead_rejected: counter_vec(
                    "ms_chassis_bulkhead_rejected_total",
                    "Calls rejected because the bulkhead was full.",
                    &["name"],
                ),
                rate_limited: counter_vec(
                    "ms_chassis_rate_limited_total",
                    "Calls rejected by a rate limiter.",
                    &["name"],
                ),
                shedding_limit: gauge_vec(
                    "ms_chassis_load_shedding_limit",
                    "The load shedder's adaptive concurrency limit: calls admitted at once.",
                    &["name"],
                ),
                shed: counter_vec(
                    "ms_chassis_load_shed_total",
                    "Calls shed because the adaptive concurrency limit was reached.",
                    &["name"],
                ),
                shedding_latency: float_vec(
                    "ms_chassis_load_shedding_latency_seconds",
                    "The load shedder's latency estimates: short-term, and the long-term \
                     baseline.",
                    &["name", "estimate"],
                ),
            }),
        }
    }

    pub(crate) fn breaker(&self, name: &str) -> BreakerInstruments {
        let f = &self.families;
        let kind = |k: &str| f.breaker_calls.with_label_values(&[name, k]);
        BreakerInstruments {
            successful: kind("successful"),
            slow: kind("slow"),
            failed: kind("failed"),
            ignored: kind("ignored"),
            not_permitted: kind("not_permitted"),
        }
    }

    /// Shows `breaker`'s gauges from now on, read from it at every gather.
    pub(crate) fn track_breaker(&self, breaker: &Arc<BreakerShared>) {
        self.families.breaker_gauges.track(breaker);
    }

    pub(crate) fn retry(&self, name: &str) -> RetryInstruments {
        let outcome = |o: &str| self.families.retries.with_label_values(&[name, o]);
        RetryInstruments {
            retried: outcome("retried"),
            attempts_exhausted: outcome("attempts_exhausted"),
            budget_exhausted: outcome("budget_exhausted"),
            retry_after_too_long: outcome("retry_after_too_long"),
            not_retryable: outcome("not_retryable"),
        }
    }

    pub(crate) fn timeouts(&self, name: &str, scope: TimeoutScope) -> IntCounter {
        self.families
            .timeouts
            .with_label_values(&[name, scope.label()])
    }

    pub(crate) fn bulkhead(&self, name: &str) -> (IntGauge, IntCounter) {
        (
            self.families.bulkhead_active.with_label_values(&[name]),
            self.families.bulkhead_rejected.with_label_values(&[name]),
        )
    }

    pub(crate) fn rate_limited(&self, name: &str) -> IntCounter {
        self.families.rate_limited.with_label_values(&[name])
    }

    pub(crate) fn load_shedding(&self, name: &str) -> SheddingInstruments {
        let f = &self.families;
        let latency = |estimate: &str| f.shedding_latency.with_label_values(&[name, estimate]);
        SheddingInstruments {
            limit: f.shedding_limit.with_label_values(&[name]),
            shed: f.shed.with_label_values(&[name]),
            short_latency: latency("short"),
            long_latency: latency("long"),
        }
    }
}

/// A load shedder's own series.
#[derive(Debug, Clone)]
pub(crate) struct SheddingInstruments {
    pub(crate) limit: IntGauge,
    pub(crate) shed: IntCounter,
    pub(crate) short_latency: Gauge,
    pub(crate) long_latency: Gauge,
}

/// A breaker's own series.
#[derive(Debug, Clone)]
pub(crate) struct BreakerInstruments {
    pub(crate) successful: IntCounter,
    pub(crate) slow: IntCounter,
    pub(crate) failed: IntCounter,
    pub(crate) ignored: IntCounter,
    pub(crate) not_permitted: IntCounter,
}

/// The breakers' gauges, set from each live breaker when they are collected.
#[derive(Debug)]
struct BreakerGauges {
    state: IntGaugeVec,
    failure_ratio: GaugeVec,
    slow_ratio: GaugeVec,
    buffered: IntGaugeVec,
    breakers: Mutex<Vec<Weak<BreakerShared>>>,
}

impl BreakerGauges {
    fn track(&self, breaker: &Arc<BreakerShared>) {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        // Also pruned here: families that are never gathered must not keep every
        // breaker ever built.
        breakers.retain(|weak| weak.strong_count() > 0);
        breakers.push(Arc::downgrade(breaker));
        drop(breakers);
        self.show(breaker);
    }

    /// Sets `breaker`'s series from its state now.
    fn show(&self, breaker: &BreakerShared) {
        let name = breaker.name();
        let (state, m) = breaker.state_and_metrics();
        for s in CircuitState::ALL {
            self.state
                .with_label_values(&[name, s.label()])
                .set(i64::from(s == state));
        }
        let ratio = |r: Option<f64>| r.map_or(-1.0, |r| r / 100.0);
        self.failure_ratio
            .with_label_values(&[name])
            .set(ratio(m.failure_rate));
        self.slow_ratio
            .with_label_values(&[name])
            .set(ratio(m.slow_call_rate));
        self.buffered
            .with_label_values(&[name])
            .set(i64::from(m.buffered_calls));
    }

    /// Brings every live breaker's series up to date; a dropped breaker's series go,
    /// unless a live breaker has its name.
    fn refresh(&self) {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<Arc<BreakerShared>> = breakers.iter().filter_map(Weak::upgrade).collect();
        breakers.retain(|weak| weak.strong_count() > 0);
        for b in &live {
            self.show(b);
        }
        let shown = |name: &str| live.iter().any(|b| b.name().as_ref() == name);
        for family in self.buffered.collect() {
            for metric in family.get_metric() {
                let Some(name) = metric.get_label().iter().find(|l| l.name() == "name") else {
                    continue;
                };
                let name = name.value();
                if !shown(name) {
                    let _ = self.failure_ratio.remove_label_values(&[name]);
                    let _ = self.slow_ratio.remove_label_values(&[name]);
                    let _ = self.buffered.remove_label_values(&[name]);
                    for s in CircuitState::ALL {
                        let _ = self.state.remove_label_values(&[name, s.label()]);
                    }
                }
            }
        }
    }
}

/// The registry's handle on the breakers' gauges.
struct GaugesOf(Arc<Families>);

impl Collector for GaugesOf {
    fn desc(&self) -> Vec<&Desc> {
        let g = &self.0.breaker_gauges;
        [
            g.state.desc(),
            g.failure_ratio.desc(),
            g.slow_ratio.desc(),
            g.buffered.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let g = &self.0.breaker_gauges;
        g.refresh();
        [
            g.state.collect(),
            g.failure_ratio.collect(),
            g.slow_ratio.collect(),
            g.buffered.collect(),
        ]
        .concat()
    }
}

/// A retry layer's own series.
#[derive(Debug, Clone)]
pub(crate) struct RetryInstruments {
    pub(crate) retried: IntCounter,
    pub(crate) attempts_exhausted: IntCounter,
    pub(crate) budget_exhausted: IntCounter,
    pub(crate) retry_after_too_long: IntCounter,
    pub(crate) not_retryable: IntCounter,
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::resilience::breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
    use crate::resilience::timeout::TimeoutLayer;

    #[test]
    fn registering_twice_on_one_registry_fails_loudly() {
        let registry = Registry::new();
        ResilienceMetrics::new(&registry).unwrap();
        assert!(ResilienceMetrics::new(&registry).is_err());
    }

    /// Every family, with series, passes `promtool check metrics`.
    #[test]
    fn exposition_passes_promtool() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let promtool = std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
            .expect(
                "promtool is required by this test; install it with: apt-get install -y prometheus",
            );

        let registry = Registry::new();
        let m = ResilienceMetrics::new(&registry).unwrap();
        let _breaker =
            CircuitBreakerLayer::new("books", CircuitBreakerConfig::default(), &m).unwrap();
        let _timeout = TimeoutLayer::per_attempt("books", Duration::from_secs(1), &m);
        let r = m.retry("books");
        r.retried.inc();
        r.budget_exhausted.inc();
        let (active, rejected) = m.bulkhead("books");
        active.set(1);
        rejected.inc();
        m.rate_limited("books").inc();
        let shedding = m.load_shedding("server");
        shedding.limit.set(20);
        shedding.shed.inc();
        shedding.short_latency.set(0.025);
        shedding.long_latency.set(0.02);

        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        for family in [
            "ms_chassis_circuit_breaker_state{name=\"books\",state=\"closed\"} 1",
            "ms_chassis_circuit_breaker_state{name=\"books\",state=\"open\"} 0",
            "ms_chassis_retries_total{name=\"books\",outcome=\"retried\"} 1",
            "ms_chassis_bulkhead_rejected_total{name=\"books\"} 1",
            "ms_chassis_rate_limited_total{name=\"books\"} 1",
            "ms_chassis_timeouts_total{name=\"books\",scope=\"attempt\"} 0",
            "ms_chassis_circuit_breaker_failure_ratio{name=\"books\"} -1",
            "ms_chassis_load_shedding_limit{name=\"server\"} 20",
            "ms_chassis_load_shed_total{name=\"server\"} 1",
            "ms_chassis_load_shedding_latency_seconds{estimate=\"long\",name=\"server\"} 0.02",
        ] {
            assert!(text.contains(family), "missing `{family}` in\n{text}");
        }

        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics: {}\n{}\n{}\n--- input ---\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
