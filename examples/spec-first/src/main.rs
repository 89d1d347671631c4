//! A service whose contract comes first: `api.yaml` is written by hand, the config names it
//! (`openapi.file`), and the chassis publishes it at `/openapi.json` and `/docs` and checks
//! every request against it before a handler runs. The handlers trust their input: a
//! `POST /books` without an `isbn`, or with `limit=0`, never reaches them.
//!
//! ```text
//! cargo run -p spec-first
//! curl -s -X POST localhost:8080/books -H 'content-type: application/json' -d '{"title":""}'
//! ```

use std::sync::{Arc, Mutex};

use ms_chassis::axum::extract::{Query, State};
use ms_chassis::axum::http::StatusCode;
use ms_chassis::axum::routing::get;
use ms_chassis::axum::{Json, Router};
use ms_chassis::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The spec's path, wherever the service is started from.
pub(crate) const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api.yaml");

type Books = Arc<Mutex<Vec<Value>>>;

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
}

async fn list(State(books): State<Books>, Query(page): Query<Page>) -> Json<Value> {
    let books = books
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(Value::from(
        books
            .iter()
            .take(page.limit.unwrap_or(20))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

async fn add(State(books): State<Books>, Json(mut book): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut books = books
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    book["id"] = json!(books.len() + 1);
    books.push(book.clone());
    (StatusCode::CREATED, Json(book))
}

/// The routes of `api.yaml`.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/books", get(list).post(add))
        .with_state(Books::default())
}

/// The service with `api.yaml` as its contract, its config loaded the standard way
/// (`MS_CONFIG_FILE`, `MS_PROFILE`; `MS__*` variables win over the YAML given here).
pub(crate) fn service() -> ms_chassis::Result<Service> {
    Service::builder_from(ms_chassis::config::ConfigLoader::from_env())
        .yaml(format!(
            "service: {{ name: books }}\nopenapi: {{ file: {SPEC:?} }}"
        ))
        .build()
}

#[tokio::main]
async fn main() -> ms_chassis::Result<()> {
    service()?.serve(router()).await
}
