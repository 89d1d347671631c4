//! RED metrics for every request to the user's router: a duration histogram labelled by
//! method, **route template** and status, and an in-flight gauge.
//!
//! The route comes from the [`RouteTemplate`](crate::server::RouteTemplate) that the inner
//! route-tagging layer copies onto the response; requests that matched no route are labelled
//! `unmatched`, so label cardinality stays bounded whatever paths clients send.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Method, Request, Response};
use pin_project_lite::pin_project;
use prometheus::{HistogramVec, IntGauge};
use tower::{Layer, Service};

use crate::server::RouteTemplate;

/// Route label for requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The instruments this layer records into.
#[derive(Clone)]
pub(crate) struct HttpInstruments {
    pub(crate) duration: HistogramVec,
    pub(crate) active: IntGauge,
}

/// Records RED metrics; with metrics disabled it passes requests straight through.
#[derive(Clone)]
pub(crate) struct HttpMetricsLayer {
    instruments: Option<HttpInstruments>,
}

impl HttpMetricsLayer {
    pub(crate) fn new(metrics: Option<&super::Metrics>) -> Self {
        Self {
            instruments: metrics.map(super::Metrics::http_instruments),
        }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct HttpMetrics<S> {
    inner: S,
    layer: HttpMetricsLayer,
}

/// OTel semantic conventions: known methods as-is, anything else `_OTHER`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

impl<S, B, RB> Service<Request<B>> for HttpMetrics<S>
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
        let method = method_label(req.method());
        let record = self.layer.instruments.as_ref().map(|i| {
            i.active.inc();
            Record {
                _guard: ActiveGuard(i.active.clone()),
                duration: i.duration.clone(),
                method,
                start: Instant::now(),
            }
        });
        ResponseFuture {
            inner: self.inner.call(req),
            record,
        }
    }
}

/// Decrements the in-flight gauge even if the request future is dropped (client gone).
struct ActiveGuard(IntGauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct Record {
    _guard: ActiveGuard,
    duration: HistogramVec,
    method: &'static str,
    start: Instant,
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
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
        if let (Ok(res), Some(rec)) = (&result, this.record.take()) {
            let route = res
                .extensions()
                .get::<RouteTemplate>()
                .map_or(UNMATCHED_ROUTE, RouteTemplate::as_str);
            rec.duration
                .with_label_values(&[rec.method, route, res.status().as_str()])
                .observe(rec.start.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn unmatched_requests_use_the_fixed_label() {
        let duration = HistogramVec::new(
            prometheus::HistogramOpts::new("d_seconds", "d"),
            &["m", "r", "s"],
        )
        .unwrap();
        let active = IntGauge::new("a", "a").unwrap();
        let svc = ServiceBuilder::new()
            .layer(HttpMetricsLayer {
                instruments: Some(HttpInstruments {
                    duration: duration.clone(),
                    active: active.clone(),
                }),
            })
            .service_fn(|_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
            });
        let req = Request::builder()
            .method("BREW")
            .uri("/x/123")
            .body(Body::empty())
            .unwrap();
        svc.oneshot(req).await.unwrap();
        assert_eq!(
            duration
                .with_label_values(&["_OTHER", UNMATCHED_ROUTE, "200"])
                .get_sample_count(),
            1
        );
        assert_eq!(active.get(), 0);
    }
}
