//! The admin endpoints: what is running, the effective config, log levels, and reload.
//!
//! | endpoint                    | what it does                                   | who may call |
//! |-----------------------------|------------------------------------------------|--------------|
//! | `GET /admin/info`           | service, build, profile, start time, uptime    | protected    |
//! | `GET /admin/config`         | the effective config, secrets redacted         | protected    |
//! | `GET /admin/loggers`        | the log filter: root and per-target levels     | protected    |
//! | `POST /admin/loggers`       | change a level, optionally for a while         | protected    |
//! | `POST /admin/config/reload` | reload the config now                          | protected    |
//! | `GET /admin/breakers`       | every client's circuit breaker: state, window  | protected    |
//! | `POST /admin/breakers/{name}` | force a breaker open, closed or disabled     | protected    |
//!
//! "Protected" is the rule in [`access`]: open on a loopback management port, else a
//! bearer `admin.token`, else off. Every one is protected, `/admin/info` too: versions and
//! the git commit tell an attacker which known bugs to try. The same rule decides who sees
//! the health checks' details ([`authorized`]). They are chassis endpoints: dispatched by
//! exact path outside the user's stack (no timeouts, limits or user middleware), and on the
//! management listener when `server.management` is set.

mod access;
mod breakers;
mod config;
mod info;
mod loggers;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub(crate) use access::Exposure;
pub use config::AdminSection;
pub(crate) use info::Started;

use crate::client::Clients;
use crate::reload::Reloader;
use crate::server::problem_with;
use crate::{Config, ConfigWatch};

/// Every path [`routes`] serves, for dispatch: exact paths, and prefixes ending in `/`.
pub(crate) const PATHS: [&str; 6] = [
    "/admin/info",
    "/admin/config",
    "/admin/loggers",
    "/admin/config/reload",
    "/admin/breakers",
    "/admin/breakers/",
];

/// What the admin handlers share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    reloader: Arc<Reloader>,
    /// The config the service started with (its name and version).
    started_config: Config,
    started: Started,
    exposure: Exposure,
    /// Stops the timers of log level overrides.
    shutdown: CancellationToken,
    /// The service's HTTP clients, for their breakers.
    clients: Clients,
}

impl Admin {
    pub(crate) fn new(
        reloader: Arc<Reloader>,
        started_config: Config,
        started: Started,
        exposure: Exposure,
        shutdown: CancellationToken,
        clients: Clients,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                reloader,
                started_config,
                started,
                exposure,
                shutdown,
                clients,
            }),
        }
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

/// Whether a request with `headers` may call the protected admin endpoints; for the health
/// checks' details.
pub(crate) fn authorized(exposure: Exposure, watch: &ConfigWatch, headers: &HeaderMap) -> bool {
    access::allowed(exposure, watch, headers)
}

/// The admin routes.
pub(crate) fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/admin/info", get(info))
        .route("/admin/config", get(config))
        .route("/admin/loggers", get(loggers::get).post(loggers::post))
        .route("/admin/config/reload", post(reload))
        .route("/admin/breakers", get(breakers::list))
        .route("/admin/breakers/{name}", post(breakers::force))
        .route_layer(axum::middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

async fn guard(State(admin): State<Admin>, req: Request, next: Next) -> Response<Body> {
    let inner = &admin.inner;
    match access::authorize(inner.exposure, inner.reloader.watch(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(res) => *res,
    }
}

async fn info(State(admin): State<Admin>) -> Response<Body> {
    let inner = &admin.inner;
    axum::Json(info::Info::new(&inner.started_config, inner.started)).into_response()
}

async fn config(State(admin): State<Admin>) -> Response<Body> {
    axum::Json(admin.inner.reloader.watch().current().redacted()).into_response()
}

async fn reload(State(admin): State<Admin>) -> Response<Body> {
    let report = admin
        .inner
        .reloader
        .reload(crate::reload::Trigger::Endpoint)
        .await;
    if report.is_success() {
        return axum::Json(report).into_response();
    }
    let Ok(Value::Object(mut members)) = serde_json::to_value(&report) else {
        unreachable!("a report serializes to an object");
    };
    for empty in ["changed", "applied", "restart_required"] {
        members.remove(empty);
    }
    problem_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        "the new config is invalid; the current config stays",
        members,
    )
}
