//! The shop service of the OpenAPI validation tests: a real chassis service on 127.0.0.1
//! port 0 whose router carries the `ValidationLayer` of one of the fixture specs.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use ms_chassis::axum::body::Bytes;
use ms_chassis::axum::extract::Path;
use ms_chassis::axum::http::StatusCode;
use ms_chassis::axum::response::IntoResponse;
use ms_chassis::axum::routing::{get, post};
use ms_chassis::axum::{Json, Router};
use ms_chassis::openapi::{Document, ValidationOptions, Validator};
use ms_chassis::{RunningService, Service};
use serde_json::{Value, json};

/// The specs every violation test runs on: the same contract in 3.0, in 3.1, and in 3.1
/// split over several files.
pub const SHOP_SPECS: [&str; 3] = ["v30.yaml", "v31.yaml", "multi/api.yaml"];

/// A valid tenant header value.
pub const TENANT: &str = "0b9f3b0e-59b2-4a39-8e8a-6e2b3b1f9a11";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

/// A running shop.
pub struct Shop {
    pub running: RunningService,
    pub url: String,
    pub spec: &'static str,
}

async fn item(Path(id): Path<String>) -> ms_chassis::axum::response::Response {
    match id.as_str() {
        // Breaks the contract: no name, price or time.
        "7" => Json(json!({"id": 7})).into_response(),
        // Not a documented status.
        "9" => StatusCode::IM_A_TEAPOT.into_response(),
        _ => Json(json!({"id": 5, "name": "Lamp", "price": 3.5, "when": "2024-01-01T00:00:00Z"}))
            .into_response(),
    }
}

/// The shop's routes (more than the spec has: PUT /items/{id} is not in it), unvalidated.
pub fn routes() -> Router {
    Router::new()
        .route(
            "/items",
            get(|| async { "items" })
                .post(|body: Bytes| async move { (StatusCode::CREATED, body) }),
        )
        .route(
            "/items/{id}",
            get(item)
                .put(|| async { "put" })
                .delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/secure", get(|| async { "ok" }))
        .route("/keyed", get(|| async { "ok" }))
        .route("/pets", post(|| async { StatusCode::CREATED }))
        .route("/trees", post(|| async { StatusCode::CREATED }))
        .route("/contact", post(|| async { "sent" }))
}

/// Starts the shop with `spec` (a fixture name), `options`, extra config `yaml`, and
/// `configure` applied to the validator (a verifier, say).
pub async fn shop_with(
    spec: &'static str,
    options: ValidationOptions,
    yaml: &str,
    configure: impl FnOnce(Validator) -> Validator,
) -> Shop {
    let svc = Service::builder()
        .yaml(super::support::TEST_BASE)
        .yaml(yaml)
        .build()
        .expect("test config is valid");
    let doc = Document::load(fixture(spec)).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let validator = Validator::compile(&doc, options)
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
        .with_metrics(svc.metrics().registry())
        .expect("the validation metrics register");
    let validator = configure(validator);
    let router = routes().layer(validator.layer());
    let running = svc.start(router).await.expect("service starts");
    let url = format!("http://{}", running.local_addr());
    Shop { running, url, spec }
}

pub async fn shop(spec: &'static str, options: ValidationOptions) -> Shop {
    shop_with(spec, options, "", |v| v).await
}

/// The `errors` of a problem+json response, asserting its status and media type.
pub async fn problem(res: reqwest::Response, status: u16, spec: &str) -> Vec<Value> {
    assert_eq!(res.status().as_u16(), status, "{spec}: status");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{spec}: content type"
    );
    let body: Value = res.json().await.expect("a JSON problem");
    assert_eq!(body["status"], status, "{spec}: {body}");
    body["errors"].as_array().cloned().unwrap_or_default()
}

/// The locations of `errors`.
pub fn locations(errors: &[Value]) -> Vec<String> {
    errors
        .iter()
        .map(|e| e["location"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The error at `location`, or a panic listing them all.
pub fn at<'e>(errors: &'e [Value], location: &str, spec: &str) -> &'e Value {
    errors
        .iter()
        .find(|e| e["location"] == location)
        .unwrap_or_else(|| panic!("{spec}: no error at {location}: {errors:#?}"))
}
