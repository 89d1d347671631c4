//! Logs: flat JSON lines (or pretty text), a span per request carrying the request id, and
//! the optional access log.

mod json_format;
mod logs;
mod request_span;

pub(crate) use logs::init_logging;
pub(crate) use request_span::{RequestSpan, RequestSpanLayer};
