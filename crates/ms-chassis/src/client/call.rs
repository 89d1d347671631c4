//! The innermost service of a client's stack: one attempt of a call over reqwest, inside
//! a client span, with the trace context injected and the attempt measured.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use prometheus::{Histogram, HistogramVec};

use crate::metrics::method_label;
use crate::resilience::now;
use crate::resilience::retry::ReplayBody;
use crate::telemetry::{otel, propagation};

/// A call's body on its way through the client's stack, with the call's own state beside
/// it. Retry replays the whole for each attempt, sharing the state; carried here rather
/// than in a request extension, it costs no allocation per attempt.
pub(crate) struct CallBody {
    pub(crate) bytes: Bytes,
    pub(crate) state: Arc<CallState>,
    /// The URL the request's URI was made from, for the first attempt to use rather than
    /// parse the URI again. A replay leaves it out: a retry, rare, parses the URI.
    pub(crate) url: Option<reqwest::Url>,
}

impl ReplayBody for CallBody {
    fn try_replay(&self) -> Option<Self> {
        Some(CallBody {
            bytes: self.bytes.clone(),
            state: Arc::clone(&self.state),
            url: None,
        })
    }
}

/// What the attempts of one call share, captured when it was sent.
pub(crate) struct CallState {
    /// The trace context the call was made in, so every attempt's span has the same parent
    /// whichever task polls it.
    pub(crate) parent: opentelemetry::Context,
    /// Attempts made so far.
    pub(crate) attempts: AtomicU32,
}

/// One attempt over reqwest.
#[derive(Clone)]
pub(crate) struct Call {
    endpoint: Arc<Endpoint>,
}

/// What every attempt of a client's calls needs, behind one `Arc`: the stack is cloned
/// for every call (and again by retry), so each field here would cost a reference count
/// twice per call.
struct Endpoint {
    http: reqwest::Client,
    client: Arc<str>,
    server_address: Arc<str>,
    server_port: Option<u16>,
    /// Bound on the attempt, as the per-attempt timeout layer applies it: a span dropped
    /// after it is reported as a timeout rather than a cancellation.
    attempt_timeout: Duration,
    duration: HistogramVec,
    /// `duration`'s children met so far, so that an attempt does not hash its five labels:
    /// the method, status and error vary, the rest is fixed per client.
    observers: RwLock<Vec<(ObserverKey, Histogram)>>,
}

/// The labels of `http_client_request_duration_seconds` that vary between attempts.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ObserverKey {
    method: &'static str,
    status: Option<StatusCode>,
    error: Option<&'static str>,
}

/// Bound on the children an [`Endpoint`] keeps: the label values are bounded anyway
/// (methods, statuses, error types), this only bounds the linear search.
const MAX_OBSERVERS: usize = 32;

impl Call {
    pub(crate) fn new(
        http: reqwest::Client,
        client: Arc<str>,
        base: &reqwest::Url,
        attempt_timeout: Duration,
        duration: HistogramVec,
    ) -> Self {
        Call {
            endpoint: Arc::new(Endpoint {
                http,
                client,
                server_address: base.host_str().unwrap_or_default().into(),
                server_port: base.port_or_known_default(),
                attempt_timeout,
                duration,
                observers: RwLock::new(Vec::new()),
            }),
        }
    }
}

impl tower::Service<Request<CallBody>> for Call {
    type Response = Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<CallBody>) -> Self::Future {
        let (mut parts, CallBody { bytes, state, url }) = req.into_parts();
        let resend = state.attempts.fetch_add(1, Ordering::Relaxed);
        let mut attempt = Attempt::start(&self.endpoint, &parts, &state.parent, resend);
        propagation::global().inject_headers(&attempt.cx, &mut parts.headers);
        // `execute` does no I/O until polled; called here, the boxed future holds only
        // its small handle, not the request too.
        let pending = to_reqwest(parts, bytes, url).map(|r| self.endpoint.http.execute(r));
        Box::pin(async move {
            // reqwest's errors show the whole URL, query and password included; client
            // errors name the path only.
            let result = match pending {
                Ok(p) => p.await,
                Err(e) => Err(e),
            }
            .map_err(reqwest::Error::without_url);
            match &result {
                Ok(res) => attempt.finish(Some(res.status()), None),
                Err(e) => attempt.finish(None, Some(error_type(e))),
            }
            result.map(Response::from)
        })
    }
}

/// The attempt as a reqwest request. When the request still targets `url`, the URL parsed
/// when the call was sent, and carries no extensions, `url` is used: the same request as
/// `reqwest::Request::try_from` makes, which prints the URI and parses it again. Anything
/// else takes that conversion.
fn to_reqwest(
    parts: Parts,
    body: Bytes,
    url: Option<reqwest::Url>,
) -> Result<reqwest::Request, reqwest::Error> {
    if let Some(url) = url.filter(|u| prints_as(&parts.uri, u.as_str()))
        && parts.extensions.is_empty()
    {
        let mut r = reqwest::Request::new(parts.method, url);
        *r.headers_mut() = parts.headers;
        *r.version_mut() = parts.version;
        *r.body_mut() = Some(body.into());
        Ok(r)
    } else {
        reqwest::Request::try_from(Request::from_parts(parts, body))
    }
}

/// Whether `uri` prints as `url` (as `uri.to_string() == url`, without printing it): then
/// parsing its print gives back the URL `url` was printed from.
fn prints_as(uri: &http::Uri, url: &str) -> bool {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .and_then(|r| r.strip_prefix(authority.as_str()))
        .and_then(|r| r.strip_prefix(uri.path()));
    match (rest, uri.query()) {
        (Some(rest), Some(q)) => rest.strip_prefix('?') == Some(q),
        (Some(rest), None) => rest.is_empty(),
        (None, _) => false,
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
    endpoint: Arc<Endpoint>,
    done: bool,
}

impl Attempt {
    fn start(
        endpoint: &Arc<Endpoint>,
        req: &Parts,
        parent: &opentelemetry::Context,
        resend: u32,
    ) -> Self {
        let method = method_label(&req.method);
        let cx = match otel::get() {
            Some(o) => {
                let name = otel::span_method(&req.method);
                let cx = otel::start_span(o, Cow::Borrowed(name), SpanKind::Client, parent);
                let span = cx.span();
                if span.is_recording() {
                    let mut attrs = vec![
                        KeyValue::new("http.request.method", method),
                        KeyValue::new("server.address", endpoint.server_address.to_string()),
                        KeyValue::new("url.full", redacted_url(&req.uri)),
                        KeyValue::new("ms_chassis.client", endpoint.client.to_string()),
                    ];
                    if method == "_OTHER" {
                        attrs.push(KeyValue::new(
                            "http.request.method_original",
                            req.method.as_str().to_owned(),
                        ));
                    }
                    if let Some(port) = endpoint.server_port {
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
            start: now(),
            method,
            endpoint: Arc::clone(endpoint),
            done: false,
        }
    }

    fn finish(&mut self, status: Option<StatusCode>, error: Option<&'static str>) {
        self.done = true;
        let key = ObserverKey {
            method: self.method,
            status,
            error,
        };
        self.endpoint.observe(key, self.elapsed().as_secs_f64());
        let span = self.cx.span();
        // `end` reads the wall clock even for a span that records nothing.
        if span.is_recording() {
            if let Some(s) = status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(s.as_u16()),
                ));
            }
            if let Some(e) = key.error_label() {
                span.set_attribute(KeyValue::new("error.type", e.to_owned()));
                span.set_status(Status::error(e.to_owned()));
            }
            span.end();
        }
    }

    fn elapsed(&self) -> Duration {
        now().saturating_duration_since(self.start)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            let why = if self.elapsed() >= self.endpoint.attempt_timeout {
                "timeout"
            } else {
                "cancelled"
            };
            self.finish(None, Some(why));
        }
    }
}

impl ObserverKey {
    /// The `error_type` label: the transport error, else a 5xx status, else none.
    fn error_label(&self) -> Option<&str> {
        self.error.or_else(|| {
            self.status
                .as_ref()
                .filter(|s| s.is_server_error())
                .map(StatusCode::as_str)
        })
    }
}

impl Endpoint {
    /// Records an attempt's duration in the child of `duration` for `key`.
    fn observe(&self, key: ObserverKey, seconds: f64) {
        {
            let observers = self
                .observers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, h)) = observers.iter().find(|(k, _)| *k == key) {
                h.observe(seconds);
                return;
            }
        }
        let status = key.status.as_ref().map_or("", StatusCode::as_str);
        let h = self.duration.with_label_values(&[
            &*self.client,
            &*self.server_address,
            key.method,
            status,
            key.error_label().unwrap_or(""),
        ]);
        h.observe(seconds);
        let mut observers = self
            .observers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if observers.len() < MAX_OBSERVERS && !observers.iter().any(|(k, _)| *k == key) {
            observers.push((key, h));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_prints_as_the_url_it_was_parsed_from_and_only_that() {
        for url in [
            "http://h/x",
            "http://127.0.0.1:8080/books/7?x=1&y=2",
            "https://user:pw@h:8443/a/b?",
        ] {
            let uri: http::Uri = url.parse().unwrap();
            assert_eq!(uri.to_string(), url);
            assert!(prints_as(&uri, url), "{url}");
        }
        let uri: http::Uri = "http://h/x?q=1".parse().unwrap();
        for other in [
            "http://h/x?q=2",
            "http://h/x?q=1#f",
            "http://h/x",
            "https://h/x?q=1",
            "http://g/x?q=1",
            "http://h/y?q=1",
        ] {
            assert!(!prints_as(&uri, other), "{other}");
        }
        let relative: http::Uri = "/x".parse().unwrap();
        assert!(
            !prints_as(&relative, "/x"),
            "takes the conversion, which refuses it"
        );
    }

    #[test]
    fn to_reqwest_makes_the_request_try_from_makes() {
        let url = reqwest::Url::parse("http://h:8080/a/b?c=d").unwrap();
        let build = || {
            let mut req = Request::new(Bytes::from_static(b"body"));
            *req.method_mut() = http::Method::PUT;
            *req.uri_mut() = url.as_str().parse().unwrap();
            req.headers_mut()
                .insert("x-a", http::HeaderValue::from_static("1"));
            req.into_parts()
        };
        let (parts, body) = build();
        let fast = to_reqwest(parts, body, Some(url.clone())).unwrap();
        let (parts, body) = build();
        let slow = reqwest::Request::try_from(Request::from_parts(parts, body)).unwrap();
        for r in [&fast, &slow] {
            assert_eq!(r.method(), http::Method::PUT);
            assert_eq!(r.url(), &url);
            assert_eq!(r.headers().get("x-a").unwrap(), "1");
            assert_eq!(r.version(), http::Version::HTTP_11);
            let body = r.body().and_then(reqwest::Body::as_bytes);
            assert_eq!(body, Some(&b"body"[..]));
        }
        // A URL that is not the request's is not used.
        let (parts, body) = build();
        let other = reqwest::Url::parse("http://elsewhere/").unwrap();
        assert_eq!(to_reqwest(parts, body, Some(other)).unwrap().url(), &url);
    }
}
