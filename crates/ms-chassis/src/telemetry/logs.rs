//! Process-wide log setup.
//!
//! JSON lines are flat: `timestamp` (RFC 3339, UTC), `level`, `service`, `target`,
//! `message`, then the fields of the enclosing spans (such as `request_id`) and of the event.
//! The level filter sits on the log layer only, not on the registry, so that spans stay
//! enabled for the tracing layer that shares the registry. Both filters can be changed
//! while the process runs: see [`super::levels`]. Lines reach stdout through a bounded
//! queue and a thread of their own (see `log_writer`).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

use super::Settings;
use super::config::LogFormat;
use super::json_format::{FlatJson, JsonSpanFields};
use super::levels::{self, BaseSource};
use super::log_writer::QueuedStdout;

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Sets up tracing and installs the global subscriber, once per process; later calls (a
/// second `Service` in the same test binary, say) keep the first.
///
/// Both filters sit in `reload` layers, so that [`super::levels`] can change them while
/// the process runs.
pub(crate) fn init_telemetry(cfg: &Settings<'_>) -> Result<(), crate::config::ConfigError> {
    let otel = super::otel::init(cfg)?;
    INSTALLED.get_or_init(|| {
        // RUST_LOG, when set (not empty) and valid, overrides `logging.level`.
        let rust_log = std::env::var(EnvFilter::DEFAULT_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty() && levels::env_filter(v).is_ok());
        let (base, source) = match rust_log {
            Some(v) => (v, BaseSource::RustLog),
            None => (cfg.logging.level.clone(), BaseSource::Config),
        };
        let filter = || levels::env_filter(&base).unwrap_or_else(|_| EnvFilter::new("info"));
        // Spans that handler code opens with `tracing` macros become OpenTelemetry children
        // of the server span. Same directives as the logs, but a separate filter, so that
        // the log filter never hides spans from tracing or the reverse.
        let (span_filter, span_handle) = reload::Layer::new(filter());
        let spans = tracing_opentelemetry::layer()
            .with_tracer(otel.tracer.clone())
            .with_filter(span_filter);
        let (log_filter, log_handle) = reload::Layer::new(filter());
        let layer = match cfg.logging.format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(QueuedStdout)
                .fmt_fields(JsonSpanFields)
                .event_format(FlatJson::new(cfg.service_name))
                .with_filter(log_filter)
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer()
                .with_writer(QueuedStdout)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(log_filter)
                .boxed(),
        };
        // Fails only if the application installed its own subscriber first; then it wins,
        // and its levels are its own business.
        let installed = tracing_subscriber::registry()
            .with(layer)
            .with(spans)
            .try_init()
            .is_ok();
        if installed {
            levels::install(
                base.clone(),
                source,
                Box::new(move |f: &str| {
                    log_handle
                        .reload(levels::env_filter(f)?)
                        .map_err(|e| e.to_string())?;
                    span_handle
                        .reload(levels::env_filter(f)?)
                        .map_err(|e| e.to_string())
                }),
            );
        }
    });
    Ok(())
}
