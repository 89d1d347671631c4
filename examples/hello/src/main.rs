//! The ms-chassis demo service. `cargo run -p hello` starts it on embedded defaults
//! (127.0.0.1:8080); see the repository README for a tour of its endpoints.
//!
//! Tracing in the demo: every request gets a server span from the chassis; `/hello/{name}`
//! adds a `compose_greeting` child span with a plain `tracing` macro; `/relay` calls another
//! `hello` (`app.downstream`) inside a client span and passes the trace context on with
//! [`inject_current_headers`], so one trace covers both services; `/demo/panic` shows a
//! handler panic turned into a 500 problem+json (and an error span).
//!
//! `/downstream` does the same job the way a service should: through the chassis'
//! [`HttpClient`] for `clients.downstream`, which adds
//! timeouts, retry, a circuit breaker, a bulkhead, the client span, propagation and
//! metrics, and whose health is part of readiness.
//!
//! OpenAPI in the demo: every route is documented code-first with utoipa (`#[utoipa::path]`
//! on the handler, `utoipa_axum`'s `OpenApiRouter` to collect them), and the spec goes
//! beside the plain `Router` with `svc.with_openapi(api)`: `/openapi.json`,
//! `/openapi.yaml` and the Swagger UI at `/docs`.
//!
//! Config in the demo: the `app:` section is followed live through
//! `svc.config_watch().app()`, so editing `app.greeting` in the config file changes what
//! `/hello` says without a restart, and an `app` section that does not read as
//! [`AppConfig`] is rejected by the reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ms_chassis::ServeOptions;
// `utoipa_axum::routes!` names `axum`: the chassis re-exports the one it is built with.
use ms_chassis::axum;
use ms_chassis::config::Live;
use ms_chassis::prelude::*;
use ms_chassis::telemetry::propagation::inject_current_headers;
use serde::{Deserialize, Deserializer, Serialize};
use tracing::Instrument as _;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The `app:` section of config.yaml.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AppConfig {
    /// The word `/hello` greets with.
    greeting: String,
    /// Base URL of the service `/relay` calls (another `hello`), such as
    /// `http://127.0.0.1:8081`. Without it `/relay` answers 503.
    #[serde(deserialize_with = "http_url")]
    downstream: Option<reqwest::Url>,
    /// Whether a second SIGTERM or Ctrl-C during the graceful shutdown exits at once
    /// (the chassis's default) or is ignored, so the drain and the span flush always end.
    exit_on_second_signal: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
            downstream: None,
            exit_on_second_signal: true,
        }
    }
}

/// Reads an optional `http://` or `https://` URL, so a typo fails at startup, not per call.
fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<reqwest::Url>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(&raw)
        .map_err(|e| serde::de::Error::custom(format!("expected an http(s) URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(serde::de::Error::custom(format!(
            "expected an http(s) URL with a host, found {raw:?}"
        )));
    }
    Ok(Some(url))
}

/// Stands in for a database or downstream service, so the tour can show readiness going
/// DOWN: `POST /demo/dependency/down` breaks it, `POST /demo/dependency/up` mends it.
#[derive(Clone)]
struct DemoDependency(Arc<AtomicBool>);

/// Shared by every request; one `Arc` so that a request clones one pointer, not each field.
type AppState = Arc<App>;

struct App {
    /// The `app:` section as it is now: it follows config reloads.
    app: Live<AppConfig>,
    dependency: DemoDependency,
    /// The client for `clients.downstream`, when that is configured.
    downstream: Option<HttpClient>,
    /// One HTTP client for every `/relay` call, built on the first one: loading the TLS
    /// roots takes longer than the rest of start-up.
    client: std::sync::OnceLock<reqwest::Client>,
}

/// A greeting.
#[derive(Serialize, ToSchema)]
struct Greeting {
    /// The greeting and whom it is for.
    #[schema(example = "hello, world")]
    message: String,
}

/// An RFC 9457 problem document, as the chassis and the demo answer errors with.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ProblemDocument {
    /// A URI naming the problem type; `about:blank` for a plain HTTP status.
    #[schema(example = "about:blank")]
    r#type: String,
    /// The status's reason phrase.
    #[schema(example = "Service Unavailable")]
    title: String,
    /// The HTTP status.
    #[schema(example = 503)]
    status: u16,
    /// What went wrong.
    detail: Option<String>,
}

/// What `/slow/{ms}` answers.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Slept {
    /// How long it slept, in milliseconds.
    slept_ms: u64,
}

/// What `/demo/dependency/{state}` answers.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct DependencyState {
    /// Whether the pretend dependency is now up.
    demo_dependency_up: bool,
}

/// Longest sleep `/slow/{ms}` accepts.
const MAX_SLOW: Duration = Duration::from_secs(10);

/// Bound on a whole `/relay` downstream call: connect, request and response body.
const DOWNSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ms_chassis::Result<()> {
    let svc = Service::from_env()?;
    let app = svc.config_watch().app::<AppConfig>()?;
    let dependency = DemoDependency(Arc::new(AtomicBool::new(true)));
    let probe = dependency.clone();
    svc.health().readiness("demo-dependency", move || {
        let up = probe.0.load(Ordering::Relaxed);
        async move { up }
    });
    // Another service is a shared dependency: its health is shown, but never takes this
    // instance out of the load balancer (every instance would go at once).
    let downstream = svc.optional_client("downstream")?;
    if let Some(client) = &downstream {
        svc.health().informational("downstream", client.probe());
    }
    let options = ServeOptions::default()
        .exit_on_second_signal(svc.config().app::<AppConfig>()?.exit_on_second_signal);
    let state = Arc::new(App {
        app,
        dependency,
        downstream,
        client: std::sync::OnceLock::new(),
    });
    let (router, api) = router(state);
    svc.with_openapi(api).serve_with(router, options).await
}

/// The demo's routes, each documented code-first, split into a plain `Router` and its
/// OpenAPI document.
fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(hello))
        .routes(routes!(hello_name))
        .routes(routes!(relay))
        .routes(routes!(downstream))
        .routes(routes!(slow))
        .routes(routes!(set_dependency))
        .routes(routes!(demo_panic))
        .with_state(state)
        .split_for_parts()
}

/// Greets the world with `app.greeting`, which follows config reloads.
#[utoipa::path(get, path = "/hello", tag = "greetings",
    responses((status = 200, description = "The greeting", body = Greeting)))]
async fn hello(State(s): State<AppState>) -> Json<Greeting> {
    Json(Greeting {
        message: format!("{}, world", s.app.get().greeting),
    })
}

/// Greets someone by name, inside a `compose_greeting` child span.
#[utoipa::path(get, path = "/hello/{name}", tag = "greetings",
    params(("name" = String, Path, description = "Whom to greet", example = "ada")),
    responses((status = 200, description = "The greeting", body = Greeting)))]
async fn hello_name(State(s): State<AppState>, Path(name): Path<String>) -> Json<Greeting> {
    tracing::info!(%name, "greeting someone by name");
    // A child span of the request's server span, opened with a plain `tracing` macro.
    let message = {
        let _span = tracing::info_span!("compose_greeting").entered();
        format!("{}, {name}", s.app.get().greeting)
    };
    Json(Greeting { message })
}

/// Calls another `hello` by hand, propagating the trace.
///
/// Calls `GET {app.downstream}/hello/relay` inside a client span, passing the trace
/// context on in the configured formats (`tracing.propagation`), and returns the
/// downstream JSON. 503 without `app.downstream`, 502 when the call fails or answers with
/// an error, 504 when it takes longer than [`DOWNSTREAM_TIMEOUT`].
#[utoipa::path(get, path = "/relay", tag = "downstream", responses(
    (status = 200, description = "The downstream's greeting", body = Greeting),
    (status = 502, description = "The call failed", body = ProblemDocument, content_type = "application/problem+json"),
    (status = 503, description = "No app.downstream", body = ProblemDocument, content_type = "application/problem+json"),
    (status = 504, description = "The call timed out", body = ProblemDocument, content_type = "application/problem+json"),
))]
async fn relay(State(s): State<AppState>) -> Response {
    let Some(base) = s.app.get().downstream.clone() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "no downstream configured: set app.downstream",
        );
    };
    let Ok(url) =
        format!("{}/hello/relay", base.as_str().trim_end_matches('/')).parse::<reqwest::Url>()
    else {
        return problem(
            StatusCode::BAD_GATEWAY,
            "cannot build the downstream URL from app.downstream",
        );
    };
    // The client span, by the HTTP semantic conventions. Integers go in as i64:
    // tracing-opentelemetry exports u64 fields as strings.
    let span = tracing::info_span!(
        "GET",
        otel.kind = "client",
        otel.name = "GET",
        otel.status_code = tracing::field::Empty,
        http.request.method = "GET",
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().map(i64::from),
        url.full = url.as_str(),
        http.response.status_code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    async move {
        // Inside the client span: the headers name it as the downstream's parent.
        let mut headers = reqwest::header::HeaderMap::new();
        inject_current_headers(&mut headers);
        tracing::info!("calling downstream");
        let span = tracing::Span::current();
        let fail = |error_type: &str| {
            span.record("error.type", error_type);
            span.record("otel.status_code", "error");
        };
        let client = s.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(DOWNSTREAM_TIMEOUT)
                .build()
                .expect("a client with only a timeout set always builds")
        });
        let res = match client.get(url.clone()).headers(headers).send().await {
            Ok(res) => res,
            Err(e) => {
                let (status, error_type) = call_error(&e);
                fail(error_type);
                tracing::warn!(error = %e, "downstream call failed");
                return problem(status, "the downstream call failed");
            }
        };
        let status = res.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if !status.is_success() {
            if status.is_server_error() {
                fail(status.as_str());
            }
            tracing::warn!(
                status = status.as_u16(),
                "downstream answered with an error"
            );
            return problem(
                StatusCode::BAD_GATEWAY,
                "the downstream answered with an error",
            );
        }
        match res.json::<serde_json::Value>().await {
            Ok(body) => Json(body).into_response(),
            Err(e) => {
                let (status, error_type) = call_error(&e);
                fail(error_type);
                tracing::warn!(error = %e, "downstream answer unreadable");
                problem(status, "the downstream answer could not be read as JSON")
            }
        }
    }
    .instrument(span)
    .await
}

/// Calls another `hello` through the chassis client.
///
/// Calls `GET /hello/downstream` on `clients.downstream` through the chassis client and
/// returns its JSON. 503 without `clients.downstream`; when the call fails, the chassis's
/// answer for a failed dependency (504 timeout, 503 refused by the breaker or bulkhead,
/// 502 else), which names no internals: the reason goes to the log.
#[utoipa::path(get, path = "/downstream", tag = "downstream", responses(
    (status = 200, description = "The downstream's greeting", body = Greeting),
    (status = 502, description = "The call failed", body = ProblemDocument, content_type = "application/problem+json"),
    (status = 503, description = "No clients.downstream, or the breaker or bulkhead refused", body = ProblemDocument, content_type = "application/problem+json"),
    (status = 504, description = "The call timed out", body = ProblemDocument, content_type = "application/problem+json"),
))]
async fn downstream(State(s): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    let Some(client) = &s.downstream else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("no downstream client configured: set clients.downstream.url"));
    };
    Ok(Json(client.get_json("/hello/downstream").await?))
}

/// What to answer, and the client span's `error.type`, when a downstream call fails.
fn call_error(e: &reqwest::Error) -> (StatusCode, &'static str) {
    if e.is_timeout() {
        (StatusCode::GATEWAY_TIMEOUT, "timeout")
    } else {
        (StatusCode::BAD_GATEWAY, "_OTHER")
    }
}

/// An RFC 9457 problem response, like the ones the chassis produces.
fn problem(status: StatusCode, detail: &'static str) -> Response {
    Problem::new(status).with_detail(detail).into_response()
}

/// Answers after sleeping `ms` milliseconds (at most 10 s), to try timeouts and draining.
#[utoipa::path(get, path = "/slow/{ms}", tag = "demo",
    params(("ms" = u64, Path, description = "Milliseconds to sleep, at most 10000", example = 250)),
    responses((status = 200, description = "Slept", body = Slept)))]
async fn slow(Path(ms): Path<u64>) -> Json<serde_json::Value> {
    let wait = Duration::from_millis(ms).min(MAX_SLOW);
    tokio::time::sleep(wait).await;
    Json(serde_json::json!({ "slept_ms": wait.as_millis() }))
}

/// Breaks (`down`) or mends (`up`) the pretend dependency that readiness checks.
#[utoipa::path(post, path = "/demo/dependency/{state}", tag = "demo",
    params(("state" = String, Path, description = "`up` or `down`", example = "down")),
    responses(
        (status = 200, description = "The dependency's new state", body = DependencyState),
        (status = 400, description = "Neither up nor down", body = String, content_type = "text/plain"),
    ))]
async fn set_dependency(
    State(s): State<AppState>,
    Path(state): Path<String>,
) -> Result<Json<serde_json::Value>, (StatusCode, &'static str)> {
    let up = match state.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err((StatusCode::BAD_REQUEST, "expected up or down")),
    };
    s.dependency.0.store(up, Ordering::Relaxed);
    Ok(Json(serde_json::json!({ "demo_dependency_up": up })))
}

/// Panics, to show panic isolation.
///
/// The chassis answers 500 problem+json, marks the request's span as an error, and keeps
/// serving.
#[utoipa::path(get, path = "/demo/panic", tag = "demo", responses(
    (status = 500, description = "The panic, caught", body = ProblemDocument, content_type = "application/problem+json"),
))]
async fn demo_panic() -> StatusCode {
    panic!("demo panic: the chassis turns this into a 500 problem+json")
}
