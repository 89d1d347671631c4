//! `breaker:` settings, with Resilience4j's names and defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;
use crate::resilience::durations;

/// How the breaker's sliding window is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlidingWindowType {
    /// The last `sliding_window_size` calls.
    CountBased,
    /// The calls of the last `sliding_window_size` seconds, in one-second buckets.
    TimeBased,
}

/// A circuit breaker's settings: the `breaker:` block of a client in `config.yaml`.
///
/// ```yaml
/// clients:
///   books:
///     breaker:
///       failure_rate_threshold: 50      # percent of failed calls that opens the breaker
///       slow_call_rate_threshold: 100   # percent of slow calls that opens it
///       slow_call_duration: 60s         # a call slower than this is slow
///       minimum_calls: 20               # no verdict on fewer calls than this
///       sliding_window_type: count_based  # or time_based
///       sliding_window_size: 100        # calls, or seconds when time_based
///       wait_in_open: 30s               # how long OPEN lasts before probing
///       wait_in_open_multiplier: 1      # > 1: each re-open waits this much longer
///       max_wait_in_open: null          # cap on the grown wait (none: wait_in_open * multiplier^n)
///       permitted_calls_in_half_open: 3 # probes let through in HALF_OPEN
///       consecutive_failure_threshold: null  # e.g. 5: open after 5 failures in a row
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Percentage (1-100) of failed calls in the window at which the breaker opens. Default 50.
    pub failure_rate_threshold: f64,
    /// Percentage (1-100) of slow calls in the window at which the breaker opens. Default 100.
    pub slow_call_rate_threshold: f64,
    /// A call that takes longer than this is slow. Default `60s`.
    #[serde(with = "durations")]
    pub slow_call_duration: Duration,
    /// Calls the window must hold before the rates are judged. Default 20. With a
    /// count-based window smaller than this, the window size is the minimum.
    pub minimum_calls: u32,
    /// `count_based` (default) or `time_based`.
    pub sliding_window_type: SlidingWindowType,
    /// Calls (count-based) or seconds (time-based) in the window. Default 100.
    pub sliding_window_size: u32,
    /// How long the breaker stays OPEN before letting probes through. Default `30s`.
    #[serde(with = "durations")]
    pub wait_in_open: Duration,
    /// Growth of the OPEN wait when the breaker re-opens without having closed in between:
    /// the n-th consecutive opening waits `wait_in_open * multiplier^(n-1)`. `1` (the
    /// default) keeps it constant.
    pub wait_in_open_multiplier: f64,
    /// Cap on the grown OPEN wait. Default none (but never more than 24 hours).
    #[serde(with = "durations::option")]
    pub max_wait_in_open: Option<Duration>,
    /// Probes let through in HALF_OPEN; their outcomes decide between CLOSED and OPEN.
    /// Default 3.
    pub permitted_calls_in_half_open: u32,
    /// Open after this many failures in a row, whatever the rates. Default none (off).
    /// Resilience4j does not offer this; it catches a dead dependency before
    /// `minimum_calls` are in.
    pub consecutive_failure_threshold: Option<u32>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(60),
            minimum_calls: 20,
            sliding_window_type: SlidingWindowType::CountBased,
            sliding_window_size: 100,
            wait_in_open: Duration::from_secs(30),
            wait_in_open_multiplier: 1.0,
            max_wait_in_open: None,
            permitted_calls_in_half_open: 3,
            consecutive_failure_threshold: None,
        }
    }
}

/// The longest OPEN wait, whatever the growth settings say.
pub(crate) const WAIT_CEILING: Duration = Duration::from_secs(24 * 60 * 60);

impl CircuitBreakerConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let err = |field, msg: &str| Err(Invalid::new(field, msg));
        let percent = |v: f64| v.is_finite() && v > 0.0 && v <= 100.0;
        if !percent(self.failure_rate_threshold) {
            return err(
                "failure_rate_threshold",
                "expected a percentage in (0, 100]",
            );
        }
        if !percent(self.slow_call_rate_threshold) {
            return err(
                "slow_call_rate_threshold",
                "expected a percentage in (0, 100]",
            );
        }
        if self.minimum_calls == 0 {
            return err("minimum_calls", "expected at least 1");
        }
        if self.sliding_window_size == 0 {
            return err("sliding_window_size", "expected at least 1");
        }
        if self.sliding_window_type == SlidingWindowType::TimeBased
            && self.sliding_window_size > 3600
        {
            return err(
                "sliding_window_size",
                "a time-based window is at most 3600 seconds",
            );
        }
        if self.permitted_calls_in_half_open == 0 {
            return err("permitted_calls_in_half_open", "expected at least 1");
        }
        if !(self.wait_in_open_multiplier.is_finite() && self.wait_in_open_multiplier >= 1.0) {
            return err("wait_in_open_multiplier", "expected a number of at least 1");
        }
        if self.wait_in_open > WAIT_CEILING {
            return err("wait_in_open", "expected at most 24h");
        }
        if let Some(max) = self.max_wait_in_open
            && max < self.wait_in_open
        {
            return err("max_wait_in_open", "expected at least wait_in_open");
        }
        if self.consecutive_failure_threshold == Some(0) {
            return err(
                "consecutive_failure_threshold",
                "expected at least 1, or null to turn it off",
            );
        }
        Ok(())
    }

    /// The minimum number of calls before a verdict, as Resilience4j applies it.
    pub(crate) fn effective_minimum_calls(&self) -> u32 {
        match self.sliding_window_type {
            SlidingWindowType::CountBased => self.minimum_calls.min(self.sliding_window_size),
            SlidingWindowType::TimeBased => self.minimum_calls,
        }
    }

    /// How long the `n`-th consecutive opening (1-based) lasts.
    pub(crate) fn open_wait(&self, n: u32) -> Duration {
        let cap = self
            .max_wait_in_open
            .unwrap_or(WAIT_CEILING)
            .min(WAIT_CEILING);
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.wait_in_open.as_secs_f64() * self.wait_in_open_multiplier.powi(exp);
        if secs.is_finite() && secs < cap.as_secs_f64() {
            Duration::from_secs_f64(secs).max(self.wait_in_open)
        } else {
            cap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_resilience4j_s_and_documented() {
        let c: CircuitBreakerConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, CircuitBreakerConfig::default());
        assert_eq!(c.failure_rate_threshold, 50.0);
        assert_eq!(c.minimum_calls, 20);
        assert_eq!(c.sliding_window_size, 100);
        assert_eq!(c.sliding_window_type, SlidingWindowType::CountBased);
        assert_eq!(c.wait_in_open, Duration::from_secs(30));
        assert_eq!(c.permitted_calls_in_half_open, 3);
        assert_eq!(c.slow_call_duration, Duration::from_secs(60));
        assert_eq!(c.slow_call_rate_threshold, 100.0);
        assert_eq!(c.consecutive_failure_threshold, None);
        c.validate().unwrap();
    }

    #[test]
    fn reads_yaml_style_values_and_round_trips() {
        let c: CircuitBreakerConfig = serde_json::from_value(json!({
            "failure_rate_threshold": 25,
            "slow_call_duration": "250ms",
            "sliding_window_type": "time_based",
            "sliding_window_size": 10,
            "wait_in_open": "5s",
            "wait_in_open_multiplier": 2,
            "max_wait_in_open": "1m",
            "consecutive_failure_threshold": 5
        }))
        .unwrap();
        assert_eq!(c.failure_rate_threshold, 25.0);
        assert_eq!(c.slow_call_duration, Duration::from_millis(250));
        assert_eq!(c.sliding_window_type, SlidingWindowType::TimeBased);
        assert_eq!(c.max_wait_in_open, Some(Duration::from_secs(60)));
        assert_eq!(c.consecutive_failure_threshold, Some(5));
        let back: CircuitBreakerConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        // Every key is serialized, even the unset options, so the config loader's
        // unknown-key check knows them.
        let keys = serde_json::to_value(CircuitBreakerConfig::default()).unwrap();
        assert!(keys.get("max_wait_in_open").is_some());
        assert!(keys.get("consecutive_failure_threshold").is_some());

        let e = serde_json::from_value::<CircuitBreakerConfig>(json!({"wait_in_open": "soon"}))
            .unwrap_err();
        assert!(e.to_string().contains("expected a duration"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let bad = |f: fn(&mut CircuitBreakerConfig)| {
            let mut c = CircuitBreakerConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.failure_rate_threshold = 0.0),
            "failure_rate_threshold: expected a percentage in (0, 100]"
        );
        assert!(bad(|c| c.minimum_calls = 0).contains("minimum_calls"));
        assert!(bad(|c| c.permitted_calls_in_half_open = 0).contains("permitted_calls"));
        assert!(bad(|c| c.wait_in_open_multiplier = 0.5).contains("multiplier"));
        assert!(bad(|c| c.max_wait_in_open = Some(Duration::from_secs(1))).contains("max_wait"));
        assert!(bad(|c| c.consecutive_failure_threshold = Some(0)).contains("consecutive"));
    }

    #[test]
    fn open_wait_grows_and_is_capped() {
        let c = CircuitBreakerConfig {
            wait_in_open: Duration::from_secs(1),
            wait_in_open_multiplier: 2.0,
            max_wait_in_open: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let waits: Vec<u64> = (1..=5).map(|n| c.open_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(c.open_wait(u32::MAX), Duration::from_secs(5));
        let constant = CircuitBreakerConfig::default();
        assert_eq!(constant.open_wait(7), Duration::from_secs(30));
        let uncapped = CircuitBreakerConfig {
            wait_in_open_multiplier: 10.0,
            ..Default::default()
        };
        assert_eq!(uncapped.open_wait(100), WAIT_CEILING);
    }
}
