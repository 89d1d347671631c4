//! Start a real service in a test, call it over a real socket, and stop it cleanly.
//!
//! Like axum's `TestClient` or Spring's `@SpringBootTest`: the service under test is the
//! one production runs, with the whole chassis stack, its endpoints and its config
//! validation, listening on `127.0.0.1` on a free port. Config is YAML given in the test,
//! layered over [`TEST_BASE`] (loopback, port 0, no drain delay); no file and no
//! environment variable is read, so tests do not see each other's or the machine's config.
//!
//! ```
//! use ms_chassis::prelude::*;
//! use ms_chassis::testing::TestService;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new().route("/hello", get(|| async { "hi" }));
//! let app = TestService::start("app: { greeting: hi }", router).await?;
//!
//! let res = app.get("/hello").await?;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.text().await?, "hi");
//! assert_eq!(app.get("/health/ready").await?.status(), 200);
//!
//! app.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! When the test must register checks, clients or a spec before the service starts, build
//! the [`Service`] with [`service`] and start it with [`TestService::start_service`]:
//!
//! ```
//! use ms_chassis::prelude::*;
//! use ms_chassis::testing::{self, TestService};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = testing::service("health: { timeout: 1s }")?;
//! svc.health().readiness("database", || async { false });
//! let app = TestService::start_service(svc, Router::new()).await?;
//! assert_eq!(app.get("/health/ready").await?.status(), 503);
//! app.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;

use crate::{Result, RunningService, Service};

/// The config every test service starts from: loopback, a free port, no drain delay, and a
/// grace generous enough for a busy machine. The test's YAML is layered over it.
pub const TEST_BASE: &str = "
server:
  host: 127.0.0.1
  port: 0
  shutdown: { drain_delay: 0s, grace: 10s }
";

/// How long the [`TestService::client`] waits for a whole call: generous, because test
/// machines are often small and busy.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Service`] configured from [`TEST_BASE`] and then `yaml`, ready for checks, clients or
/// a spec to be added before [`TestService::start_service`].
///
/// Errors are the service's own: an invalid `yaml` gives the config error naming the key.
pub fn service(yaml: &str) -> Result<Service> {
    Service::builder().yaml(TEST_BASE).yaml(yaml).build()
}

/// A [`Service`] configured from a config file (or a directory holding `config.yaml`), then
/// [`TEST_BASE`], then `yaml`: the service as its own `config.yaml` describes it, on a free
/// loopback port. No profile and no environment variable is applied.
///
/// A missing file is an error naming it.
pub fn service_from_file(file: impl Into<PathBuf>, yaml: &str) -> Result<Service> {
    Service::builder()
        .file(file)
        .yaml(TEST_BASE)
        .yaml(yaml)
        .build()
}

/// A service running in this process, its addresses, and a client for it.
///
/// Dropping it stops nothing until the test's runtime ends; call [`shutdown`](Self::shutdown)
/// to run the graceful shutdown and see its result.
#[derive(Debug)]
pub struct TestService {
    running: RunningService,
    base_url: String,
    management_url: Option<String>,
    client: reqwest::Client,
}

impl TestService {
    /// Starts `router` on a service configured from [`TEST_BASE`] and then `yaml`.
    pub async fn start(yaml: &str, router: Router) -> Result<Self> {
        Self::start_service(service(yaml)?, router).await
    }

    /// Starts `router` on `svc`, usually made by [`service`].
    pub async fn start_service(svc: Service, router: Router) -> Result<Self> {
        let running = svc.start(router).await?;
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            // The service is on loopback: a proxy from the environment must not be asked.
            .no_proxy()
            .build()
            // Only loading the TLS roots can fail here.
            .map_err(|e| crate::Error::Server(std::io::Error::other(e)))?;
        Ok(Self {
            base_url: base_url(running.local_addr()),
            management_url: running.management_addr().map(base_url),
            running,
            client,
        })
    }

    /// `http://127.0.0.1:PORT` of the main listener, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL of the chassis endpoints: the management listener when one is
    /// configured (`server.management`), else the main one.
    pub fn management_url(&self) -> &str {
        self.management_url.as_deref().unwrap_or(&self.base_url)
    }

    /// The absolute URL of `path` on the main listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A client with a generous timeout ([`CLIENT_TIMEOUT`]) and no proxy.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET` [`url(path)`](Self::url). With `server.management` configured, the chassis
    /// endpoints are on [`management_url`](Self::management_url) instead.
    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.client.get(self.url(path)).send().await
    }

    /// The service's handle: addresses, and shutdown without waiting.
    pub fn running(&self) -> &RunningService {
        &self.running
    }

    /// Runs the graceful shutdown (readiness DOWN, drain, finish in-flight requests, flush)
    /// and waits for it.
    pub async fn shutdown(self) -> Result<()> {
        self.running.shutdown().await
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
