//! A `request` span around each request to the user's router, carrying `request_id` so every
//! log line of the request has it, and the optional access log line at completion.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::instrument::{Instrument, Instrumented};

use crate::server::{RequestId, RouteTemplate};

#[derive(Clone, Copy)]
pub(crate) struct RequestSpanLayer {
    access_log: bool,
}

impl RequestSpanLayer {
    pub(crate) fn new(access_log: bool) -> Self {
        Self { access_log }
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            access_log: self.access_log,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RequestSpan<S> {
    inner: S,
    access_log: bool,
}

struct AccessRecord {
    method: Method,
    peer: Option<SocketAddr>,
    start: Instant,
}

impl<S, B, RB> Service<Request<B>> for RequestSpan<S>
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
            .map(RequestId::as_str)
            .unwrap_or_default();
        let span = tracing::info_span!("request", request_id = %request_id);
        let access = self.access_log.then(|| AccessRecord {
            method: req.method().clone(),
            peer: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            start: Instant::now(),
        });
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner: inner.instrument(span),
            access,
        }
    }
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        access: Option<AccessRecord>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = std::task::ready!(this.inner.as_mut().poll(cx));
        if let (Some(rec), Ok(res)) = (this.access.take(), &result) {
            let route = res
                .extensions()
                .get::<RouteTemplate>()
                .map_or("unmatched", RouteTemplate::as_str);
            let _entered = this.inner.span().enter();
            tracing::info!(
                target: "ms_chassis::access",
                method = %rec.method,
                route,
                status = res.status().as_u16(),
                duration_ms = rec.start.elapsed().as_secs_f64() * 1000.0,
                peer = rec.peer.map(|p| p.to_string()).unwrap_or_default(),
                "request completed"
            );
        }
        Poll::Ready(result)
    }
}
