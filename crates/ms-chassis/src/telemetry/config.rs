//! The `logging` and `tracing` sections, and the rules types alone cannot express.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::propagation::PropagationFormat;
use crate::config::Rules;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// One flat JSON object per line (the default).
    #[default]
    Json,
    /// Human-friendly, coloured when on a terminal; for local development.
    Pretty,
}

/// `logging:` format, level and access log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LoggingSection {
    /// `json` (default) or `pretty`.
    pub format: LogFormat,
    /// A level (`info`) or a filter (`info,hyper=warn`). `RUST_LOG` overrides it.
    pub level: String,
    /// Log one line per request (method, route, status, duration, request id, peer).
    pub access: bool,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".to_owned(),
            access: false,
        }
    }
}

/// Where finished spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TraceExporter {
    /// OTLP over gRPC or HTTP/protobuf (`tracing.protocol`).
    Otlp,
    /// One JSON line per finished span on stdout, beside the logs (local development).
    Stdout,
    /// Nowhere. Requests still get trace and span ids for log correlation and propagation.
    #[default]
    None,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// gRPC, default port 4317.
    #[default]
    Grpc,
    /// HTTP with protobuf bodies, default port 4318.
    Http,
}

/// How traces are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SamplerKind {
    /// Follow the caller's decision; sample `ratio` of new root traces (the default).
    #[default]
    ParentRatio,
    /// Sample `ratio` of traces, ignoring the caller's decision.
    Ratio,
    /// Follow the caller's decision; sample every new root trace.
    ParentAlwaysOn,
    /// Follow the caller's decision; sample no new root trace.
    ParentAlwaysOff,
    /// Sample everything.
    AlwaysOn,
    /// Sample nothing (ids are still generated and propagated).
    AlwaysOff,
}

/// `tracing.sampler:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SamplerSection {
    /// The sampler; `parent_ratio` by default.
    #[serde(rename = "type")]
    pub kind: SamplerKind,
    /// Fraction of root traces to sample, 0.0–1.0. Default 1.0 in the `dev` profile and 0.1
    /// otherwise, as in Spring Boot.
    pub ratio: Option<f64>,
}

/// `tracing:` OpenTelemetry. The standard `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_TRACES_EXPORTER`, `OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` variables override these keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TracingSection {
    /// `otlp`, `stdout` or `none` (default).
    pub exporter: TraceExporter,
    /// `grpc` (default) or `http`.
    pub protocol: OtlpProtocol,
    /// Collector URL. Default `http://127.0.0.1:4317` for gRPC, `http://127.0.0.1:4318` for
    /// HTTP (where `/v1/traces` is appended).
    pub endpoint: Option<String>,
    /// Extra headers (gRPC metadata) sent with every export, such as an API key. Every
    /// value is shown redacted, whatever the header's name.
    pub headers: BTreeMap<String, String>,
    /// Sampling.
    pub sampler: SamplerSection,
    /// Formats injected into outgoing requests. Incoming requests are read in every
    /// supported format.
    pub propagation: Vec<PropagationFormat>,
    /// Extra resource attributes, such as `deployment.region: eu-west-1`.
    pub resource: BTreeMap<String, String>,
    /// Spans waiting for export; beyond this they are dropped (and counted), so a dead
    /// collector never slows requests. Default 2048.
    pub queue_size: usize,
}

impl Default for TracingSection {
    fn default() -> Self {
        Self {
            exporter: TraceExporter::None,
            protocol: OtlpProtocol::Grpc,
            endpoint: None,
            headers: Default::default(),
            sampler: SamplerSection::default(),
            propagation: vec![PropagationFormat::TraceContext, PropagationFormat::Baggage],
            resource: Default::default(),
            queue_size: 2048,
        }
    }
}

impl LoggingSection {
    /// Rules that types alone cannot express; keys relative to `logging`.
    pub(crate) fn validate(&self, rules: &mut Rules<'_>) {
        if let Err(reason) = check_log_filter(&self.level) {
            rules.fail(
                "level",
                format!(
                    "expected a level (error, warn, info, debug, trace, off) or a filter such \
                     as `info,hyper=warn`, found {:?} ({reason})",
                    self.level
                ),
            );
        }
    }
}

/// Stricter than `EnvFilter` alone, which reads a bare word such as `loud` as a target name:
/// in config, every directive must end in a level.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("`{level}` is not a level"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|e| e.to_string())
}

impl TracingSection {
    /// Rules that types alone cannot express; keys relative to `tracing`.
    pub(crate) fn validate(&self, rules: &mut Rules<'_>) {
        if let Some(r) = self.sampler.ratio
            && !(0.0..=1.0).contains(&r)
        {
            rules.fail(
                "sampler.ratio",
                format!("expected a number from 0.0 to 1.0, found {r}"),
            );
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            rules.fail(
                "endpoint",
                format!("expected a URL such as http://127.0.0.1:4317, found {e:?}"),
            );
        }
        if self.queue_size == 0 {
            rules.fail(
                "queue_size",
                "expected a queue size above zero, such as 2048",
            );
        }
    }
}
