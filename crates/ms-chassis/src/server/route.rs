//! Route tagging, applied inside the user's router with `Router::layer` so that it runs
//! after routing: it copies axum's [`MatchedPath`] onto the response, where the outer metrics
//! and logging layers read the route template. It also turns axum's empty default 404 into
//! problem+json, which is only possible here, where a miss is known to be a routing miss.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::problem::problem;

/// The route template (`/books/{id}`) that served a request, on the response extensions.
#[derive(Clone, Debug)]
pub(crate) struct RouteTemplate(MatchedPath);

impl RouteTemplate {
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

#[derive(Clone, Copy, Default)]
pub(crate) struct RouteTagLayer;

impl<S> Layer<S> for RouteTagLayer {
    type Service = RouteTag<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteTag { inner }
    }
}

#[derive(Clone)]
pub(crate) struct RouteTag<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RouteTag<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        ResponseFuture {
            inner: self.inner.call(req),
            route,
        }
    }
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &mut result {
            match this.route.take() {
                Some(route) => {
                    res.extensions_mut().insert(RouteTemplate(route));
                }
                None if res.status() == StatusCode::NOT_FOUND
                    && !res.headers().contains_key(header::CONTENT_TYPE) =>
                {
                    *res = problem(StatusCode::NOT_FOUND, "no route matches this path");
                }
                None => {}
            }
        }
        Poll::Ready(result)
    }
}
