//! Logs: flat JSON lines (or pretty text), the per-request context that puts the request
//! id on every line of a request, and the optional access log.

mod json_format;
mod logs;
mod request_context;

pub(crate) use logs::init_logging;
pub use request_context::RequestContext;
