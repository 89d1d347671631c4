//! The server of the OpenAPI validation benchmark (issue 12): a spec-first chassis service
//! whose contract is `api.yaml` (the spec of the in-process criterion bench,
//! `crates/ms-chassis/benches/openapi_validation.rs`) and whose handlers answer at once, so
//! that what validation adds is a large share of the service's CPU per request.
//!
//! - `GET /orders?limit=&status=` answers a small JSON document;
//! - `POST /orders` answers 201 with a tiny body. It takes the body as [`Bytes`], as any
//!   handler reads its body, but does not parse it: the chassis has checked it against the
//!   spec already (when validation is on).
//!
//! Validation off is the same binary with `MS__OPENAPI__VALIDATION__REQUESTS=false`; the
//! spec is found wherever the server is started from (`MS__OPENAPI__FILE` overrides it).
//! `bench/validation.py` builds it and loads both routes with validation on and off.
//!
//! ```text
//! cargo run --release -p validated
//! curl -s 'localhost:8080/orders?limit=10&status=open'
//! curl -s -X POST localhost:8080/orders -H 'content-type: application/json' -d '{"sku":"x"}'
//! ```

#![forbid(unsafe_code)]

use ms_chassis::axum::Router;
use ms_chassis::axum::body::Bytes;
use ms_chassis::axum::http::{StatusCode, header};
use ms_chassis::axum::response::IntoResponse;
use ms_chassis::axum::routing::get;
use ms_chassis::prelude::*;

/// The spec's path, wherever the service is started from.
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api.yaml");

/// `GET /orders`: a small JSON document, at once.
async fn list() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"orders":[]}"#,
    )
}

/// `POST /orders`: 201 and a tiny body, at once; the body is read, not parsed.
async fn add(body: Bytes) -> impl IntoResponse {
    drop(body);
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"id":1}"#,
    )
}

#[tokio::main]
async fn main() -> ms_chassis::Result<()> {
    let svc = Service::builder_from(ms_chassis::config::ConfigLoader::from_env())
        .yaml(format!(
            "service: {{ name: validated }}\nopenapi: {{ file: {SPEC:?} }}"
        ))
        .build()?;
    svc.serve(Router::new().route("/orders", get(list).post(add)))
        .await
}
