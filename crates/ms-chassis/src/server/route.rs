//! The route-aware part of the stack, applied inside the user's router with one
//! `Router::layer` call so that it runs after routing and knows the matched route template
//! (`/books/{id}`): RED metrics, the access log line, the request guard (panic catcher,
//! concurrency limits, body size, timeout), and problem+json for axum's empty 404 — which
//! is only recognisable here, where a miss is known to be a routing miss.
//!
//! Every route gets a clone of this layer, but all clones share one [`Shared`], so the
//! concurrency limit is service-wide, not per route.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{Method, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::RequestId;
use super::guard::{GuardFuture, Limits};
use super::problem::problem;
use crate::metrics::{HttpInstruments, InFlight};
use crate::telemetry::RequestContext;

/// State shared by every route.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) metrics: Option<HttpInstruments>,
    /// `logging.access`, which a config reload may change.
    pub(crate) access_log: Arc<AtomicBool>,
}

#[derive(Clone)]
pub(crate) struct RouteLayer(pub(crate) Arc<Shared>);

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteService {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RouteService<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct AccessRecord {
    method: Method,
    request_id: Option<RequestId>,
    peer: Option<SocketAddr>,
    start: Instant,
}

impl<S> Service<Request<Body>> for RouteService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = RouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let shared = &self.shared;
        let start = Instant::now();
        let route = req.extensions().get::<MatchedPath>().cloned();
        if let Some(r) = &route {
            crate::telemetry::otel::record_route(
                crate::telemetry::otel::span_method(req.method()),
                r.as_str(),
            );
        }
        let in_flight = shared
            .metrics
            .as_ref()
            .map(|m| m.start(req.method(), start));
        let access = shared
            .access_log
            .load(Ordering::Relaxed)
            .then(|| AccessRecord {
                method: req.method().clone(),
                request_id: RequestContext::with_current(|c| c.request_id().clone()),
                peer: req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0),
                start,
            });
        let (inner, holds_slot) = shared.limits.call(&mut self.inner, req, start.into());
        RouteFuture {
            inner,
            shared: shared.clone(),
            slot: holds_slot.then_some(start),
            route,
            in_flight,
            access,
        }
    }
}

pin_project! {
    pub(crate) struct RouteFuture<F> {
        #[pin]
        inner: GuardFuture<F>,
        shared: Arc<Shared>,
        // When the request started, while it holds a concurrency slot.
        slot: Option<Instant>,
        route: Option<MatchedPath>,
        in_flight: Option<InFlight>,
        access: Option<AccessRecord>,
    }

    impl<F> PinnedDrop for RouteFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.slot.take().is_some() {
                this.shared.limits.release();
            }
            if let (Some(f), Some(m)) = (this.in_flight.take(), &this.shared.metrics) {
                m.abandon(f);
            }
        }
    }
}

impl<F> Future for RouteFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut res) = std::task::ready!(this.inner.poll(cx));
        if let Some(start) = this.slot.take() {
            this.shared.limits.finish(start);
        }
        let route = this.route.as_ref().map(MatchedPath::as_str);
        if route.is_none()
            && res.status() == StatusCode::NOT_FOUND
            && !res.headers().contains_key(header::CONTENT_TYPE)
        {
            res = problem(StatusCode::NOT_FOUND, "no route matches this path");
        }
        if let (Some(f), Some(m)) = (this.in_flight.take(), &this.shared.metrics) {
            m.finish(
                f,
                route,
                res.status(),
                crate::telemetry::otel::sampled_trace_id(),
            );
        }
        if let Some(rec) = this.access.take() {
            tracing::info!(
                target: "ms_chassis::access",
                method = %rec.method,
                route = route.unwrap_or(crate::metrics::UNMATCHED_ROUTE),
                status = res.status().as_u16(),
                duration_ms = rec.start.elapsed().as_secs_f64() * 1000.0,
                request_id = rec.request_id.as_ref().map(RequestId::as_str),
                peer = rec.peer.map(|p| p.to_string()),
                "request completed"
            );
        }
        Poll::Ready(Ok(res))
    }
}
