//! The chassis server stack around the user's routes, and the listeners.
//!
//! Routing first, then — inside the router, where the route template is known — in this
//! order: request id, trace context extraction and the server span, the request context
//! (for logs), RED metrics and the access log, panic catcher, load shedding at a global
//! concurrency limit (fixed, and adaptive when `resilience.load_shedding` is on), body size
//! check and timeout, then the user's handler (see `route`). The chassis endpoints (health,
//! metrics, admin) are dispatched *outside* this stack, so they answer even when the user's
//! routes are saturated or timing out.
//!
//! Below the stack, each listener runs its own accept loop (`listener`) with a cap on open
//! connections, and serves each connection (`connection`) with head and idle timeouts and
//! the HTTP/2 limits of `server.limits`.

mod config;
mod connection;
mod guard;
mod listener;
mod peer;
mod problem;
mod route;
mod wake_gate;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Response};
use axum::routing::future::RouteFuture;
use futures_util::future::Either;
use tower::{Service, ServiceBuilder};

use connection::Activity;

use crate::client::Forwarding;
use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::openapi::ValidationLayer;
use crate::resilience::ResilienceMetrics;
use crate::resilience::shedding::{AdaptiveLimit, LoadSheddingConfig};

pub use crate::telemetry::{RequestId, X_REQUEST_ID};
pub use config::{Http2Section, LimitsSection, ManagementSection, ServerSection, ShutdownSection};
pub(crate) use connection::CloseReason;
pub(crate) use listener::{
    ConnectionLimits, ConnectionMetrics, MIN_HEADER_SIZE, default_max_connections,
    management_max_connections, serve,
};
pub use problem::{PROBLEM_JSON, Problem};
pub(crate) use problem::{problem, problem_with};

/// Puts the chassis stack in the user's router. Also returns the server's adaptive limit,
/// when `resilience.load_shedding` is on, for config reloads to retune.
pub(crate) fn user_stack(
    router: Router,
    limits: &LimitsSection,
    shedding: &LoadSheddingConfig,
    metrics: Option<&Metrics>,
    access_log: Arc<AtomicBool>,
    forwarding: Arc<Forwarding>,
    validation: Option<ValidationLayer>,
) -> Result<(Router, Option<AdaptiveLimit>), ConfigError> {
    let body_limit = usize::try_from(limits.body_size).unwrap_or(usize::MAX);
    let shedder = shedder(shedding, metrics)?;
    let adaptive = shedder.as_ref().map(|s| s.limit().clone());
    let shared = route::Shared {
        limits: guard::Limits::new(limits, shedder),
        metrics: metrics.map(Metrics::http_instruments),
        access_log,
        forwarding,
    };
    // One `Router::layer` call: each call adds a boxed service per route. axum's body
    // extractors stop at 2 MiB by themselves; `DefaultBodyLimit` (an extension on every
    // request) is only needed for another limit. A test pins axum's default. OpenAPI
    // validation, when a spec is in effect, runs inside the guard: after admission, before
    // the handler; without one there is no layer at all.
    let route_layer = route::RouteLayer(Arc::new(shared));
    let default_body_limit = limits.body_size == AXUM_BODY_LIMIT;
    let stack = ServiceBuilder::new().layer(route_layer);
    let router = match (validation, default_body_limit) {
        (None, true) => router.layer(stack),
        (None, false) => router.layer(stack.layer(DefaultBodyLimit::max(body_limit))),
        (Some(v), true) => router.layer(stack.layer(v)),
        (Some(v), false) => router.layer(stack.layer(DefaultBodyLimit::max(body_limit)).layer(v)),
    };
    Ok((router, adaptive))
}

/// The limit axum's body extractors apply when no `DefaultBodyLimit` is set, which is
/// also the chassis's default `server.limits.body_size`.
const AXUM_BODY_LIMIT: u64 = 2 * 1024 * 1024;

/// The server's adaptive limit, named `server`, when `resilience.load_shedding` is on.
fn shedder(
    config: &LoadSheddingConfig,
    metrics: Option<&Metrics>,
) -> Result<Option<guard::Shedder>, ConfigError> {
    if !config.enabled {
        return Ok(None);
    }
    let metrics = metrics.map_or_else(ResilienceMetrics::unregistered, |m| m.resilience().clone());
    // Validated when the config was loaded; this only fails for a config built by hand.
    let limit = AdaptiveLimit::new("server", config, &metrics)
        .map_err(|e| ConfigError::from(e.under("resilience.load_shedding")))?;
    Ok(Some(guard::Shedder::new(limit, config.retry_after_secs())))
}

/// What a listener serves: chassis endpoints by exact path, everything else through the
/// user stack. Exact matching on a handful of paths is cheaper than a second router.
#[derive(Clone)]
pub(crate) struct Dispatch {
    chassis: Option<Arc<(Router, Vec<String>)>>,
    user: Option<Router>,
    /// The connection's peer, for the request context (see `peer`).
    peer: Option<SocketAddr>,
}

impl Dispatch {
    /// `chassis` with the exact paths it serves, and/or the user stack.
    ///
    /// Both routers are given their (unit) state here, once: that turns every handler into
    /// a ready `Route`, which a router not given its state does on every request (cloning
    /// the boxed handler and each layer applied to it, and applying the layers again).
    /// `axum::serve` does the same, once per connection.
    pub(crate) fn new(chassis: Option<(Router, Vec<String>)>, user: Option<Router>) -> Self {
        Self {
            chassis: chassis.map(|(router, paths)| {
                // A chassis endpoint asked with a method it lacks: problem+json, as the
                // user's routes answer (axum adds `Allow` to the fallback's 405).
                let router = router
                    .method_not_allowed_fallback(|| async { problem::method_not_allowed(None) });
                Arc::new((router.with_state(()), paths))
            }),
            user: user.map(|router| router.with_state(())),
            peer: None,
        }
    }

    /// Routes one request of a connection whose [`Activity`] the future holds while the
    /// request is in flight.
    fn dispatch(&self, req: Request<Body>, activity: Arc<Activity>) -> DispatchFuture {
        let inner = match (&self.chassis, &self.user) {
            (Some(chassis), _) if is_chassis_path(&chassis.1, req.uri().path()) => {
                Either::Left(chassis.0.clone().call(req))
            }
            (_, Some(user)) => Either::Left(user.clone().call(req)),
            (_, None) => Either::Right(ready(Ok(problem(
                axum::http::StatusCode::NOT_FOUND,
                "no route matches this path",
            )))),
        };
        DispatchFuture {
            inner,
            peer: self.peer,
            _activity: activity,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request in flight on a connection.
    pub(crate) struct DispatchFuture {
        #[pin]
        inner: Either<RouteFuture<Infallible>, Ready<Result<Response<Body>, Infallible>>>,
        // Until the first poll, in which the chassis stack is called and reads it.
        peer: Option<SocketAddr>,
        // Counts the request as in flight for the connection's idle timeout until dropped.
        _activity: Arc<Activity>,
    }
}

impl Future for DispatchFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.peer.take() {
            Some(p) => peer::with_peer(p, || this.inner.poll(cx)),
            None => this.inner.poll(cx),
        }
    }
}

/// Whether `path` is one of the chassis `paths`: equal to one, or under one that ends in
/// `/` (`/admin/breakers/` covers `/admin/breakers/books`).
fn is_chassis_path(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| {
        p == path || (p.ends_with('/') && path.len() > p.len() && path.starts_with(p.as_str()))
    })
}
