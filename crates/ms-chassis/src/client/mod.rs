//! [`HttpClient`]: how a service calls another — traced, measured, bounded and protected.
//!
//! `svc.client("books")` builds a client from `clients.books` in config (see
//! [`ClientConfig`] for every key and its default):
//!
//! ```yaml
//! clients:
//!   books:
//!     url: http://books:8080
//!     timeout: 2s          # one attempt
//!     total_timeout: 10s   # the whole call, retries and body included
//!     retry:   { max_attempts: 3 }
//!     breaker: { failure_rate_threshold: 50, minimum_calls: 20, wait_in_open: 30s }
//! ```
//!
//! ```no_run
//! use ms_chassis::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Book { title: String }
//!
//! # async fn run() -> ms_chassis::Result<()> {
//! let svc = Service::from_env()?;
//! let books = svc.client("books")?;
//! svc.health().informational("books", books.probe()); // shared: shown, never gating
//! let router: Router = Router::new().route(
//!     "/titles/{id}",
//!     get(move |Path(id): Path<String>| async move {
//!         // `id` is one segment whatever it holds: `../admin` cannot leave `/books/`.
//!         match books.get_json::<Book>(path!["books", id]).await {
//!             Ok(book) => Ok(book.title),
//!             // 504 on a timeout, 503 when the breaker or bulkhead refused, else 502.
//!             Err(e) => Err((e.status_hint(), e.to_string())),
//!         }
//!     }),
//! );
//! svc.serve(router).await
//! # }
//! ```
//!
//! # What every call gets
//!
//! - **Bounds.** A connect timeout, a per-attempt `timeout`, and a `total_timeout` over
//!   the whole call — attempts, backoff, and reading the body with the helpers. Response
//!   bodies read by the helpers are capped at `max_response_body`. No call is unbounded.
//! - **Resilience,** each layer switchable in config, in the order
//!   `total_timeout( retry( rate_limit( breaker( bulkhead( timeout( call ))))))`; see
//!   [`crate::resilience`] for why this order.
//! - **Tracing.** One client span per attempt (`GET`, kind client, with the HTTP semantic
//!   conventions' attributes and `http.request.resend_count` on retries), a child of the
//!   span current when the call was sent; its context is injected in the formats of
//!   `tracing.propagation`.
//! - **Metrics.** `http_client_request_duration_seconds` per attempt, labelled `client`,
//!   `server_address`, `http_request_method`, `http_response_status_code` and
//!   `error_type`; the breaker, retry, bulkhead and timeout metrics of
//!   [`ResilienceMetrics`], with `name` = the client.
//! - **Paths that hold values** built with [`path!`](crate::path) (a [`RequestPath`]):
//!   each value is one percent-encoded segment, so `path!["books", id]` reaches
//!   `/books/{id}` on the server whatever `id` holds (`../admin`, `a/b`, `7?x=1`), and
//!   axum's `Path` decodes it back. A `&str` path is taken as written: keep it for paths
//!   with no outside values in them.
//! - **Header propagation** of the incoming request's headers named in
//!   `propagate_headers` (an allow-list: nothing else is copied, and `host`, hop-by-hop
//!   and trace headers are refused by config validation).
//! - **Typed errors**: [`ClientError::kind`] says why — timeout, circuit open, bulkhead
//!   full, rate limited, connect, transport, or an HTTP status.
//! - **Live settings.** A config reload that changes `clients.<name>` rebuilds the
//!   client's stack; the breaker keeps its state unless its own settings changed (then it
//!   restarts CLOSED), and calls in flight finish under the settings they started with.
//!
//! Calls made on another task than the request's keep the request's trace if the task
//! runs in its context: spawn it with
//! [`RequestContext::scope`](crate::telemetry::RequestContext::scope).

mod call;
mod config;
mod error;
mod forward;
mod path;
mod registry;
mod response;

use std::future::Future;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::util::Either;
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};

pub use config::{ClientConfig, PoolConfig, Toggle};
pub use error::{ClientError, ClientErrorKind};
pub(crate) use forward::Forwarding;
pub use path::RequestPath;
pub(crate) use registry::Clients;
pub use response::ClientResponse;

use call::{Call, CallBody, CallState};
use response::BodyBounds;

use crate::health::CheckOutcome;
use crate::resilience::breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use crate::resilience::bulkhead::{Bulkhead, BulkheadLayer};
use crate::resilience::clock::{self, PollClock};
use crate::resilience::rate_limit::{RateLimit, RateLimitLayer};
use crate::resilience::retry::{Retry, RetryLayer};
use crate::resilience::timeout::{Timeout, TimeoutLayer};
use crate::resilience::{ResilienceConfigError, ResilienceMetrics};
use crate::telemetry::RequestContext;

/// The resilience stack around [`Call`]: `total_timeout( retry( rate_limit( breaker(
/// bulkhead( timeout( call ))))))`, each optional layer an `Either` of the layer and its
/// absence. Named rather than boxed: it is cloned for every call, and a box would cost an
/// allocation and another for its response future.
type Stack = Timeout<Either<Retry<RateLimited>, RateLimited>>;
type RateLimited = Either<RateLimit<Guarded>, Guarded>;
type Guarded = CircuitBreaker<Either<Bulkhead<Timeout<Call>>, Timeout<Call>>>;

/// An HTTP client for one named dependency. Cheap to clone; clones share everything
/// (connection pool, breaker, bulkhead, settings).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    breaker: CircuitBreakerHandle,
    deps: Deps,
    /// Replaced whole on a config change.
    current: RwLock<Arc<Current>>,
}

/// What a client needs from the service around it.
#[derive(Clone)]
pub(crate) struct Deps {
    pub(crate) resilience: ResilienceMetrics,
    pub(crate) duration: prometheus::HistogramVec,
    pub(crate) forwarding: Arc<Forwarding>,
}

/// The settings in force and the stack built from them.
struct Current {
    config: ClientConfig,
    base: reqwest::Url,
    /// The base's scheme and authority as a URI's, parsed once for every request's URI.
    origin: Option<(Scheme, Authority)>,
    http: reqwest::Client,
    stack: Stack,
    propagate: Vec<HeaderName>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("name", &self.inner.name)
            .field(
                "url",
                &crate::config::shown_url(self.current().base.as_str()),
            )
            .finish_non_exhaustive()
    }
}

/// Client settings that cannot be used; names the key under `clients.<name>`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("clients.{client}.{key}: {message}")]
pub struct ClientConfigError {
    /// The client's name.
    pub client: String,
    /// The key, relative to `clients.<name>`.
    pub key: String,
    /// What was expected.
    pub message: String,
}

impl HttpClient {
    /// A client outside a [`Service`](crate::Service): for tools, tests and benchmarks. Its
    /// metrics are registered nowhere and its settings never change. In a service, use
    /// `svc.client(name)`, which reads `clients.<name>`, exports the metrics, follows
    /// config reloads and lists the breaker on `/admin/breakers`.
    ///
    /// ```
    /// # use ms_chassis::client::{ClientConfig, HttpClient};
    /// let mut config = ClientConfig::default();
    /// config.url = Some("http://127.0.0.1:8081".into());
    /// let books = HttpClient::new("books", config)?;
    /// assert_eq!(books.name(), "books");
    /// # Ok::<(), ms_chassis::client::ClientConfigError>(())
    /// ```
    pub fn new(name: &str, config: ClientConfig) -> Result<Self, ClientConfigError> {
        let resilience = ResilienceMetrics::unregistered();
        let duration = crate::metrics::client_duration_histogram()
            .expect("the client histogram's name and labels are valid");
        Self::build(
            name,
            config,
            Deps {
                resilience,
                duration,
                forwarding: Arc::default(),
            },
        )
    }

    pub(crate) fn build(
        name: &str,
        config: ClientConfig,
        deps: Deps,
    ) -> Result<Self, ClientConfigError> {
        validated(name, &config)?;
        let breaker_config = config.breaker.config.clone();
        let breaker = CircuitBreakerLayer::new(name, breaker_config, &deps.resilience)
            .map_err(|e| layer_error(name, "breaker", &e))?
            .handle();
        if !config.breaker.enabled {
            breaker.disable();
        }
        let name: Arc<str> = name.into();
        let current = Current::build(&name, config, &breaker, &deps, None)?;
        deps.forwarding.set(&name, current.propagate.clone());
        Ok(HttpClient {
            inner: Arc::new(Inner {
                name,
                breaker,
                deps,
                current: RwLock::new(Arc::new(current)),
            }),
        })
    }

    /// The client's name (`books` for `clients.books`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The client's circuit breaker: its state and window, and the operator's overrides.
    pub fn breaker(&self) -> &CircuitBreakerHandle {
        &self.inner.breaker
    }

    /// The settings in force.
    pub fn config(&self) -> ClientConfig {
        self.current().config.clone()
    }

    /// Applies new settings (a config reload). The new stack serves calls sent from now
    /// on. The breaker keeps its state unless its settings changed; invalid settings
    /// leave the client as it was.
    pub fn reconfigure(&self, config: ClientConfig) -> Result<(), ClientConfigError> {
        validated(&self.inner.name, &config)?;
        let old = self.current();
        if old.config == config {
            return Ok(());
        }
        let breaker_changed = old.config.breaker != config.breaker;
        let next = Current::build(
            &self.inner.name,
            config,
            &self.inner.breaker,
            &self.inner.deps,
            Some(&old),
        )?;
        if breaker_changed {
            let b = &self.inner.breaker;
            b.reconfigure(next.config.breaker.config.clone())
                .map_err(|e| layer_error(&self.inner.name, "breaker", &e))?;
            if !next.config.breaker.enabled {
                b.disable();
            }
        }
        self.inner
            .deps
            .forwarding
            .set(&self.inner.name, next.propagate.clone());
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        tracing::info!(client = %self.inner.name, "client settings applied");
        Ok(())
    }

    /// A request to `path`, joined to the base URL.
    ///
    /// Build a path that holds values with [`path!`](crate::path) (or [`RequestPath`]):
    /// each value is one percent-encoded segment, so `path!["books", id]` stays under
    /// `/books/` whatever `id` holds. A `&str` is taken as written, for paths the caller
    /// wrote itself: it may carry a query string, and its `.` and `..` segments are
    /// resolved as in any URL (`/a/../b` is `/b`). A percent-encoded dot segment (`%2E`,
    /// `%2E%2E`), which the URL standard would resolve too, fails the call at `send` with
    /// [`ClientErrorKind::InvalidRequest`].
    pub fn request(&self, method: Method, path: impl AsRef<str>) -> ClientRequest {
        ClientRequest {
            client: self.clone(),
            method,
            path: path.as_ref().to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: None,
            error: None,
        }
    }

    /// A GET request to `path` (see [`request`](Self::request)).
    pub fn get(&self, path: impl AsRef<str>) -> ClientRequest {
        self.request(Method::GET, path)
    }

    /// A POST request to `path` (see [`request`](Self::request)).
    pub fn post(&self, path: impl AsRef<str>) -> ClientRequest {
        self.request(Method::POST, path)
    }

    /// A PUT request to `path` (see [`request`](Self::request)).
    pub fn put(&self, path: impl AsRef<str>) -> ClientRequest {
        self.request(Method::PUT, path)
    }

    /// A PATCH request to `path` (see [`request`](Self::request)).
    pub fn patch(&self, path: impl AsRef<str>) -> ClientRequest {
        self.request(Method::PATCH, path)
    }

    /// A DELETE request to `path` (see [`request`](Self::request)).
    pub fn delete(&self, path: impl AsRef<str>) -> ClientRequest {
        self.request(Method::DELETE, path)
    }

    /// GETs `path` and reads a 2xx JSON answer as `T`; any other status is
    /// [`ClientErrorKind::Status`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: impl AsRef<str>,
    ) -> Result<T, ClientError> {
        self.get(path).send_json().await
    }

    /// POSTs `body` as JSON to `path` and reads a 2xx JSON answer as `T`.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl AsRef<str>,
        body: &B,
    ) -> Result<T, ClientError> {
        self.post(path).json(body).send_json().await
    }

    /// PUTs `body` as JSON to `path` and reads a 2xx JSON answer as `T`.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl AsRef<str>,
        body: &B,
    ) -> Result<T, ClientError> {
        self.put(path).json(body).send_json().await
    }

    /// A health check of the dependency, for
    /// `svc.health().informational("books", books.probe())` (or `readiness`, see below).
    ///
    /// DOWN, without any I/O, while the breaker is OPEN or FORCED_OPEN (the data says
    /// so); otherwise DOWN unless `GET probe_path` answers 2xx within `timeout`. The probe
    /// bypasses retry, breaker and bulkhead: it observes the dependency, it does not count
    /// as traffic.
    ///
    /// Whether a dependency should gate readiness is a choice: readiness DOWN takes the
    /// instance out of its load balancer, so gating on a dependency that every instance
    /// shares takes them *all* out when it fails, turning a partial outage into a full
    /// one. Gate readiness on what this instance alone can lose (its own database
    /// connection); report shared dependencies through a check that only informs, or
    /// rely on the breaker.
    pub fn probe(&self) -> impl crate::health::Check {
        let client = self.clone();
        move || {
            let client = client.clone();
            async move { client.probe_once().await }
        }
    }

    async fn probe_once(&self) -> CheckOutcome {
        use crate::resilience::breaker::CircuitState;
        let state = self.inner.breaker.state();
        let current = self.current();
        // Health details may be shown to anyone (`health.show_details: always`): the URL is
        // shown without its password.
        let base = crate::config::shown_url(current.base.as_str()).into_owned();
        if matches!(state, CircuitState::Open | CircuitState::ForcedOpen) {
            return CheckOutcome::down(format!("circuit breaker is {state}"))
                .with("url", base)
                .with("breaker", state.to_string());
        }
        let url = match join(&current.base, &current.config.probe_path) {
            Ok(u) => u,
            Err(e) => return CheckOutcome::down(e),
        };
        let started = std::time::Instant::now();
        let call = current.http.get(url).timeout(current.config.timeout).send();
        let outcome = match call.await {
            Ok(res) if res.status().is_success() => CheckOutcome::up(),
            Ok(res) => CheckOutcome::down(format!(
                "{} answered {}",
                current.config.probe_path,
                res.status()
            )),
            Err(e) if e.is_timeout() => CheckOutcome::down(format!(
                "no answer within {}",
                humantime::format_duration(current.config.timeout)
            )),
            Err(e) if e.is_connect() => CheckOutcome::down("cannot connect"),
            Err(_) => CheckOutcome::down("transport error"),
        };
        outcome
            .with("url", base)
            .with("breaker", state.to_string())
            .with("latency_ms", started.elapsed().as_millis() as u64)
    }

    fn current(&self) -> Arc<Current> {
        Arc::clone(
            &self
                .inner
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl Current {
    /// `url` as a URI, as `url.as_str().parse()` makes it: when `url` is on the base's
    /// origin (always, but checked), only its path and query are parsed.
    fn uri(&self, url: &reqwest::Url) -> Result<Uri, http::Error> {
        let s = url.as_str();
        if let Some((scheme, authority)) = &self.origin
            && url.fragment().is_none()
            && url.scheme() == scheme.as_str()
            && url.authority() == authority.as_str()
        {
            let len = url.path().len() + url.query().map_or(0, |q| q.len() + 1);
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(authority.clone());
            parts.path_and_query = s[s.len() - len..].parse::<PathAndQuery>().ok();
            if parts.path_and_query.is_some()
                && let Ok(uri) = Uri::from_parts(parts)
            {
                return Ok(uri);
            }
        }
        Ok(s.parse::<Uri>()?)
    }

    fn build(
        name: &Arc<str>,
        config: ClientConfig,
        breaker: &CircuitBreakerHandle,
        deps: &Deps,
        old: Option<&Current>,
    ) -> Result<Current, ClientConfigError> {
        let fail = |key: &str, message: String| ClientConfigError {
            client: name.to_string(),
            key: key.to_owned(),
            message,
        };
        // `validated` has checked the URL.
        let base = config::parse_base_url(config.url.as_deref().unwrap_or_default())
            .map_err(|m| fail("url", m))?;
        // Keep the connection pool when nothing about connections changed.
        let http = match old {
            Some(o)
                if o.config.connect_timeout == config.connect_timeout
                    && o.config.pool == config.pool =>
            {
                o.http.clone()
            }
            _ => reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .pool_max_idle_per_host(config.pool.max_idle_per_host)
                .pool_idle_timeout(config.pool.idle_timeout)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| fail("url", format!("cannot build the HTTP client: {e}")))?,
        };
        let call = Call::new(
            http.clone(),
            Arc::clone(name),
            &base,
            config.timeout,
            deps.duration.clone(),
        );
        let m = &deps.resilience;
        let retry = config
            .retry
            .get()
            .map(|c| RetryLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| layer_error(name, "retry", &e))?;
        let bulkhead = config
            .bulkhead
            .get()
            .map(|c| BulkheadLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| layer_error(name, "bulkhead", &e))?;
        let rate_limit = config
            .rate_limit
            .get()
            .map(|c| RateLimitLayer::new(name, c.clone(), m))
            .transpose()
            .map_err(|e| layer_error(name, "rate_limit", &e))?;
        let attempt = TimeoutLayer::per_attempt(name, config.timeout, m).layer(call);
        // The overall timer can wait for the call's second poll if whatever the first poll
        // waits for (a bulkhead or rate-limit slot, or the first attempt, bounded by
        // `timeout`) wakes it before `total_timeout`: see `resilience::timeout`.
        let total = config.total_timeout;
        let overall = TimeoutLayer::overall(name, total, m);
        let overall = if config.bulkhead.get().is_none_or(|b| b.max_wait <= total)
            && config.rate_limit.get().is_none_or(|r| r.max_wait <= total)
            && config.timeout <= total
        {
            overall.armed_late()
        } else {
            overall
        };
        let stack = ServiceBuilder::new()
            .layer(overall)
            .option_layer(retry)
            .option_layer(rate_limit)
            .layer(breaker.layer())
            .option_layer(bulkhead)
            .service(attempt);
        let propagate = config.propagated_header_names();
        let origin = base
            .scheme()
            .parse()
            .ok()
            .zip(base.authority().parse().ok());
        Ok(Current {
            origin,
            base,
            http,
            stack,
            propagate,
            config,
        })
    }
}

/// The first problem with `config`, as [`ClientConfig::validate`] finds them.
fn validated(name: &str, config: &ClientConfig) -> Result<(), ClientConfigError> {
    match config.validate(name).into_iter().next() {
        Some((key, message)) => Err(ClientConfigError {
            client: name.to_owned(),
            key,
            message,
        }),
        None => Ok(()),
    }
}

fn layer_error(client: &str, section: &str, e: &ResilienceConfigError) -> ClientConfigError {
    ClientConfigError {
        client: client.to_owned(),
        key: format!("{section}.{}", e.field),
        message: e.message.clone(),
    }
}

/// Joins a request path (with an optional query) to the base URL, which may have a path
/// of its own: `http://h/api` + `/books?x=1` is `http://h/api/books?x=1`.
/// Its errors name the path without its query, which may carry credentials.
fn join(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
    let shown = path_only(path);
    if path.contains("://") || path.starts_with("//") {
        return Err(format!(
            "expected a path relative to the client's url, found {shown:?}"
        ));
    }
    if let Some(dot) = path::encoded_dot_segment(path) {
        return Err(format!(
            "the path segment {dot:?} stands for a `.` or `..` value, which cannot be sent: \
             the URL standard resolves it as a dot segment, so it would not reach the server \
             as a value (in path {shown:?})"
        ));
    }
    if let Some(url) = join_plain(base, path) {
        return Ok(url);
    }
    let prefix = base.as_str().trim_end_matches('/');
    let sep = if path.starts_with('/') || path.is_empty() {
        ""
    } else {
        "/"
    };
    reqwest::Url::parse(&format!("{prefix}{sep}{path}"))
        .map_err(|e| format!("bad path {shown:?}: {e}"))
}

/// [`join`] without parsing the base URL's scheme and host again: the path and query are
/// set on a copy of the base, through the same parser (`.` and `..` segments resolve
/// alike). Only for paths of characters that the parser neither percent-encodes, trims
/// nor reads as a separator; `None` otherwise, and `join` parses the whole URL.
fn join_plain(base: &reqwest::Url, path: &str) -> Option<reqwest::Url> {
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let plain_path = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b);
    let plain_query = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@%/?".contains(&b);
    if p.is_empty()
        || !p.bytes().all(plain_path)
        || !query.is_none_or(|q| q.bytes().all(plain_query))
    {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let sep = if p.starts_with('/') { "" } else { "/" };
    let mut url = base.clone();
    if prefix.is_empty() && sep.is_empty() {
        url.set_path(p);
    } else {
        url.set_path(&format!("{prefix}{sep}{p}"));
    }
    url.set_query(query);
    Some(url)
}

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

/// The path without its query string, for messages.
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What `join` did before it had a fast path: print the whole URL and parse it.
    fn join_by_parsing(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
        let prefix = base.as_str().trim_end_matches('/');
        let sep = if path.starts_with('/') || path.is_empty() {
            ""
        } else {
            "/"
        };
        reqwest::Url::parse(&format!("{prefix}{sep}{path}")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_request_uri_is_the_url_parsed_as_a_uri() {
        let deps = Deps {
            resilience: ResilienceMetrics::unregistered(),
            duration: crate::metrics::client_duration_histogram().unwrap(),
            forwarding: Arc::default(),
        };
        for base in BASES {
            let config = ClientConfig {
                url: Some(base.into()),
                ..ClientConfig::default()
            };
            let client = HttpClient::build("t", config, deps.clone()).unwrap();
            let current = client.current();
            assert!(current.origin.is_some(), "{base}");
            for path in ["/", "/x", "/a/b?c=d&e", "x?", "/caf\u{e9}", "/x#f"] {
                let url = join(&current.base, path).unwrap();
                let uri = current.uri(&url).unwrap();
                assert_eq!(uri, url.as_str().parse::<Uri>().unwrap(), "{url}");
                assert_eq!(uri.to_string(), url.as_str().split('#').next().unwrap());
            }
        }
    }

    const BASES: [&str; 6] = [
        "http://h",
        "http://h:8080/",
        "http://h/api",
        "https://user:pw@h/api/v1/",
        "http://127.0.0.1:3000",
        "http://[::1]:8443/a/%2F/",
    ];

    #[test]
    fn joins_paths_to_the_base_and_its_path() {
        let cases = [
            ("http://h", "/books/7?x=1", "http://h/books/7?x=1"),
            ("http://h/api", "/books", "http://h/api/books"),
            ("http://h/api/", "books", "http://h/api/books"),
            ("http://h/api", "", "http://h/api"),
            ("http://h/api", "/a/../b", "http://h/api/b"),
            ("http://h", "/caf\u{e9} x", "http://h/caf%C3%A9%20x"),
            ("http://h", "/x#frag", "http://h/x#frag"),
        ];
        for (base, path, want) in cases {
            let base = config::parse_base_url(base).unwrap();
            assert_eq!(join(&base, path).unwrap().as_str(), want, "{base} + {path}");
        }
        let base = config::parse_base_url("http://h").unwrap();
        assert!(
            join_plain(&base, "/books/7?x=1&y=2").is_some(),
            "the common case is fast"
        );
        assert!(join(&base, "//evil/x").is_err());
        for dot in ["/books/%2E%2E", "/books/%2e/x", "/.%2E?q=1"] {
            let e = join(&base, dot).unwrap_err();
            assert!(e.contains("cannot be sent"), "{dot}: {e}");
        }
        assert!(join(&base, "/books/%2E%2E%2E").is_ok());
        assert!(join(&base, "http://evil/x").is_err());
    }

    proptest! {
        /// The fast path gives exactly what parsing the whole URL gives, or steps aside.
        #[test]
        fn the_fast_join_agrees_with_parsing(
            base in proptest::sample::select(BASES.to_vec()),
            path in concat!(
                r"(/?[a-z0-9.%2eE~-]{0,5}){0,4}(\?[a-z0-9=&%.?/'-]{0,8})?",
                r"|[a-zA-Z0-9./?#%2eE&=;:@+'\\ \t~!$()*,-]{0,24}",
                r"|\PC{0,12}",
            ),
        ) {
            let base = config::parse_base_url(base).unwrap();
            prop_assume!(!path.contains("://") && !path.starts_with("//"));
            if let Some(fast) = join_plain(&base, &path) {
                let slow = join_by_parsing(&base, &path);
                prop_assert_eq!(Ok(fast), slow, "{} + {:?}", base, path);
            }
        }
    }
}
