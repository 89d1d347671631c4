//! [`Service`]: load config, set up logs and metrics, wrap the user's router in the chassis
//! stack, serve, and shut down gracefully.
//!
//! Shutdown is one [`CancellationToken`]. On SIGTERM or Ctrl-C (or
//! [`RunningService::trigger_shutdown`]): readiness goes DOWN; the service waits
//! `server.shutdown.drain_delay` so load balancers notice; the listener stops accepting;
//! in-flight requests get up to `server.shutdown.grace` to finish; then the management
//! listener closes, and pending spans are flushed to the trace exporter within what is left
//! of the grace period. A second signal exits at once.
//!
//! The same token stops the service's background tasks: the config file watcher and the
//! timers of log level overrides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, Exposure, Started};
use crate::client::{Clients, HttpClient};
use crate::config::ConfigLoader;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::server::{ConnectionLimits, Dispatch, user_stack};
use crate::{Config, ConfigWatch};
use crate::{Error, Result};

/// A configured service, ready to serve a router.
pub struct Service {
    config: Config,
    /// The loader the config came from, kept to reload from the same inputs.
    loader: ConfigLoader,
    watch: ConfigWatch,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
    started: Started,
    /// `logging.access`, shared with the server stack so that a reload can flip it.
    access_log: Arc<AtomicBool>,
    clients: Clients,
    /// The code-first spec given to [`Service::with_openapi`], as JSON, or why it is not.
    openapi: Option<Result<serde_json::Value, String>>,
    /// What judges the credentials the spec's `security` asks for, if the user gave one.
    verifier: Option<Arc<dyn crate::openapi::CredentialVerifier>>,
}

/// Leaves out the loader, which holds the whole environment.
impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("health", &self.health)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Service`] from config given in code or from files: every setting of a
/// [`ConfigLoader`], on the builder itself.
///
/// ```
/// let svc = ms_chassis::Service::builder()
///     .yaml("service: { name: books }")
///     .env_vars([("MS__SERVER__PORT", "0")])
///     .build()?;
/// assert_eq!(svc.config().chassis().service.name, "books");
/// # Ok::<(), ms_chassis::Error>(())
/// ```
///
/// Start from a loader of your own with [`Service::builder_from`] or `From<ConfigLoader>`;
/// the builder then adds to that loader, and nothing given to either is lost.
#[derive(Debug, Default)]
#[must_use]
pub struct ServiceBuilder {
    loader: ConfigLoader,
}

impl From<ConfigLoader> for ServiceBuilder {
    fn from(loader: ConfigLoader) -> Self {
        Self { loader }
    }
}

impl ServiceBuilder {
    /// Reads this config file, or `config.yaml` in this directory.
    pub fn file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.loader = self.loader.file(path);
        self
    }

    /// Activates a profile.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.loader = self.loader.profile(profile);
        self
    }

    /// Adds YAML given in code (above files, below environment).
    pub fn yaml(mut self, yaml: impl Into<String>) -> Self {
        self.loader = self.loader.yaml(yaml);
        self
    }

    /// Reads `MS__*` overrides from these variables (see [`ConfigLoader::env_vars`]).
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.loader = self.loader.env_vars(vars);
        self
    }

    /// Reads the key of `enc_` values from this file (see [`ConfigLoader::key_file`]).
    pub fn key_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.loader = self.loader.key_file(path);
        self
    }

    /// Loads the config and sets up logging and metrics.
    pub fn build(self) -> Result<Service> {
        let config = self.loader.clone().load()?;
        let c = config.chassis();
        crate::telemetry::init_telemetry(&crate::telemetry::Settings {
            service_name: &c.service.name,
            service_version: &c.service.version,
            logging: &c.logging,
            tracing: &c.tracing,
            profile: config.profile(),
        })?;
        let metrics = Metrics::new(&c.service.name, &c.service.version)?;
        let health = Health::new(&config.chassis().health);
        Ok(Service {
            clients: Clients::new(&metrics),
            access_log: Arc::new(AtomicBool::new(config.chassis().logging.access)),
            watch: ConfigWatch::new(config.clone()),
            config,
            loader: self.loader,
            health,
            metrics,
            shutdown: CancellationToken::new(),
            started: Started::now(),
            openapi: None,
            verifier: None,
        })
    }
}

impl Service {
    /// Loads config the standard way (`MS_CONFIG_FILE`, `MS_PROFILE`, `MS__*` overrides)
    /// and sets up logging and metrics.
    pub fn from_env() -> Result<Self> {
        Self::builder_from(ConfigLoader::from_env()).build()
    }

    /// A builder with only the embedded defaults, for tests and embedders.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder::default()
    }

    /// A builder that adds to `loader`: `Service::builder_from(ConfigLoader::from_env())`
    /// reads the standard files and variables, then what the builder adds.
    pub fn builder_from(loader: ConfigLoader) -> ServiceBuilder {
        ServiceBuilder::from(loader)
    }

    /// The configuration loaded at startup.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The live configuration: the current config, and typed parts of it ([`Live`](crate::config::Live)) that
    /// follow every reload (a change to the config file, or `POST /admin/config/reload`).
    ///
    /// ```
    /// use ms_chassis::config::Live;
    /// use ms_chassis::prelude::*;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct AppConfig { greeting: String }
    ///
    /// # let svc = ms_chassis::Service::builder().yaml("app: { greeting: hi }").build()?;
    /// let app: Live<AppConfig> = svc.config_watch().app()?;
    /// // The greeting as it is now, after any reload.
    /// let router: Router = Router::new()
    ///     .route("/hello", get(|app: Live<AppConfig>| async move { app.get().greeting.clone() }))
    ///     .with_state(app);
    /// # let _ = router;
    /// # Ok::<(), ms_chassis::Error>(())
    /// ```
    ///
    /// See [`ConfigWatch`] for what is validated and when subscribers are told.
    pub fn config_watch(&self) -> &ConfigWatch {
        &self.watch
    }

    /// Health checks: register liveness, readiness and startup checks here.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The HTTP client `name`, built from `clients.<name>` in config: resilient, traced,
    /// measured, and following config reloads. Every call with the same name returns the
    /// same client (one pool, one breaker). Fails if `clients.<name>` is not configured.
    /// See [`HttpClient`].
    ///
    /// ```
    /// # let svc = ms_chassis::Service::builder()
    /// #     .yaml("clients: { books: { url: 'http://127.0.0.1:8081' } }").build()?;
    /// let books = svc.client("books")?;
    /// svc.health().informational("books", books.probe());
    /// assert!(svc.client("nope").is_err());
    /// # Ok::<(), ms_chassis::Error>(())
    /// ```
    pub fn client(&self, name: &str) -> Result<HttpClient> {
        self.clients
            .get(name, &self.watch.current().chassis().clients)
    }

    /// The HTTP client `name` if `clients.<name>` is configured, `None` if it is not: for
    /// a dependency the service can do without. An error only when the client is
    /// configured but cannot be built.
    ///
    /// ```
    /// # let svc = ms_chassis::Service::builder().build()?;
    /// let books = svc.optional_client("books")?;
    /// assert!(books.is_none(), "no clients.books block");
    /// # Ok::<(), ms_chassis::Error>(())
    /// ```
    pub fn optional_client(&self, name: &str) -> Result<Option<HttpClient>> {
        let configured = name != crate::config::DEFAULTS_ENTRY
            && self.watch.current().chassis().clients.contains_key(name);
        configured.then(|| self.client(name)).transpose()
    }

    /// The metric registry: add the service's own metrics here.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The shutdown token. Background tasks should stop when it is cancelled; cancelling it
    /// starts the graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Gives the service its code-first OpenAPI document: any value that serializes to an
    /// OpenAPI object, typically the `utoipa::openapi::OpenApi` that
    /// `utoipa_axum::router::OpenApiRouter::split_for_parts` returns beside the plain
    /// `Router`. Unless `openapi.file` names a spec-first file, which wins, this is the spec
    /// in effect: `info.title` and `info.version` become `service.name` and
    /// `service.version`, responses without a `description` get their status's reason
    /// phrase, and it is served at `openapi.path` (JSON), its `.yaml` twin and the Swagger
    /// UI at `openapi.ui.path`, outside the user's stack and on the main listener (on the
    /// management one instead only with `openapi.management: true`). A document that does not
    /// serialize to a JSON object makes [`start`](Self::start) fail.
    ///
    /// ```
    /// use ms_chassis::prelude::*;
    /// use utoipa_axum::{router::OpenApiRouter, routes};
    ///
    /// /// Says hello.
    /// #[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
    /// async fn hello() -> &'static str { "hello" }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> ms_chassis::Result<()> {
    /// # let svc = Service::builder().yaml("server: { port: 0 }").build()?;
    /// let (router, api) = OpenApiRouter::new().routes(routes!(hello)).split_for_parts();
    /// let running = svc.with_openapi(api).start(router).await?;
    /// # running.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_openapi(mut self, api: impl serde::Serialize) -> Self {
        self.openapi = Some(serde_json::to_value(api).map_err(|e| e.to_string()));
        self
    }

    /// Judges the credentials that the spec's `security` asks for (bearer, basic, API
    /// keys) once a request carries them; without a verifier, a present credential is
    /// enough, and only a missing one is answered 401. See
    /// [`CredentialVerifier`](crate::openapi::CredentialVerifier).
    ///
    /// ```no_run
    /// # async fn run(router: ms_chassis::axum::Router) -> ms_chassis::Result<()> {
    /// use ms_chassis::openapi::Credential;
    /// let svc = ms_chassis::Service::from_env()?
    ///     .with_credential_verifier(|c: &Credential<'_>| c.value == "let-me-in");
    /// svc.serve(router).await
    /// # }
    /// ```
    #[must_use]
    pub fn with_credential_verifier(
        mut self,
        verifier: impl crate::openapi::CredentialVerifier,
    ) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Serves `router` in the chassis stack until SIGTERM or Ctrl-C, then shuts down
    /// gracefully. A second signal exits at once (status 130); see [`Service::serve_with`]
    /// to choose otherwise.
    pub async fn serve(self, router: Router) -> Result<()> {
        self.serve_with(router, ServeOptions::default()).await
    }

    /// [`Service::serve`] with options.
    ///
    /// ```no_run
    /// # async fn run() -> ms_chassis::Result<()> {
    /// use ms_chassis::{ServeOptions, Service};
    /// let svc = Service::from_env()?;
    /// // A second Ctrl-C is logged and ignored: the graceful shutdown always finishes,
    /// // and pending spans are flushed.
    /// let options = ServeOptions::default().exit_on_second_signal(false);
    /// svc.serve_with(ms_chassis::axum::Router::new(), options).await
    /// # }
    /// ```
    pub async fn serve_with(self, router: Router, options: ServeOptions) -> Result<()> {
        let trigger = self.shutdown.clone();
        let running = self.start(router).await?;
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "shutdown signal received");
            trigger.cancel();
            loop {
                let signal = wait_for_signal().await;
                if options.exit_on_second_signal {
                    tracing::warn!(signal, "second signal received: exiting without draining");
                    crate::telemetry::flush_logs(Duration::from_millis(200));
                    std::process::exit(130);
                }
                tracing::warn!(
                    signal,
                    "signal received during the graceful shutdown: ignored \
                     (exit_on_second_signal is off)"
                );
            }
        });
        running.wait().await
    }

    /// Binds the listeners and starts serving in the background. Shutdown happens when the
    /// token is cancelled (no signal handling: see [`Service::serve`]).
    pub async fn start(mut self, router: Router) -> Result<RunningService> {
        let cfg = self.config.chassis();
        let spec = crate::openapi::spec_in_effect(&cfg.openapi, self.openapi.take(), &cfg.service)?;
        let metrics_on = cfg.metrics.enabled;
        let exposure = match &cfg.server.management {
            Some(m) if m.host.is_loopback() => Exposure::LoopbackManagement,
            _ => Exposure::Reachable,
        };
        let watch = self.watch.clone();
        let mut chassis = crate::health::routes(
            self.health.clone(),
            Arc::new(move |h| crate::admin::authorized(exposure, &watch, h)),
        );
        let mut chassis_paths: Vec<String> = crate::health::PATHS
            .iter()
            .chain(crate::admin::PATHS.iter())
            .map(ToString::to_string)
            .collect();
        if metrics_on {
            chassis = chassis.merge(self.metrics.routes(&cfg.metrics.path));
            chassis_paths.push(cfg.metrics.path.clone());
        }
        // The docs go where the other chassis endpoints go, unless a management listener
        // takes those and `openapi.management` is off: then they stay on the main
        // listener, beside the routes "Try it out" calls.
        let mut docs = None;
        if let Some(spec) = &spec {
            let metrics_path = metrics_on.then_some(cfg.metrics.path.as_str());
            let (routes, paths) = crate::openapi::routes(spec, &cfg.openapi, metrics_path);
            if cfg.server.management.is_some() && !cfg.openapi.management {
                docs = Some((routes, paths));
            } else {
                chassis = chassis.merge(routes);
                chassis_paths.extend(paths);
            }
        }
        let reloader = Arc::new(Reloader::new(
            self.loader.clone(),
            self.watch.clone(),
            self.health.clone(),
            self.clients.clone(),
            self.access_log.clone(),
            self.metrics.config_reloads(),
        ));
        chassis = chassis.merge(crate::admin::routes(Admin::new(
            reloader.clone(),
            self.config.clone(),
            self.started,
            exposure,
            self.shutdown.clone(),
            self.clients.clone(),
        )));
        let chassis = Some((chassis, chassis_paths));
        if let Some(spec) = &spec {
            crate::openapi::check_routes(spec, &cfg.openapi, &router).await?;
        }
        let validator = match &spec {
            Some(spec) => crate::openapi::validator(
                spec,
                &cfg.openapi.validation,
                cfg.server.limits.body_size,
                metrics_on.then(|| self.metrics.registry()),
                self.verifier.take(),
            )?,
            None => None,
        };
        let (user, adaptive) = user_stack(
            router,
            &cfg.server.limits,
            &cfg.resilience.load_shedding,
            metrics_on.then_some(&self.metrics),
            self.access_log.clone(),
            self.clients.forwarding(),
            validator.as_ref().map(crate::openapi::Validator::layer),
        )?;
        if let Some(limit) = adaptive {
            reloader.follow_load_shedding(limit);
        }
        let user = Some(user);

        let listener = bind(cfg.server.host, cfg.server.port, "server.host/server.port").await?;
        let local_addr = listener.local_addr()?;
        let (main_app, management) = match &cfg.server.management {
            Some(m) => {
                let l = bind(m.host, m.port, "server.management").await?;
                (
                    Dispatch::new(docs, user),
                    Some((l, Dispatch::new(chassis, None))),
                )
            }
            None => (Dispatch::new(chassis, user), None),
        };

        let (max_connections, soft_limit) = match cfg.server.limits.max_connections {
            Some(0) => (usize::MAX, None),
            Some(n) => (n, None),
            None => crate::server::default_max_connections(),
        };
        let limits = &cfg.server.limits;
        let listener_metrics = |name: &str| metrics_on.then(|| self.metrics.connections(name));
        let stop_accepting = CancellationToken::new();
        let main_task = tokio::spawn(crate::server::serve(
            listener,
            main_app,
            Arc::new(ConnectionLimits::new(limits, max_connections)),
            listener_metrics("main"),
            stop_accepting.clone(),
        ));
        let stop_management = CancellationToken::new();
        let mut management_addr = None;
        let management_task = match management {
            Some((l, app)) => {
                management_addr = Some(l.local_addr()?);
                let max = crate::server::management_max_connections(max_connections);
                Some(tokio::spawn(crate::server::serve(
                    l,
                    app,
                    Arc::new(ConnectionLimits::new(limits, max)),
                    listener_metrics("management"),
                    stop_management.clone(),
                )))
            }
            None => None,
        };
        tracing::info!(
            max_connections = (max_connections != usize::MAX).then_some(max_connections),
            rlimit_nofile = soft_limit,
            header_read_timeout = %humantime::format_duration(limits.header_read_timeout),
            idle_timeout = %humantime::format_duration(limits.idle_timeout),
            "connection limits"
        );
        self.health.set_serving();
        crate::reload::watcher::spawn(reloader, self.shutdown.clone());
        tracing::info!(
            addr = %local_addr,
            management = management_addr.map(|a| a.to_string()),
            profile = self.config.profile(),
            "listening"
        );

        let done = tokio::spawn(supervise(Supervised {
            trigger: self.shutdown.clone(),
            health: self.health.clone(),
            drain_delay: cfg.server.shutdown.drain_delay,
            grace: cfg.server.shutdown.grace,
            stop_accepting,
            main_task,
            stop_management,
            management_task,
        }));
        Ok(RunningService {
            local_addr,
            management_addr,
            trigger: self.shutdown,
            done,
        })
    }
}

async fn bind(host: std::net::IpAddr, port: u16, setting: &'static str) -> Result<TcpListener> {
    let addr = SocketAddr::new(host, port);
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr,
        setting,
        source,
    })
}

/// How [`Service::serve_with`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Whether a second SIGTERM or Ctrl-C during the graceful shutdown exits the process at
    /// once, with status 130, skipping the drain and the span flush. Default true, as
    /// impatient operators expect of Ctrl-C.
    pub exit_on_second_signal: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            exit_on_second_signal: true,
        }
    }
}

impl ServeOptions {
    /// Sets [`ServeOptions::exit_on_second_signal`].
    #[must_use]
    pub fn exit_on_second_signal(mut self, exit: bool) -> Self {
        self.exit_on_second_signal = exit;
        self
    }
}

/// A service serving in the background.
#[derive(Debug)]
pub struct RunningService {
    local_addr: SocketAddr,
    management_addr: Option<SocketAddr>,
    trigger: CancellationToken,
    done: JoinHandle<Result<()>>,
}

impl RunningService {
    /// The bound address of the main listener (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address of the management listener, if configured.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// Starts the graceful shutdown sequence without waiting for it.
    pub fn trigger_shutdown(&self) {
        self.trigger.cancel();
    }

    /// Waits until the service has shut down.
    pub async fn wait(self) -> Result<()> {
        self.done.await?
    }

    /// Triggers shutdown and waits for it to complete.
    pub async fn shutdown(self) -> Result<()> {
        self.trigger_shutdown();
        self.wait().await
    }
}

struct Supervised {
    trigger: CancellationToken,
    health: Health,
    drain_delay: Duration,
    grace: Duration,
    stop_accepting: CancellationToken,
    main_task: JoinHandle<std::io::Result<()>>,
    stop_management: CancellationToken,
    management_task: Option<JoinHandle<std::io::Result<()>>>,
}

async fn supervise(mut s: Supervised) -> Result<()> {
    tokio::select! {
        _ = s.trigger.cancelled() => {}
        joined = &mut s.main_task => {
            s.stop_management.cancel();
            return flatten(joined);
        }
    }
    s.health.set_stopping();
    tracing::info!(
        drain_delay = %humantime::format_duration(s.drain_delay),
        "shutdown: readiness is DOWN, draining"
    );
    tokio::time::sleep(s.drain_delay).await;
    tracing::info!(
        grace = %humantime::format_duration(s.grace),
        "shutdown: listener closed, finishing in-flight requests"
    );
    s.stop_accepting.cancel();
    let grace_started = std::time::Instant::now();
    let result = match tokio::time::timeout(s.grace, &mut s.main_task).await {
        Ok(joined) => flatten(joined),
        Err(_) => {
            tracing::warn!("shutdown: grace period expired, aborting unfinished requests");
            s.main_task.abort();
            Ok(())
        }
    };
    s.stop_management.cancel();
    if let Some(t) = s.management_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    let left = s
        .grace
        .saturating_sub(grace_started.elapsed())
        .max(Duration::from_secs(1));
    crate::telemetry::otel::flush(left).await;
    tracing::info!("shutdown complete");
    // The log lines still queued, before the process may exit.
    let _ =
        tokio::task::spawn_blocking(|| crate::telemetry::flush_logs(Duration::from_secs(1))).await;
    result
}

fn flatten(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<()> {
    Ok(joined??)
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
