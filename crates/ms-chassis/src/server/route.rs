//! The chassis stack of the user's routes, applied inside the user's router with one
//! `Router::layer` call, which also covers the router's fallbacks: it runs right after
//! routing, so it knows the matched route template (`/books/{id}`) from the start. In
//! order: the request id, the trace context and the server span, the request context (for
//! logs), RED metrics and the access log line, then the request guard (panic catcher,
//! concurrency limits, body size, timeout); and problem+json for axum's empty 404 and 405,
//! which are only recognisable here, where a miss is known to be a routing miss.
//!
//! One layer rather than an outer one around the router and an inner one per route: every
//! layer moves the request and nests one more future, and `Router::layer` is needed anyway
//! for the route template. Every route gets a clone of this layer, but all clones share
//! one [`Shared`], so the concurrency limit is service-wide, not per route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response, StatusCode, header};
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::TraceContextExt as _;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::guard::{GuardFuture, Limits};
use super::problem::{method_not_allowed, problem};
use super::{RequestId, X_REQUEST_ID};
use crate::client::Forwarding;
use crate::metrics::HttpInstruments;
use crate::telemetry::propagation::IncomingHeaders;
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
        let incoming = IncomingHeaders::scan(req.headers());
        let id = RequestId::from_incoming(incoming.request_id);
        let peer = super::peer::current();
        let (cx, span, parent_span_id) = match otel::get() {
            Some(o) => {
                let parent = o.propagation.extract_incoming(&incoming);
                let remote = parent.span().span_context().clone();
                let (cx, span) = otel::server_span(o, &parent, &req, peer, route.as_ref());
                (cx, span, remote.is_valid().then(|| remote.span_id()))
            }
            None => (opentelemetry::Context::new(), None, None),
        };
        let forwarded = shared.forwarding.capture(req.headers());
        let ctx = RequestContext::new(id, cx.clone(), parent_span_id, forwarded, peer);
        let metered = shared.metrics.as_ref().map(|m| m.start(req.method()));
        let access = shared
            .access_log
            .load(Ordering::Relaxed)
            .then(|| req.method().clone());
        // Not inside the request context: `inner` is the route's `Route` (under the OpenAPI
        // validator when a spec is in effect, whose `call` checks the request head and logs
        // nothing), and a `Route`'s `call` only clones its boxed service into a `Oneshot`.
        // The user's layers and handler run when that is first polled, inside the request
        // context and with the OpenTelemetry context attached.
        let (inner, holds_slot) = shared.limits.call(&mut self.inner, req, start.into());
        RouteFuture {
            inner: ctx.scope(inner.with_context(cx)),
            shared: shared.clone(),
            start,
            holds_slot,
            route,
            metered,
            access,
            span: span.map(Box::new),
        }
    }
}

pin_project! {
    /// Everything here is moved a few times before the first poll (into axum's box among
    /// others), so what is large or rare is boxed or left in the request context: the
    /// request id and the OpenTelemetry context are read back from there at the end.
    pub(crate) struct RouteFuture<F> {
        #[pin]
        inner: TaskLocalFuture<RequestContext, WithContext<GuardFuture<F>>>,
        shared: Arc<Shared>,
        start: Instant,
        // Whether the request holds a concurrency slot, to give back.
        holds_slot: bool,
        route: Option<MatchedPath>,
        // The method's label while the request counts in the in-flight gauge.
        metered: Option<&'static str>,
        // The method, when the request is to be logged.
        access: Option<Method>,
        // A sampled server span for the OTLP exporter (see `telemetry::otlp`).
        span: Option<Box<otlp::ServerSpan>>,
    }

    impl<F> PinnedDrop for RouteFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if std::mem::take(this.holds_slot) {
                this.shared.limits.release();
            }
            if let (Some(_), Some(m)) = (this.metered.take(), &this.shared.metrics) {
                // Dropped unfinished: the client went away.
                m.abandon();
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
        if std::mem::take(this.holds_slot) {
            this.shared.limits.finish(*this.start);
        }
        let route = this.route.as_ref().map(MatchedPath::as_str);
        // The status first: the header lookup is only for the rare 404 or 405.
        let bare = |res: &Response<Body>| !res.headers().contains_key(header::CONTENT_TYPE);
        match res.status() {
            StatusCode::NOT_FOUND if route.is_none() && bare(&res) => {
                res = problem(StatusCode::NOT_FOUND, "no route matches this path");
            }
            StatusCode::METHOD_NOT_ALLOWED if bare(&res) => {
                res = method_not_allowed(res.headers().get(header::ALLOW).cloned());
            }
            _ => {}
        }
        // Put back after every poll, so it is here once the request is done.
        let Some(ctx) = this.inner.take_value() else {
            unreachable!("the request context is back in its future after each poll")
        };
        let otel = ctx.otel_context();
        if let (Some(method), Some(m)) = (this.metered.take(), &this.shared.metrics) {
            m.finish(
                method,
                *this.start,
                route,
                res.status(),
                otel::sampled_trace_id(otel),
            );
        }
        if let Some(method) = this.access.take() {
            // In the request's context, for its ids.
            let _attached = otel.clone().attach();
            ctx.sync_scope(|| {
                tracing::info!(
                    target: "ms_chassis::access",
                    method = %method,
                    route = route.unwrap_or(crate::metrics::UNMATCHED_ROUTE),
                    status = res.status().as_u16(),
                    duration_ms = this.start.elapsed().as_secs_f64() * 1000.0,
                    request_id = ctx.request_id().as_str(),
                    peer = ctx.peer_addr().map(|p| p.to_string()),
                    "request completed"
                );
            });
        }
        otel::end_server_span(otel, this.span.take().map(|s| *s), res.status());
        res.headers_mut()
            .insert(X_REQUEST_ID, ctx.into_request_id().into_header_value());
        Poll::Ready(Ok(res))
    }
}
