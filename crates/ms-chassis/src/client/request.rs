//! [`ClientRequest`]: one call being built (headers, body, query, its own timeout), and
//! sending it through the client's stack.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use axum::body::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use super::call::{CallBody, CallState};
use super::response::BodyBounds;
use super::url::{join, path_only};
use super::{ClientError, ClientErrorKind, ClientResponse, HttpClient};
use crate::resilience::clock::{self, PollClock};
use crate::telemetry::RequestContext;

/// A request being built; send it with [`send`](Self::send).
#[must_use = "a request does nothing until it is sent"]
pub struct ClientRequest {
    client: HttpClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// This call's own bound, below `total_timeout`.
    timeout: Option<Duration>,
    /// The first problem while building, reported by `send`.
    error: Option<String>,
}

impl std::fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRequest")
            .field("client", &self.client.inner.name)
            .field("method", &self.method)
            .field("path", &path_only(&self.path))
            .finish_non_exhaustive()
    }
}

impl ClientRequest {
    pub(super) fn new(client: HttpClient, method: Method, path: String) -> Self {
        Self {
            client,
            method,
            path,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: None,
            error: None,
        }
    }

    /// Adds a header. An invalid name or value fails the call at `send`, naming neither
    /// the value (it may be a credential).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            (Err(_), _) => self.fail("a header name is not valid".into()),
            (Ok(n), Err(_)) => self.fail(format!("the value of header `{n}` is not valid")),
        }
        self
    }

    /// Sets the body, sent as it is.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.body = bytes.into();
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.fail(format!("the body does not serialize as JSON: {e}")),
        }
        self
    }

    /// Adds `value` to the query string, serialized as a form (`serde_urlencoded`): a
    /// struct or a map of names to values, or a list of pairs. Each name and value is
    /// percent-encoded; a query already in the path is kept, and this one follows it.
    ///
    /// ```
    /// # async fn run(books: ms_chassis::client::HttpClient) -> Result<(), ms_chassis::client::ClientError> {
    /// #[derive(serde::Serialize)]
    /// struct Search<'a> { author: &'a str, limit: u32 }
    ///
    /// let res = books
    ///     .get("/books")
    ///     .query(&Search { author: "Le Guin & co", limit: 10 }) // ?author=Le+Guin+%26+co&limit=10
    ///     .send()
    ///     .await?;
    /// # let _ = res; Ok(()) }
    /// ```
    pub fn query<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_urlencoded::to_string(value) {
            Ok(q) if q.is_empty() => {}
            Ok(q) => {
                let sep = if self.path.contains('?') { '&' } else { '?' };
                self.path.push(sep);
                self.path.push_str(&q);
            }
            Err(e) => self.fail(format!("the query does not serialize: {e}")),
        }
        self
    }

    /// Bounds this call (every attempt, backoff and the body) at `timeout`, when that is
    /// shorter than the client's `total_timeout`, which still bounds it otherwise. Over it
    /// the call fails with [`ClientErrorKind::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    /// Sends the request and reads a 2xx JSON answer as `T`; any other status is
    /// [`ClientErrorKind::Status`]. The JSON helpers of [`HttpClient`] are this.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        self.send().await?.error_for_status()?.json().await
    }

    /// Sends the request through the client's stack.
    pub fn send(self) -> impl Future<Output = Result<ClientResponse, ClientError>> + Send {
        // One clock reading per poll serves every layer (see `resilience::clock`).
        PollClock::new(self.send_now())
    }

    async fn send_now(self) -> Result<ClientResponse, ClientError> {
        let ClientRequest {
            client,
            method,
            path,
            mut headers,
            body,
            timeout,
            error,
        } = self;
        let current = client.current();
        let name = &client.inner.name;
        // Messages show the path without its query, which may carry credentials.
        let shown = path_only(&path).len();
        let err = |kind| ClientError::new(name, &method, &path[..shown], kind);
        if let Some(message) = error {
            return Err(err(ClientErrorKind::InvalidRequest(message)));
        }
        let url =
            join(&current.base, &path).map_err(|m| err(ClientErrorKind::InvalidRequest(m)))?;
        let start = clock::tokio_now();
        if !current.propagate.is_empty() {
            RequestContext::with_current(|cx| {
                for (n, v) in cx.forwarded() {
                    if current.propagate.contains(n) && !headers.contains_key(n) {
                        headers.insert(n.clone(), v.clone());
                    }
                }
            });
        }
        let uri = current.uri(&url).map_err(|_| {
            err(ClientErrorKind::InvalidRequest(format!(
                "bad URL for path {:?}",
                &path[..shown]
            )))
        })?;
        let state = Arc::new(CallState {
            parent: opentelemetry::Context::current(),
            attempts: AtomicU32::new(0),
        });
        let mut req = Request::new(CallBody {
            bytes: body,
            state,
            url: Some(url),
        });
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let call = current.stack.clone().oneshot(req);
        // This call's own bound, when it is below `total_timeout` (which the stack applies).
        let total = current.config.total_timeout;
        let own = timeout.filter(|t| *t < total);
        let res = match own {
            Some(t) => match tokio::time::timeout(t, call).await {
                Ok(res) => res,
                Err(_) => return Err(err(ClientErrorKind::Timeout { after: t })),
            },
            None => call.await,
        }
        .map_err(|e| err(e.into()))?;
        let bound = own.unwrap_or(total);
        let bounds = BodyBounds {
            deadline: start + bound,
            total_timeout: bound,
            limit: current.config.max_response_body,
        };
        let mut path = path;
        path.truncate(shown);
        Ok(ClientResponse::new(
            res,
            bounds,
            Arc::clone(name),
            method,
            path,
        ))
    }
}
