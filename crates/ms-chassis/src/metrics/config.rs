//! The `metrics` section.

use serde::{Deserialize, Serialize};

use crate::config::Rules;

/// `metrics:` Prometheus exposition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricsSection {
    /// Record and expose metrics. Default true.
    pub enabled: bool,
    /// Path of the exposition endpoint. Default `/metrics`.
    pub path: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".to_owned(),
        }
    }
}

impl MetricsSection {
    /// Rules that types alone cannot express; keys relative to `metrics`.
    pub(crate) fn validate(&self, rules: &mut Rules<'_>) {
        if !self.path.starts_with('/') || self.path.len() < 2 {
            rules.fail(
                "path",
                format!("expected a path starting with `/`, found {:?}", self.path),
            );
        }
    }
}
