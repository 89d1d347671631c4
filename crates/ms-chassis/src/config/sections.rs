//! The typed chassis sections of `config.yaml`. Every field has a documented default, so a
//! service runs with no file at all.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::values::{byte_size, duration, ip, port};
use crate::client::ClientConfig;
use crate::resilience::ResilienceSection;
use crate::telemetry::propagation::PropagationFormat;

/// Every chassis-owned section. The user's own `app` section is read with
/// [`Config::app`](super::Config::app).
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
    /// `openapi`: reserved; accepted as written.
    pub openapi: Value,
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

/// `server:` the public listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to bind. `127.0.0.1` by default; use `0.0.0.0` in containers.
    #[serde(with = "ip")]
    pub host: IpAddr,
    /// Port to bind; `0` picks a free port. Default 8080.
    #[serde(with = "port")]
    pub port: u16,
    /// Optional second listener for the chassis endpoints (health, metrics).
    pub management: Option<ManagementSection>,
    /// Request limits applied to the user's routes.
    pub limits: LimitsSection,
    /// Graceful shutdown timing.
    pub shutdown: ShutdownSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            management: None,
            limits: LimitsSection::default(),
            shutdown: ShutdownSection::default(),
        }
    }
}

/// `server.management:` moves health and metrics off the public port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ManagementSection {
    /// Address to bind. Default `127.0.0.1`.
    #[serde(with = "ip")]
    pub host: IpAddr,
    /// Port to bind; `0` picks a free port. Default 9090.
    #[serde(with = "port")]
    pub port: u16,
}

impl Default for ManagementSection {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9090,
        }
    }
}

/// `server.limits:` bounds on the user's routes (request timeout, body size, concurrency),
/// which the chassis endpoints are exempt from, and on every connection of both listeners
/// (head and idle timeouts, connection cap, header size, HTTP/2). The connection keys take
/// effect at a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Whole-request timeout, reading a streamed body included; over it the client gets
    /// 504. `0` disables. Default `30s`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Largest request body, however it is sent; over it the client gets 413. Default `2MiB`.
    #[serde(with = "byte_size")]
    pub body_size: u64,
    /// Requests handled at once across all routes; excess gets 503. `0` disables. Default 1024.
    pub concurrency: usize,
    /// Time a client gets to send a complete request head, from the accept or, on a
    /// keep-alive connection, from the first byte of the next request; then the connection
    /// is closed. `0` disables. Default `10s`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight and no bytes moving stays open.
    /// `0` disables. Default `60s`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Connections open at once on the main listener; more are closed as soon as they are
    /// accepted. `null` (default) derives it from the process's open-file limit
    /// (`RLIMIT_NOFILE` less a quarter, at least 64, for outgoing connections and files),
    /// logged at startup. `0` means no cap. The management listener takes at most 64.
    pub max_connections: Option<usize>,
    /// Largest request head: the HTTP/1 request line and headers, the HTTP/2 header list.
    /// At least `8KiB`. Default `64KiB`.
    #[serde(with = "byte_size")]
    pub header_size: u64,
    /// HTTP/2 (cleartext, with prior knowledge) limits.
    pub http2: Http2Section,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_size: 2 * 1024 * 1024,
            concurrency: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            header_size: 64 * 1024,
            http2: Http2Section::default(),
        }
    }
}

/// `server.limits.http2:` bounds on each HTTP/2 connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Http2Section {
    /// Streams a client may open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); more are
    /// refused with `REFUSED_STREAM`. At least 1. Default 256.
    pub max_concurrent_streams: u32,
    /// How long a connection may receive nothing before it is sent a PING. `0` disables.
    /// Default `20s`.
    #[serde(with = "duration")]
    pub keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed. Default `20s`.
    #[serde(with = "duration")]
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Section {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// `server.shutdown:` see the graceful shutdown sequence in the crate docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ShutdownSection {
    /// Time between readiness going DOWN and the listener closing, so that load balancers
    /// stop sending traffic first. Default `5s`.
    #[serde(with = "duration")]
    pub drain_delay: Duration,
    /// Time in-flight requests get to finish after the listener closes. Default `30s`.
    #[serde(with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            grace: Duration::from_secs(30),
        }
    }
}

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
/// use ms_chassis::config::{ConfigLoader, ShowDetails};
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
    pub headers: std::collections::BTreeMap<String, String>,
    /// Sampling.
    pub sampler: SamplerSection,
    /// Formats injected into outgoing requests. Incoming requests are read in every
    /// supported format.
    pub propagation: Vec<PropagationFormat>,
    /// Extra resource attributes, such as `deployment.region: eu-west-1`.
    pub resource: std::collections::BTreeMap<String, String>,
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

/// `admin:` who may use the admin endpoints (`/admin/info` included).
///
/// With a `token`, those endpoints require `Authorization: Bearer <token>`. Without one,
/// they answer only on a management port bound to a loopback address
/// (`server.management.host: 127.0.0.1`), and are off elsewhere. The same rule decides who
/// sees the health checks' details (`health.show_details: when_authorized`). The token may
/// be stored encrypted, as `enc_token`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AdminSection {
    /// The bearer token; `null` (default) for none.
    pub token: Option<String>,
}

/// Never shows the token.
impl std::fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSection")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
