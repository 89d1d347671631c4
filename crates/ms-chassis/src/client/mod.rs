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
//!         let book: Book = books.get_json(path!["books", id]).await?;
//!         // A failed call answers problem+json: 504 on a timeout, 503 when the breaker
//!         // or bulkhead refused, else 502, with a detail that names no internals (the
//!         // cause is logged with the trace id).
//!         Ok::<_, Problem>(book.title)
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
mod request;
mod response;
mod stack;
mod url;

use std::sync::{Arc, PoisonError, RwLock};

use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use config::validate_clients;
pub use config::{ClientConfig, PoolConfig, Toggle};
pub use error::{ClientError, ClientErrorKind};
pub(crate) use forward::Forwarding;
pub use path::RequestPath;
pub(crate) use registry::Clients;
pub use request::ClientRequest;
pub use response::ClientResponse;

use stack::{Current, in_client, validated};
use url::join;

use crate::config::Invalid;
use crate::health::CheckOutcome;
use crate::resilience::ResilienceMetrics;
use crate::resilience::breaker::{CircuitBreakerHandle, CircuitBreakerLayer};

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
    /// # Ok::<(), ms_chassis::config::Invalid>(())
    /// ```
    ///
    /// Settings that cannot be used are an [`Invalid`] naming the key under
    /// `clients.<name>`.
    pub fn new(name: &str, config: ClientConfig) -> Result<Self, Invalid> {
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

    pub(crate) fn build(name: &str, config: ClientConfig, deps: Deps) -> Result<Self, Invalid> {
        validated(name, &config)?;
        let breaker_config = config.breaker.config.clone();
        let breaker = CircuitBreakerLayer::new(name, breaker_config, &deps.resilience)
            .map_err(|e| in_client(name, e.under("breaker")))?
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
    pub fn reconfigure(&self, config: ClientConfig) -> Result<(), Invalid> {
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
                .map_err(|e| in_client(&self.inner.name, e.under("breaker")))?;
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
        ClientRequest::new(self.clone(), method, path.as_ref().to_owned())
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
