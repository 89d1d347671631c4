//! The benchmark baseline: the hello demo's `/hello` handler on bare axum, with nothing
//! else. Listens on 127.0.0.1, port from `BENCH_PORT` (default 8081).

use axum::{Json, Router, routing::get};
use serde::Serialize;

#[derive(Serialize)]
struct Greeting {
    message: String,
}

async fn hello() -> Json<Greeting> {
    Json(Greeting {
        message: format!("{}, world", "hello"),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, Router::new().route("/hello", get(hello))).await
}
