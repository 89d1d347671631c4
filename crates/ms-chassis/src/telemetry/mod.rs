//! Logs and traces: flat JSON lines (or pretty text), OpenTelemetry server spans exported
//! over OTLP, trace context propagation, and the per-request context that puts the request
//! id and trace ids on every log line of a request.

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

pub(crate) use log_writer::flush as flush_logs;
pub(crate) use logs::init_telemetry;
pub(crate) use request_context::CapturedHeaders;
pub use request_context::RequestContext;
pub use request_id::{RequestId, X_REQUEST_ID};
