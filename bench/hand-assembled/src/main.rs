//! The benchmark's second anchor: the hello demo's `/hello` handler on axum with the stack
//! a team assembles by hand when it has no chassis, each piece from a maintained crate with
//! its documented setup and nothing tuned. Listens on 127.0.0.1, port from `BENCH_PORT`
//! (default 8082); `bench/README.md` maps it feature by feature onto the chassis's
//! defaults.
//!
//! Around `/hello`, outermost first (tower-http's documented order for request ids and
//! `TraceLayer`):
//! 1. `SetRequestIdLayer`: `x-request-id`, a v4 UUID when the request has none;
//! 2. `TraceLayer`: an INFO `tracing` span per request, named and shaped by the HTTP
//!    semantic conventions (`GET /hello`, kind server), parented on the W3C `traceparent`
//!    (and `baggage`) the request carries; `tracing-opentelemetry` makes it an
//!    OpenTelemetry span, sampled by the chassis's default sampler (parent-based, ratio
//!    0.1). No exporter, as in the chassis's default (`tracing.exporter: none`): the SDK
//!    still builds and records the sampled spans, and drops them at their end;
//! 3. `PropagateRequestIdLayer`: the id echoed on the response;
//! 4. `axum-prometheus`: RED metrics by route template (requests, duration histogram,
//!    requests pending), rendered at `/metrics`;
//! 5. `CatchPanicLayer`: a panic becomes a 500;
//! 6. load shedding at a service-wide concurrency limit of 1024 (tower's `LoadShed` over
//!    `GlobalConcurrencyLimit`, the over-limit request answered 503 with `Retry-After`
//!    at once, not queued), as the chassis's `server.limits.concurrency` does;
//! 7. `RequestBodyLimitLayer`: 2 MiB, 413 above;
//! 8. `TimeoutLayer`: 30 s, then 504.
//!
//! Logs are JSON lines (`tracing-subscriber`'s json formatter) at `info` (or `RUST_LOG`).
//! Like the chassis, which has `logging.access: false` by default, it logs no line per
//! request: `TraceLayer`'s request and response events stay at their default DEBUG level.
//! `BENCH_ACCESS_LOG=true` raises the response event to INFO, an access log line per
//! request written by the formatter straight to stdout (its documented default writer).
//!
//! `/metrics` and `/health` are routes beside `/hello`, outside its stack, as the chassis
//! serves its endpoints outside the user's limits. SIGTERM or Ctrl-C shuts down gracefully
//! (axum's `with_graceful_shutdown`: stop accepting, finish in-flight requests), then
//! shuts the tracer provider down.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::{BoxError, Json, Router, routing::get};
use axum_prometheus::PrometheusMetricLayer;
use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Serialize;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, fmt};

/// The chassis's defaults (`server.limits`), which this stack copies.
const CONCURRENCY: usize = 1024;
const BODY_SIZE: usize = 2 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The chassis's default `tracing.sampler`: parent-based, ratio 0.1 for new traces.
const SAMPLING_RATIO: f64 = 0.1;

// The handler and its state are bench/bare-axum's, which are hello's.
struct AppConfig {
    greeting: String,
}

struct App {
    app: watch::Receiver<Arc<AppConfig>>,
}

#[derive(Serialize)]
struct Greeting {
    message: String,
}

async fn hello(State(s): State<Arc<App>>) -> Json<Greeting> {
    // `Live::get` in hello: the current value, an `Arc` clone out of the `watch` channel.
    let app = s.app.borrow().clone();
    Json(Greeting {
        message: format!("{}, world", app.greeting),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8082);
    let greeting = std::env::var("BENCH_GREETING").unwrap_or_else(|_| "hello".to_owned());
    let access_log = std::env::var("BENCH_ACCESS_LOG").is_ok_and(|v| v == "true");
    let provider = init_telemetry();

    let (_keep, app) = watch::channel(Arc::new(AppConfig { greeting }));
    // axum-prometheus's documented setup: installs the global `metrics` recorder (and the
    // exporter's upkeep task) and returns the handle `/metrics` renders.
    let (metrics_layer, metrics) = PrometheusMetricLayer::pair();
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(server_span)
                .on_response(RecordStatus { access_log }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(metrics_layer)
        .layer(CatchPanicLayer::new())
        .layer(HandleErrorLayer::new(overloaded))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(CONCURRENCY))
        .layer(RequestBodyLimitLayer::new(BODY_SIZE))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // `Router::layer` wraps each route, after routing: the span and the metrics see the
    // matched route template. Routes added after it are outside the stack.
    let router = Router::new()
        .route("/hello", get(hello))
        .with_state(Arc::new(App { app }))
        .layer(stack)
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/health", get(|| async { "OK" }));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    if let Err(e) = provider.shutdown() {
        tracing::warn!(error = %e, "tracer provider shutdown failed");
    }
    served
}

/// JSON logs and OpenTelemetry spans through one `tracing` subscriber: `tracing-subscriber`'s
/// json formatter, and `tracing-opentelemetry` over an SDK tracer provider with the
/// chassis's default sampler and no exporter. W3C trace context and baggage are the
/// global propagator, as in the chassis's default `tracing.propagation`.
fn init_telemetry() -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            SAMPLING_RATIO,
        ))))
        .build();
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("hand-assembled");
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(fmt::layer().json())
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    provider
}

/// The request's server span: INFO, so that the `info` filter keeps it (`TraceLayer`'s
/// default span is DEBUG, which the filter would drop, and the trace context with it),
/// named `GET /hello` by the route template, and parented on the incoming trace context.
fn server_span(req: &Request<Body>) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {}", req.method(), route.unwrap_or("unmatched")),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        url.path = req.uri().path(),
        request_id,
        http.response.status_code = tracing::field::Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
    // Fails only without the OpenTelemetry layer, which `init_telemetry` installs.
    let _ = span.set_parent(parent);
    span
}

/// `TraceLayer`'s response callback: records the status on the server span, and with
/// `BENCH_ACCESS_LOG=true` logs the response as `DefaultOnResponse` does, at INFO.
#[derive(Clone, Copy)]
struct RecordStatus {
    access_log: bool,
}

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, res: &Response<B>, latency: Duration, span: &Span) {
        span.record("http.response.status_code", res.status().as_u16());
        if self.access_log {
            DefaultOnResponse::new()
                .level(Level::INFO)
                .on_response(res, latency, span);
        }
    }
}

/// `LoadShed`'s error (the concurrency limit is full) as a 503 with `Retry-After`, as the
/// chassis answers; anything else as a 500.
async fn overloaded(err: BoxError) -> Response<Body> {
    if err.is::<tower::load_shed::error::Overloaded>() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "the service is at its concurrency limit; retry later",
        )
            .into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

/// Ctrl-C or SIGTERM, as in axum's graceful-shutdown example.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
