//! Process-wide log setup.
//!
//! JSON lines are flat: `timestamp` (RFC 3339, UTC), `level`, `service`, `target`,
//! `message`, then the fields of the enclosing spans (such as `request_id`) and of the event.
//! The level filter sits on the log layer only, not on the registry, so that spans stay
//! enabled for the tracing layer that shares the registry.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::json_format::{FlatJson, JsonSpanFields};
use crate::config::{ChassisConfig, LogFormat};

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Sets up tracing and installs the global subscriber, once per process; later calls (a
/// second `Service` in the same test binary, say) keep the first.
pub(crate) fn init_telemetry(
    cfg: &ChassisConfig,
    profile: Option<&str>,
) -> Result<(), crate::config::ConfigError> {
    let otel = super::otel::init(cfg, profile)?;
    INSTALLED.get_or_init(|| {
        // Spans that handler code opens with `tracing` macros become OpenTelemetry children
        // of the server span. Same level filter as the logs, but a separate one, so that
        // the log filter never hides spans from tracing or the reverse.
        let spans = tracing_opentelemetry::layer()
            .with_tracer(otel.tracer.clone())
            .with_filter(
                EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| EnvFilter::new(&cfg.logging.level)),
            );
        // RUST_LOG, when set and valid, overrides `logging.level`.
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(&cfg.logging.level));
        let layer = match cfg.logging.format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(FlatJson::new(&cfg.service.name))
                .with_filter(filter)
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(filter)
                .boxed(),
        };
        // Fails only if the application installed its own subscriber first; then it wins.
        let _ = tracing_subscriber::registry()
            .with(layer)
            .with(spans)
            .try_init();
    });
    Ok(())
}
