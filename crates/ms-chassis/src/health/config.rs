//! The `health` section: how checks run, and what the probes show to whom.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::duration;

/// `health:` how checks run, and what the probes show to whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HealthSection {
    /// Default per-check timeout; a check over it is DOWN. Default `2s`.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// How long a check result is reused. Default `1s`: however often the probes come, each
    /// check runs at most about once per `cache_ttl`, at the price of results (and so
    /// readiness flips) up to that old. The lifecycle (readiness DOWN at shutdown) is never
    /// cached. `0s` runs the checks for every probe (concurrent probes still share a run).
    #[serde(with = "duration")]
    pub cache_ttl: Duration,
    /// Who sees the checks' `data` (errors, URLs, breaker state): default `when_authorized`.
    pub show_details: ShowDetails,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(1),
            show_details: ShowDetails::WhenAuthorized,
        }
    }
}

/// `health.show_details`: who sees the checks' details, as Spring Boot's
/// `management.endpoint.health.show-details`. Everyone sees the status, and each check's
/// name and status.
///
/// ```
/// use ms_chassis::{config::ConfigLoader, health::ShowDetails};
/// let cfg = ConfigLoader::new().yaml("health: { show_details: always }").load()?;
/// assert_eq!(cfg.chassis().health.show_details, ShowDetails::Always);
/// let e = ConfigLoader::new().yaml("health: { show_details: sometimes }").load().unwrap_err();
/// assert!(e.to_string().contains("expected one of never, when_authorized, always"));
/// # Ok::<(), ms_chassis::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShowDetails {
    /// To nobody, not even an admin.
    Never,
    /// To callers the admin endpoints would let in: on a loopback management port, or
    /// with `Authorization: Bearer <admin.token>` (the default).
    #[default]
    WhenAuthorized,
    /// To everyone.
    Always,
}

/// Says what was expected and what was found, as the other config values do.
impl<'de> Deserialize<'de> for ShowDetails {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.as_str() {
            Some("never") => Ok(Self::Never),
            Some("when_authorized") => Ok(Self::WhenAuthorized),
            Some("always") => Ok(Self::Always),
            _ => {
                let found = match &v {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                Err(serde::de::Error::custom(format!(
                    "expected one of never, when_authorized, always, found {found}"
                )))
            }
        }
    }
}
