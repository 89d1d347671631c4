//! The ms-chassis demo service. `cargo run -p hello` starts it on embedded defaults
//! (127.0.0.1:8080); see the repository README for a tour of its endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ms_chassis::prelude::*;
use serde::{Deserialize, Serialize};

/// The `app:` section of config.yaml.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AppConfig {
    /// The word `/hello` greets with.
    greeting: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
        }
    }
}

/// Stands in for a database or downstream service, so the tour can show readiness going
/// DOWN: `POST /demo/dependency/down` breaks it, `POST /demo/dependency/up` mends it.
#[derive(Clone)]
struct DemoDependency(Arc<AtomicBool>);

#[derive(Clone)]
struct AppState {
    greeting: Arc<str>,
    dependency: DemoDependency,
}

#[derive(Serialize)]
struct Greeting {
    message: String,
}

/// Longest sleep `/slow/{ms}` accepts.
const MAX_SLOW: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ms_chassis::Result<()> {
    let svc = Service::from_env()?;
    let app: AppConfig = svc.config().app()?;
    let dependency = DemoDependency(Arc::new(AtomicBool::new(true)));
    let probe = dependency.clone();
    svc.health().readiness("demo-dependency", move || {
        let up = probe.0.load(Ordering::Relaxed);
        async move { up }
    });
    let state = AppState {
        greeting: app.greeting.into(),
        dependency,
    };
    svc.serve(router(state)).await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/hello/{name}", get(hello_name))
        .route("/slow/{ms}", get(slow))
        .route("/demo/dependency/{state}", post(set_dependency))
        .with_state(state)
}

async fn hello(State(s): State<AppState>) -> Json<Greeting> {
    Json(Greeting {
        message: format!("{}, world", s.greeting),
    })
}

async fn hello_name(State(s): State<AppState>, Path(name): Path<String>) -> Json<Greeting> {
    tracing::info!(%name, "greeting someone by name");
    Json(Greeting {
        message: format!("{}, {name}", s.greeting),
    })
}

async fn slow(Path(ms): Path<u64>) -> Json<serde_json::Value> {
    let wait = Duration::from_millis(ms).min(MAX_SLOW);
    tokio::time::sleep(wait).await;
    Json(serde_json::json!({ "slept_ms": wait.as_millis() }))
}

async fn set_dependency(
    State(s): State<AppState>,
    Path(state): Path<String>,
) -> Result<Json<serde_json::Value>, (StatusCode, &'static str)> {
    let up = match state.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err((StatusCode::BAD_REQUEST, "expected up or down")),
    };
    s.dependency.0.store(up, Ordering::Relaxed);
    Ok(Json(serde_json::json!({ "demo_dependency_up": up })))
}
