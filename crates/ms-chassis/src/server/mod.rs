//! The chassis server stack around the user's router, and the listeners.
//!
//! Outermost first: request id, request span (logs, access log), RED metrics, panic catcher,
//! load shedding with a global concurrency limit, body size check, timeout, then the user's
//! router. The chassis endpoints (health, metrics) are routed *outside* this stack, so they
//! answer even when the user's routes are saturated or timing out.

mod problem;
mod request_id;
mod route;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use tower::filter::{FilterLayer, Predicate};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::ChassisConfig;
use crate::metrics::Metrics;
use crate::telemetry::RequestSpanLayer;

pub use problem::PROBLEM_JSON;
pub(crate) use problem::problem;
pub use request_id::{RequestId, X_REQUEST_ID};
pub(crate) use route::RouteTemplate;

/// Wraps the user's router in the chassis stack.
pub(crate) fn user_stack(router: Router, cfg: &ChassisConfig, metrics: Option<&Metrics>) -> Router {
    let limits = &cfg.server.limits;
    let body_limit = usize::try_from(limits.body_size).unwrap_or(usize::MAX);
    let router = router
        .layer(route::RouteTagLayer)
        .layer(DefaultBodyLimit::max(body_limit));

    let timeout = limits.request_timeout;
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::<_, ()>::new(move |err: BoxError| async move {
            error_response(&err, timeout)
        }))
        .option_layer((limits.concurrency > 0).then(LoadShedLayer::new))
        .option_layer(
            (limits.concurrency > 0).then(|| GlobalConcurrencyLimitLayer::new(limits.concurrency)),
        )
        .layer(FilterLayer::new(ContentLengthLimit(limits.body_size)))
        .option_layer((!timeout.is_zero()).then(|| TimeoutLayer::new(timeout)))
        // Optional layers are `Either`s, which need one error type on both arms.
        .map_err(|never: std::convert::Infallible| -> BoxError { match never {} })
        .service(router);

    let stack = ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(RequestSpanLayer::new(cfg.logging.access))
        .layer(crate::metrics::HttpMetricsLayer::new(metrics))
        .layer(CatchPanicLayer::custom(panic_response))
        .service(guarded);
    Router::new().fallback_service(stack)
}

fn error_response(err: &BoxError, timeout: Duration) -> Response<Body> {
    if err.is::<tower::timeout::error::Elapsed>() {
        problem(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the request took longer than server.limits.request_timeout ({})",
                humantime::format_duration(timeout)
            ),
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        let mut res = problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is at its concurrency limit (server.limits.concurrency); retry later",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        res
    } else if let Some(e) = err.downcast_ref::<PayloadTooLarge>() {
        problem(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
    } else {
        tracing::error!(error = %err, "unhandled middleware error");
        problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "request handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the request handler failed unexpectedly",
    )
}

/// Rejects a declared `Content-Length` over the limit before the handler runs. Streaming
/// bodies without a length are cut off by axum's `DefaultBodyLimit` as they are read.
#[derive(Clone, Copy)]
struct ContentLengthLimit(u64);

#[derive(Debug, thiserror::Error)]
#[error("the request body of {declared} bytes exceeds server.limits.body_size ({limit} bytes)")]
struct PayloadTooLarge {
    declared: u64,
    limit: u64,
}

impl<B> Predicate<Request<B>> for ContentLengthLimit {
    type Request = Request<B>;
    fn check(&mut self, req: Request<B>) -> Result<Request<B>, BoxError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(declared) if declared > self.0 => Err(Box::new(PayloadTooLarge {
                declared,
                limit: self.0,
            })),
            _ => Ok(req),
        }
    }
}
