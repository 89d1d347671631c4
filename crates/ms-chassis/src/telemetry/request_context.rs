//! The per-request context that log lines read: the request id today, trace ids once
//! tracing lands. It lives in a tokio task-local for the duration of the request rather
//! than in a `tracing` span, because creating and entering a span per request cost about
//! 15% of bare axum's throughput in `bench/`, while a task-local costs a pointer swap per
//! poll. Work spawned onto other tasks can carry it along with [`RequestContext::scope`].
//!
//! This layer also writes the optional access log line when the response is ready.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::server::{RequestId, RouteTemplate};

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What the chassis knows about the request being handled.
#[derive(Clone, Debug)]
pub struct RequestContext {
    request_id: RequestId,
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

    /// Calls `f` with the current context without cloning it.
    pub(crate) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }
}

#[derive(Clone, Copy)]
pub(crate) struct RequestContextLayer {
    access_log: bool,
}

impl RequestContextLayer {
    pub(crate) fn new(access_log: bool) -> Self {
        Self { access_log }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService {
            inner,
            access_log: self.access_log,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RequestContextService<S> {
    inner: S,
    access_log: bool,
}

struct AccessRecord {
    method: Method,
    request_id: RequestId,
    peer: Option<SocketAddr>,
    start: Instant,
}

impl<S, B, RB> Service<Request<B>> for RequestContextService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        let access = self.access_log.then(|| AccessRecord {
            method: req.method().clone(),
            request_id: request_id.clone(),
            peer: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            start: Instant::now(),
        });
        let ctx = RequestContext { request_id };
        // `call` itself may log (or panic-log) too, so it runs inside the context as well.
        let inner = CURRENT.sync_scope(ctx.clone(), || self.inner.call(req));
        ResponseFuture {
            inner: ctx.scope(inner),
            access,
        }
    }
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: TaskLocalFuture<RequestContext, F>,
        access: Option<AccessRecord>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Some(rec), Ok(res)) = (this.access.take(), &result) {
            let route = res
                .extensions()
                .get::<RouteTemplate>()
                .map_or("unmatched", RouteTemplate::as_str);
            tracing::info!(
                target: "ms_chassis::access",
                method = %rec.method,
                route,
                status = res.status().as_u16(),
                duration_ms = rec.start.elapsed().as_secs_f64() * 1000.0,
                request_id = rec.request_id.as_str(),
                peer = rec.peer.map(|p| p.to_string()).unwrap_or_default(),
                "request completed"
            );
        }
        Poll::Ready(result)
    }
}
