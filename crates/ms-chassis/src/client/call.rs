//! The innermost service of a client's stack: one attempt of a call over reqwest, inside
//! a client span, with the trace context injected and the attempt measured.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{Method, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use prometheus::HistogramVec;

use crate::telemetry::{otel, propagation};

/// The trace context a call was made in, captured when it was sent, so every attempt's
/// span has the same parent whichever task polls it.
#[derive(Clone)]
pub(crate) struct CallContext {
    pub(crate) parent: opentelemetry::Context,
    /// Attempts made so far; shared by the retries of one call (request parts are cloned
    /// for a retry, and this clone shares the counter).
    pub(crate) attempts: Arc<AtomicU32>,
}

/// One attempt over reqwest.
#[derive(Clone)]
pub(crate) struct Call {
    pub(crate) http: reqwest::Client,
    pub(crate) client: Arc<str>,
    pub(crate) server_address: Arc<str>,
    pub(crate) server_port: Option<u16>,
    /// Bound on the attempt, as the per-attempt timeout layer applies it: a span dropped
    /// after it is reported as a timeout rather than a cancellation.
    pub(crate) attempt_timeout: Duration,
    pub(crate) duration: HistogramVec,
}

impl tower::Service<Request<Bytes>> for Call {
    type Response = Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let call_cx = req.extensions_mut().remove::<CallContext>();
        let resend = call_cx
            .as_ref()
            .map_or(0, |c| c.attempts.fetch_add(1, Ordering::Relaxed));
        let parent = call_cx.map_or_else(opentelemetry::Context::current, |c| c.parent);
        let mut attempt = Attempt::start(self, &req, &parent, resend);
        propagation::global().inject_headers(&attempt.cx, req.headers_mut());
        let http = self.http.clone();
        Box::pin(async move {
            let sent = reqwest::Request::try_from(req);
            let result = match sent {
                Ok(r) => http.execute(r).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(res) => attempt.finish(Some(res.status()), None),
                Err(e) => attempt.finish(None, Some(error_type(e))),
            }
            result.map(Response::from)
        })
    }
}

/// The OTel `error.type` of a failed attempt.
fn error_type(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "transport"
    }
}

/// One attempt's span and clock. Dropped unfinished, it reports a timeout (when the
/// attempt's bound has passed) or a cancellation.
struct Attempt {
    cx: opentelemetry::Context,
    start: Instant,
    method: &'static str,
    client: Arc<str>,
    server_address: Arc<str>,
    attempt_timeout: Duration,
    duration: HistogramVec,
    done: bool,
}

impl Attempt {
    fn start(
        call: &Call,
        req: &Request<Bytes>,
        parent: &opentelemetry::Context,
        resend: u32,
    ) -> Self {
        let method = method_label(req.method());
        let cx = match otel::get() {
            Some(o) => {
                let span = o
                    .tracer
                    .span_builder(Cow::Borrowed(if method == "_OTHER" {
                        "HTTP"
                    } else {
                        method
                    }))
                    .with_kind(SpanKind::Client)
                    .start_with_context(&o.tracer, parent);
                let cx = parent.with_span(span);
                let span = cx.span();
                if span.is_recording() {
                    let mut attrs = vec![
                        KeyValue::new("http.request.method", req.method().as_str().to_owned()),
                        KeyValue::new("server.address", call.server_address.to_string()),
                        KeyValue::new("url.full", redacted_url(req.uri())),
                        KeyValue::new("ms_chassis.client", call.client.to_string()),
                    ];
                    if let Some(port) = call.server_port {
                        attrs.push(KeyValue::new("server.port", i64::from(port)));
                    }
                    if resend > 0 {
                        attrs.push(KeyValue::new(
                            "http.request.resend_count",
                            i64::from(resend),
                        ));
                    }
                    span.set_attributes(attrs);
                }
                cx
            }
            None => parent.clone(),
        };
        Attempt {
            cx,
            start: Instant::now(),
            method,
            client: Arc::clone(&call.client),
            server_address: Arc::clone(&call.server_address),
            attempt_timeout: call.attempt_timeout,
            duration: call.duration.clone(),
            done: false,
        }
    }

    fn finish(&mut self, status: Option<http::StatusCode>, error: Option<&str>) {
        self.done = true;
        let status_label = status.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let error = error.map(Cow::Borrowed).or_else(|| {
            status
                .filter(|s| s.is_server_error())
                .map(|s| Cow::Owned(s.as_str().to_owned()))
        });
        self.duration
            .with_label_values(&[
                &*self.client,
                &*self.server_address,
                self.method,
                &status_label,
                error.as_deref().unwrap_or(""),
            ])
            .observe(self.start.elapsed().as_secs_f64());
        let span = self.cx.span();
        if span.is_recording() {
            if let Some(s) = status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(s.as_u16()),
                ));
            }
            if let Some(e) = &error {
                span.set_attribute(KeyValue::new("error.type", e.to_string()));
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            let why = if self.start.elapsed() >= self.attempt_timeout {
                "timeout"
            } else {
                "cancelled"
            };
            self.finish(None, Some(why));
        }
    }
}

/// The method as a bounded metric label: the standard methods, else `_OTHER` (as the OTel
/// HTTP conventions say).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// The URL for `url.full`, without userinfo or query (either may carry credentials).
fn redacted_url(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(p) => format!("{scheme}://{host}:{p}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}
