//! The benchmark baseline: the hello demo's `/hello` handler on bare axum, with nothing
//! else. Listens on 127.0.0.1, port from `BENCH_PORT` (default 8081).
//!
//! The handler is hello's, state included: hello reads its greeting from a `watch` channel
//! that follows config reloads (`Live::get`, which clones the current `Arc` out of it), so
//! this one does too. With a literal greeting the compiler
//! would fold the `format!` away, and the baseline would do less work per request than the
//! handler it stands for.

use std::sync::Arc;

use axum::extract::State;
use axum::{Json, Router, routing::get};
use serde::Serialize;
use tokio::sync::watch;

struct AppConfig {
    greeting: String,
}

struct App {
    app: watch::Receiver<Arc<AppConfig>>,
}

#[derive(Serialize)]
struct Greeting {
    message: String,
}

async fn hello(State(s): State<Arc<App>>) -> Json<Greeting> {
    // What hello's `Live::get` does: the current value, an `Arc` clone out of the channel.
    let app = s.app.borrow().clone();
    Json(Greeting {
        message: format!("{}, world", app.greeting),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let greeting = std::env::var("BENCH_GREETING").unwrap_or_else(|_| "hello".to_owned());
    let (_keep, app) = watch::channel(Arc::new(AppConfig { greeting }));
    let router = Router::new()
        .route("/hello", get(hello))
        .with_state(Arc::new(App { app }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, router).await
}
