//! The chassis's config: every section the chassis owns, gathered from the parts that own
//! them, and the rules that span parts. It sits beside the service rather than in
//! `config`, which is the generic loader and knows no part.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::AdminSection;
use crate::client::ClientConfig;
use crate::config::{ConfigError, ConfigLoader, Inheriting, Rules, Schema};
use crate::health::HealthSection;
use crate::metrics::MetricsSection;
use crate::openapi::OpenApiSection;
use crate::resilience::ResilienceSection;
use crate::server::ServerSection;
use crate::telemetry::{LoggingSection, TracingSection};

/// A service's loaded configuration: the chassis's sections ([`ChassisConfig`]) plus the
/// whole merged tree. See [`config::Config`](crate::config::Config) for what it offers.
pub type Config = crate::config::Config<ChassisConfig>;

/// A service's live configuration. See [`config::ConfigWatch`](crate::config::ConfigWatch).
pub type ConfigWatch = crate::config::ConfigWatch<ChassisConfig>;

/// Every chassis-owned section: what a service's config is typed as. The user's own `app`
/// section is read with [`Config::app`](crate::config::Config::app).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChassisConfig {
    /// `service`: name and version.
    pub service: ServiceSection,
    /// `server`: listener, limits and shutdown.
    pub server: ServerSection,
    /// `logging`: format, level and access log.
    pub logging: LoggingSection,
    /// `metrics`: Prometheus exposition.
    pub metrics: MetricsSection,
    /// `health`: probe timeouts and caching.
    pub health: HealthSection,
    /// `tracing`: OpenTelemetry export, sampling and propagation.
    pub tracing: TracingSection,
    /// `resilience`: the service's own resilience: adaptive load shedding.
    pub resilience: ResilienceSection,
    /// `clients`: one [`ClientConfig`] per named HTTP client (`svc.client("books")`).
    pub clients: BTreeMap<String, ClientConfig>,
    /// `discovery`: reserved; accepted as written.
    pub discovery: Value,
    /// `openapi`: the spec in effect, its publication, the Swagger UI and validation.
    pub openapi: OpenApiSection,
    /// `admin`: protection of the admin endpoints.
    pub admin: AdminSection,
    /// `app`: the user's own section, typed by the user.
    pub app: Value,
}

/// `service:` who we are. Used in logs, metrics and (later) traces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServiceSection {
    /// Service name. Defaults to the executable's file name.
    pub name: String,
    /// Service version. Defaults to `unknown`.
    pub version: String,
}

impl Default for ServiceSection {
    fn default() -> Self {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "service".to_owned());
        Self {
            name,
            version: "unknown".to_owned(),
        }
    }
}

impl Schema for ChassisConfig {
    const INHERITING: &'static [Inheriting] = &[Inheriting {
        section: "clients",
        except: &["url"],
    }];

    fn validate(&self, rules: &mut Rules<'_>) {
        self.logging.validate(&mut rules.section("logging"));
        self.metrics.validate(&mut rules.section("metrics"));
        self.server.validate(&mut rules.section("server"));
        self.tracing.validate(&mut rules.section("tracing"));
        crate::client::validate_clients(&self.clients, &mut rules.section("clients"));
        self.resilience.validate(&mut rules.section("resilience"));
        self.admin.validate(&mut rules.section("admin"));
        let mut taken: Vec<(String, String)> = crate::health::PATHS
            .iter()
            .map(|p| ("health".to_owned(), (*p).to_owned()))
            .chain(
                crate::admin::PATHS
                    .iter()
                    .map(|p| ("admin".to_owned(), (*p).to_owned())),
            )
            .collect();
        if self.metrics.enabled && !rules.defaulted("metrics.path") {
            taken.push(("metrics.path".to_owned(), self.metrics.path.clone()));
        }
        self.openapi.validate(
            &mut rules.section("openapi"),
            &taken,
            self.server.management.is_some(),
        );
    }
}

impl ConfigLoader {
    /// Loads, merges, decrypts, types and validates every layer, as the chassis's
    /// sections. Every problem found is reported, not just the first.
    pub fn load(self) -> Result<Config, ConfigError> {
        self.load_as()
    }
}

#[cfg(test)]
mod tests;
