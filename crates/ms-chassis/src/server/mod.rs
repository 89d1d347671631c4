//! The chassis server stack around the user's router, and the listeners.
//!
//! Outermost first: request id, request context (logs, access log), RED metrics, panic catcher,
//! load shedding with a global concurrency limit, body size check, timeout, then the user's
//! router. The chassis endpoints (health, metrics) are routed *outside* this stack, so they
//! answer even when the user's routes are saturated or timing out.

mod guard;
mod problem;
mod request_id;
mod route;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{Request, Response};
use axum::serve::IncomingStream;
use futures_util::future::Either;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};

use crate::config::ChassisConfig;
use crate::metrics::{HttpMetrics, HttpMetricsLayer, Metrics};
use crate::telemetry::{RequestContextLayer, RequestContextService};

pub use problem::PROBLEM_JSON;
pub(crate) use problem::problem;
pub use request_id::{RequestId, X_REQUEST_ID};
pub(crate) use route::RouteTemplate;

/// The user's router inside the chassis stack, outermost first.
pub(crate) type UserStack =
    request_id::RequestIdService<RequestContextService<HttpMetrics<guard::RequestGuard<Router>>>>;

/// Wraps the user's router in the chassis stack.
pub(crate) fn user_stack(router: Router, cfg: &ChassisConfig, metrics: Option<&Metrics>) -> UserStack {
    let limits = &cfg.server.limits;
    let body_limit = usize::try_from(limits.body_size).unwrap_or(usize::MAX);
    // One `Router::layer` call: each call adds a boxed service per route.
    let router = router.layer(
        ServiceBuilder::new()
            .layer(route::RouteTagLayer)
            .layer(DefaultBodyLimit::max(body_limit)),
    );
    ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(RequestContextLayer::new(cfg.logging.access))
        .layer(HttpMetricsLayer::new(metrics))
        .layer(guard::RequestGuardLayer::new(limits))
        .service(router)
}

/// The service a listener serves: chassis endpoints by exact path, everything else through
/// the user stack. Exact matching on a handful of paths is cheaper than a second router.
#[derive(Clone)]
pub(crate) struct Dispatch {
    chassis: Option<(Router, Arc<[String]>)>,
    user: Option<UserStack>,
    peer: Option<SocketAddr>,
}

impl Dispatch {
    /// `chassis` with the exact paths it serves, and/or the user stack.
    pub(crate) fn new(chassis: Option<(Router, Vec<String>)>, user: Option<UserStack>) -> Self {
        Self {
            chassis: chassis.map(|(r, paths)| (r, paths.into())),
            user,
            peer: None,
        }
    }
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<
        Either<axum::routing::future::RouteFuture<Infallible>, <UserStack as Service<Request<Body>>>::Future>,
        Ready<Result<Response<Body>, Infallible>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        if let Some((router, paths)) = &mut self.chassis
            && paths.iter().any(|p| p == req.uri().path())
        {
            return Either::Left(Either::Left(router.call(req)));
        }
        match &mut self.user {
            Some(user) => Either::Left(Either::Right(user.call(req))),
            None => Either::Right(ready(Ok(problem(
                axum::http::StatusCode::NOT_FOUND,
                "no route matches this path",
            )))),
        }
    }
}

/// Hands each accepted connection a [`Dispatch`] that knows the peer address.
#[derive(Clone)]
pub(crate) struct MakeDispatch(pub(crate) Dispatch);

impl Service<IncomingStream<'_, TcpListener>> for MakeDispatch {
    type Response = Dispatch;
    type Error = Infallible;
    type Future = Ready<Result<Dispatch, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        let mut d = self.0.clone();
        d.peer = Some(*stream.remote_addr());
        ready(Ok(d))
    }
}
