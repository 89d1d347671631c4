//! The per-request context that log lines read: the request id today, trace ids once
//! tracing lands. It lives in a tokio task-local for the duration of the request rather
//! than in a `tracing` span, because creating and entering a span per request cost about
//! 15% of bare axum's throughput in `bench/`, while a task-local costs a pointer swap per
//! poll. Work spawned onto other tasks can carry it along with [`RequestContext::scope`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use tokio::task::futures::TaskLocalFuture;

use super::RequestId;

/// Headers captured from one incoming request for clients to copy onto their calls
/// (`clients.*.propagate_headers`); the client's forwarding table decides which.
pub(crate) type CapturedHeaders = Arc<[(HeaderName, HeaderValue)]>;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What the chassis knows about the request being handled.
#[derive(Clone, Debug)]
pub struct RequestContext {
    request_id: RequestId,
    otel: opentelemetry::Context,
    parent_span_id: Option<opentelemetry::trace::SpanId>,
    /// Incoming headers that some client propagates (`clients.*.propagate_headers`).
    forwarded: Option<CapturedHeaders>,
    peer: Option<SocketAddr>,
}

impl RequestContext {
    /// The context of the request this task is handling, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The request id.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// Runs `fut` with this context, so its log lines carry the request id — for work the
    /// handler spawns onto another task:
    ///
    /// ```
    /// # async fn handler() {
    /// if let Some(ctx) = ms_chassis::telemetry::RequestContext::current() {
    ///     tokio::spawn(ctx.scope(async { tracing::info!("still knows the request id") }));
    /// }
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<RequestContext, F> {
        CURRENT.scope(self, fut)
    }

    pub(crate) fn new(
        request_id: RequestId,
        otel: opentelemetry::Context,
        parent_span_id: Option<opentelemetry::trace::SpanId>,
        forwarded: Option<CapturedHeaders>,
        peer: Option<SocketAddr>,
    ) -> Self {
        Self {
            request_id,
            otel,
            parent_span_id,
            forwarded,
            peer,
        }
    }

    /// The address of the client's end of the connection (the proxy's, behind one). The
    /// chassis puts it here rather than in axum's `ConnectInfo` extension, which it does
    /// not insert: that extension costs more per request than the value is worth to most.
    ///
    /// ```
    /// async fn handler() -> String {
    ///     let peer = ms_chassis::telemetry::RequestContext::current().and_then(|c| c.peer_addr());
    ///     format!("hello, {}", peer.map_or("stranger".to_owned(), |p| p.ip().to_string()))
    /// }
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The request id, taken out at the end of the request to be echoed.
    pub(crate) fn into_request_id(self) -> RequestId {
        self.request_id
    }

    /// The incoming headers captured for clients to propagate.
    pub(crate) fn forwarded(&self) -> &[(HeaderName, HeaderValue)] {
        self.forwarded.as_deref().unwrap_or_default()
    }

    /// The OpenTelemetry context of the request's server span: pass it to
    /// [`inject_headers`](crate::telemetry::propagation) on outgoing calls made from
    /// another task.
    pub fn otel_context(&self) -> &opentelemetry::Context {
        &self.otel
    }

    /// The span id of the caller's span, when the request carried trace context.
    pub fn parent_span_id(&self) -> Option<opentelemetry::trace::SpanId> {
        self.parent_span_id
    }

    /// Runs `f` (a service's `call`, say) inside this context.
    pub(crate) fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
    }

    /// Calls `f` with the current context without cloning it.
    pub(crate) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }
}
