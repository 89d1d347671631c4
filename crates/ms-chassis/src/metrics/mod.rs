//! Prometheus metrics: RED metrics per route, process metrics, build info, and the user's own.
//!
//! Built on the `prometheus` crate rather than the `metrics` facade or `prometheus-client`:
//! its histograms are lock-free on the hot path, it ships the standard Linux `process_*`
//! collector, and it writes text format 0.0.4, which `promtool check metrics` reads
//! (prometheus-client writes OpenMetrics only).
//!
//! `/metrics` answers in Prometheus text format 0.0.4, or in OpenMetrics 1.0 when the
//! scraper's `Accept` asks for `application/openmetrics-text`; then the request duration
//! histogram carries `trace_id` exemplars of sampled requests.
//!
//! Adding a metric of your own is one line, either on the service's registry:
//!
//! ```
//! # let svc = ms_chassis::Service::builder().build()?;
//! let orders = svc.metrics().counter("orders_placed_total", "Orders placed.")?;
//! orders.inc();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! or anywhere, with the `prometheus` macros on the default registry, which `/metrics`
//! also exposes:
//!
//! ```
//! use ms_chassis::metrics::prometheus::register_int_gauge;
//! let queue = register_int_gauge!("jobs_queued", "Jobs waiting.").unwrap();
//! queue.set(3);
//! ```

mod config;
mod http;
mod openmetrics;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
pub use prometheus;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::build_info;
use crate::resilience::ResilienceMetrics;

pub use config::MetricsSection;
pub(crate) use http::{HttpInstruments, UNMATCHED_ROUTE, method_label};
pub use openmetrics::OPENMETRICS_TYPE;

/// OpenTelemetry's advisory buckets for `http.server.request.duration`, in seconds.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The service's metric registry. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

#[derive(Debug)]
struct MetricsInner {
    registry: Registry,
    http_duration: HistogramVec,
    http_active: IntGauge,
    exemplars: Arc<openmetrics::Exemplars>,
    config_reloads: IntCounterVec,
    client_duration: HistogramVec,
    resilience: ResilienceMetrics,
    open_connections: IntGaugeVec,
    closed_connections: IntCounterVec,
}

/// `http_client_request_duration_seconds`, unregistered.
pub(crate) fn client_duration_histogram() -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests, per attempt.",
        )
        .buckets(HTTP_DURATION_BUCKETS.to_vec()),
        &[
            "client",
            "server_address",
            "http_request_method",
            "http_response_status_code",
            "error_type",
        ],
    )
}

impl Metrics {
    /// The registry and instruments of the service `name` at `version` (the labels of
    /// `ms_chassis_build_info`).
    pub(crate) fn new(name: &str, version: &str) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests.",
            )
            .buckets(HTTP_DURATION_BUCKETS.to_vec()),
            &[
                "http_request_method",
                "http_route",
                "http_response_status_code",
            ],
        )?;
        registry.register(Box::new(http_duration.clone()))?;
        let http_active = IntGauge::new(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
        )?;
        registry.register(Box::new(http_active.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "ms_chassis_build_info",
                "Build information: chassis version, service name and version, git commit \
                 and compiler; always 1.",
            ),
            &[
                "version",
                "service",
                "service_version",
                "git_commit",
                "rustc",
            ],
        )?;
        build_info
            .with_label_values(&[
                build_info::CHASSIS_VERSION,
                name,
                version,
                build_info::GIT_COMMIT,
                build_info::rustc_version(),
            ])
            .set(1);
        registry.register(Box::new(build_info))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "ms_chassis_config_reloads_total",
                "Config reloads by result: success (the new config is in use) or error (it \
                 was rejected and the old one kept).",
            ),
            &["result"],
        )?;
        for result in ["success", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(config_reloads.clone()))?;
        let client_duration = client_duration_histogram()?;
        registry.register(Box::new(client_duration.clone()))?;
        let resilience = ResilienceMetrics::new(&registry)?;
        let open_connections = IntGaugeVec::new(
            Opts::new(
                "http_server_open_connections",
                "Connections open, by listener (main or management).",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(open_connections.clone()))?;
        let closed_connections = IntCounterVec::new(
            Opts::new(
                "ms_chassis_connections_closed_total",
                "Connections the chassis closed, by listener and reason: header_timeout (no \
                 complete request head in server.limits.header_read_timeout), idle (no request \
                 in server.limits.idle_timeout) or limit (over server.limits.max_connections).",
            ),
            &["listener", "reason"],
        )?;
        registry.register(Box::new(closed_connections.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            inner: Arc::new(MetricsInner {
                registry,
                http_duration,
                http_active,
                exemplars: Arc::default(),
                config_reloads,
                client_duration,
                resilience,
                open_connections,
                closed_connections,
            }),
        })
    }

    /// The underlying registry, for registering any `prometheus` collector.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Registers and returns a counter. Prometheus convention: end the name in `_total`.
    pub fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        let c = IntCounter::new(name, help)?;
        self.inner.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    /// Registers and returns a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        let g = IntGauge::new(name, help)?;
        self.inner.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }

    /// Registers and returns a histogram with the given bucket upper bounds.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> prometheus::Result<Histogram> {
        let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
        self.inner.registry.register(Box::new(h.clone()))?;
        Ok(h)
    }

    /// The resilience layers' metrics, registered on this registry: pass them to layers
    /// you build yourself so that `/metrics` exports them.
    pub fn resilience(&self) -> &ResilienceMetrics {
        &self.inner.resilience
    }

    /// `http_client_request_duration_seconds`.
    pub(crate) fn client_duration(&self) -> &HistogramVec {
        &self.inner.client_duration
    }

    /// `ms_chassis_config_reloads_total`, by `result`.
    pub(crate) fn config_reloads(&self) -> IntCounterVec {
        self.inner.config_reloads.clone()
    }

    /// The connection metrics of `listener` (`main` or `management`), every series present
    /// from the start.
    pub(crate) fn connections(&self, listener: &str) -> crate::server::ConnectionMetrics {
        let closed = crate::server::CloseReason::ALL.map(|r| {
            self.inner
                .closed_connections
                .with_label_values(&[listener, r.label()])
        });
        crate::server::ConnectionMetrics {
            open: self.inner.open_connections.with_label_values(&[listener]),
            closed,
        }
    }

    pub(crate) fn http_instruments(&self) -> HttpInstruments {
        HttpInstruments::new(
            self.inner.http_duration.clone(),
            self.inner.http_active.clone(),
            self.inner.exemplars.clone(),
        )
    }

    fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.inner.registry.gather();
        let ours: std::collections::HashSet<String> =
            families.iter().map(|f| f.name().to_owned()).collect();
        families.extend(
            prometheus::gather()
                .into_iter()
                .filter(|f| !ours.contains(f.name())),
        );
        families
    }

    /// Renders every metric, ours and the default registry's, in text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("text format is UTF-8")
    }

    /// Renders every metric in OpenMetrics 1.0 text, with `trace_id` exemplars on the
    /// request duration histogram for sampled requests.
    pub fn render_openmetrics(&self) -> String {
        openmetrics::render(&self.gather(), &self.inner.exemplars)
    }

    pub(crate) fn routes(&self, path: &str) -> Router {
        let metrics = self.clone();
        Router::new().route(
            path,
            get(move |headers: axum::http::HeaderMap| async move {
                let openmetrics = headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains("application/openmetrics-text"));
                if openmetrics {
                    (
                        [(header::CONTENT_TYPE, OPENMETRICS_TYPE)],
                        metrics.render_openmetrics(),
                    )
                        .into_response()
                } else {
                    (
                        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
    }
}
