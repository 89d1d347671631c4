//! The chassis stack of the user's routes, applied inside the user's router with one
//! `Router::layer` call, which also covers the router's fallbacks: it runs right after
//! routing, so it knows the matched route template (`/books/{id}`) from the start. In
//! order: the request id, the trace context and the server span, the request context (for
//! logs), RED metrics and the access log line, then the request guard (panic catcher,
//! concurrency limits, body size, timeout); and problem+json for axum's empty 404, which
//! is only recognisable here, where a miss is known to be a routing miss.
//!
//! One layer rather than an outer one around the router and an inner one per route: every
//! layer moves the request and nests one more future, and `Router::layer` is needed anyway
//! for the route template. Every route gets a clone of this layer, but all clones share
//! one [`Shared`], so the concurrency limit is service-wide, not per route.

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
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::TraceContextExt as _;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::guard::{GuardFuture, Limits};
use super::problem::problem;
use super::{RequestId, X_REQUEST_ID};
use crate::client::Forwarding;
use crate::metrics::{HttpInstruments, InFlight};
use crate::telemetry::{RequestContext, otel, otlp};

/// State shared by every route.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) metrics: Option<HttpInstruments>,
    /// `logging.access`, which a config reload may change.
    pub(crate) access_log: Arc<AtomicBool>,
    /// The incoming headers that clients propagate, captured into the request context.
    pub(crate) forwarding: Arc<Forwarding>,
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
        let id = RequestId::from_headers(req.headers());
        let peer = || {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        };
        let (cx, span, parent_span_id) = match otel::get() {
            Some(o) => {
                let parent = o.propagation.extract_headers(req.headers());
                let remote = parent.span().span_context().clone();
                let (cx, span) = otel::server_span(o, &parent, &req, peer(), route.as_ref());
                (cx, span, remote.is_valid().then(|| remote.span_id()))
            }
            None => (opentelemetry::Context::new(), None, None),
        };
        let forwarded = shared.forwarding.capture(req.headers());
        let ctx = RequestContext::new(id.clone(), cx.clone(), parent_span_id, forwarded);
        let in_flight = shared
            .metrics
            .as_ref()
            .map(|m| m.start(req.method(), start));
        let access = shared
            .access_log
            .load(Ordering::Relaxed)
            .then(|| AccessRecord {
                method: req.method().clone(),
                peer: peer(),
                start,
            });
        // Inside the request context, for the logs of the user's own layers' `call`. The
        // OpenTelemetry context is attached only while the request future is polled: no
        // span or outgoing call starts in a `call`, and log lines find the trace ids in the
        // request context.
        let (inner, holds_slot) =
            ctx.sync_scope(|| shared.limits.call(&mut self.inner, req, start.into()));
        RouteFuture {
            inner: ctx.scope(inner.with_context(cx.clone())),
            shared: shared.clone(),
            slot: holds_slot.then_some(start),
            route,
            in_flight,
            access,
            id: Some(id),
            otel: Some(cx),
            span,
        }
    }
}

pin_project! {
    pub(crate) struct RouteFuture<F> {
        #[pin]
        inner: TaskLocalFuture<RequestContext, WithContext<GuardFuture<F>>>,
        shared: Arc<Shared>,
        // When the request started, while it holds a concurrency slot.
        slot: Option<Instant>,
        route: Option<MatchedPath>,
        in_flight: Option<InFlight>,
        access: Option<AccessRecord>,
        id: Option<RequestId>,
        // The request's OpenTelemetry context, holding its server span (or its ids).
        otel: Option<opentelemetry::Context>,
        // A sampled server span for the OTLP exporter (see `telemetry::otlp`).
        span: Option<otlp::ServerSpan>,
    }

    impl<F> PinnedDrop for RouteFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.slot.take().is_some() {
                this.shared.limits.release();
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
        let mut this = self.project();
        let Ok(mut res) = std::task::ready!(this.inner.as_mut().poll(cx));
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
        let otel = this.otel.take().unwrap_or_default();
        if let (Some(f), Some(m)) = (this.in_flight.take(), &this.shared.metrics) {
            m.finish(f, route, res.status(), otel::sampled_trace_id(&otel));
        }
        if let Some(rec) = this.access.take() {
            // In the request's context, for its ids.
            let ctx = this.inner.take_value();
            let _attached = otel.clone().attach();
            let log = || {
                tracing::info!(
                    target: "ms_chassis::access",
                    method = %rec.method,
                    route = route.unwrap_or(crate::metrics::UNMATCHED_ROUTE),
                    status = res.status().as_u16(),
                    duration_ms = rec.start.elapsed().as_secs_f64() * 1000.0,
                    request_id = this.id.as_ref().map(RequestId::as_str),
                    peer = rec.peer.map(|p| p.to_string()),
                    "request completed"
                );
            };
            match &ctx {
                Some(ctx) => ctx.sync_scope(log),
                None => log(),
            }
        }
        otel::end_server_span(&otel, this.span.take(), res.status());
        if let Some(id) = this.id.take() {
            res.headers_mut()
                .insert(X_REQUEST_ID, id.header_value().clone());
        }
        Poll::Ready(Ok(res))
    }
}
