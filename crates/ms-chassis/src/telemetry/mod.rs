//! Logs and traces: flat JSON lines (or pretty text), OpenTelemetry server spans exported
//! over OTLP, trace context propagation, and the per-request context that puts the request
//! id and trace ids on every log line of a request.

mod config;
mod export_queue;
mod json_format;
pub(crate) mod levels;
mod log_writer;
mod logs;
pub(crate) mod otel;
pub(crate) mod otlp;
mod presampled;
pub mod propagation;
mod request_context;
mod request_id;
mod stdout_exporter;

pub use config::{
    LogFormat, LoggingSection, OtlpProtocol, SamplerKind, SamplerSection, TraceExporter,
    TracingSection,
};
pub(crate) use log_writer::flush as flush_logs;
pub(crate) use logs::init_telemetry;
pub(crate) use request_context::CapturedHeaders;
pub use request_context::RequestContext;
pub use request_id::{RequestId, X_REQUEST_ID};

/// What telemetry is set up from: the service's identity, its `logging` and `tracing`
/// sections, and the active profile (which picks the default sampling ratio).
pub(crate) struct Settings<'a> {
    pub(crate) service_name: &'a str,
    pub(crate) service_version: &'a str,
    pub(crate) logging: &'a LoggingSection,
    pub(crate) tracing: &'a TracingSection,
    pub(crate) profile: Option<&'a str>,
}
