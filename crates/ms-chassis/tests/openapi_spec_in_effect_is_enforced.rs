//! The spec in effect is enforced by the service itself, with no layer of the user's: a
//! spec-first file named by `openapi.file`, or the code-first document given to
//! `with_openapi`. Each is published, and a request that breaks it gets 400 problem+json
//! before the handler runs; `openapi.validation.requests: false` turns the check off, and a
//! bad spec file stops the service at startup with its file and line, as
//! `openapi.strict_routes` does when the spec and the routes differ.

mod openapi_validation_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ms_chassis::Service;
use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use openapi_validation_support::{TENANT, fixture, locations, problem, routes};
use serde_json::{Value, json};
use support::spec_file;

/// Why a service configured by `yaml` (over the test base) refuses to start `router`.
async fn start_error(yaml: &str, router: Router) -> String {
    let svc = ms_chassis::testing::service(yaml).expect("the config itself is valid");
    match svc.start(router).await {
        Ok(_) => panic!("the service must refuse to start"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_first_file_is_published_and_enforced() {
    let file = fixture("multi/api.yaml");
    let yaml = format!("openapi: {{ file: {:?} }}", file.display().to_string());
    let support::TestService { running, url } = support::start(&yaml, routes()).await;
    let c = support::client();

    // Published bundled: the other files' schemas are in the one document.
    let doc: Value = c
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/items"].is_object(), "{doc}");
    let text = doc.to_string();
    assert!(
        !text.contains(".yaml#"),
        "external refs were hoisted: {text}"
    );

    // Enforced: two violations, both named.
    let res = c
        .get(format!("{url}/items?limit=0"))
        .header("x-tenant", "not-a-uuid")
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "multi/api.yaml").await;
    let found = locations(&errors);
    assert!(found.contains(&"query.limit".to_owned()), "{found:?}");
    assert!(found.contains(&"header.x-tenant".to_owned()), "{found:?}");

    // A valid request reaches the handler.
    let res = c
        .get(format!("{url}/items?limit=5"))
        .header("x-tenant", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "items");

    // Counted, by kind of location.
    let metrics = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("ms_chassis_openapi_request_validation_failures_total{")
                && l.contains("location=\"query\"")
        })
        .unwrap_or_else(|| panic!("no query failure counted:\n{metrics}"));
    assert!(line.contains("http_route=\"/items\""), "{line}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_first_spec_is_enforced_before_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/books/{id}",
        get(move || {
            seen.fetch_add(1, Ordering::Relaxed);
            async { "a book" }
        }),
    );
    let api = json!({
        "openapi": "3.1.0",
        "info": {"title": "ignored", "version": "0"},
        "paths": {"/books/{id}": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": true,
                            "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "the book"}}
        }}}
    });
    let svc = Service::builder()
        .yaml(support::TEST_BASE)
        .build()
        .expect("test config is valid")
        .with_openapi(api);
    let running = svc.start(router).await.expect("service starts");
    let url = format!("http://{}", running.local_addr());
    let c = support::client();

    let res = c.get(format!("{url}/books/0")).send().await.unwrap();
    let errors = problem(res, 400, "code-first").await;
    assert_eq!(locations(&errors), ["path.id"]);
    let res = c.get(format!("{url}/books/abc")).send().await.unwrap();
    let errors = problem(res, 400, "code-first").await;
    assert_eq!(errors[0]["found"], "abc", "{errors:?}");
    assert_eq!(calls.load(Ordering::Relaxed), 0, "the handler never ran");

    let res = c.get(format!("{url}/books/3")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_can_be_turned_off_and_the_spec_is_still_published() {
    let file = fixture("v31.yaml");
    let yaml = format!(
        "openapi: {{ file: {:?}, validation: {{ requests: false }} }}",
        file.display().to_string()
    );
    let support::TestService { running, url } = support::start(&yaml, routes()).await;
    let c = support::client();
    let res = c.get(format!("{url}/items?limit=0")).send().await.unwrap();
    assert_eq!(res.status(), 200, "not validated");
    let res = c.get(format!("{url}/openapi.yaml")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/items"));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_file_stops_the_service_naming_file_and_line() {
    let (_dir, file) = spec_file(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
         responses:\n        '200': {$ref: '#/components/responses/Missing'}\n",
    );
    let err = start_error(&format!("openapi: {{ file: {file} }}"), Router::new()).await;
    assert!(err.contains("api.yaml:7"), "{err}");
    assert!(err.contains("Missing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_routes_stops_the_service_listing_both_directions() {
    let (_dir, file) = spec_file(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  \
         /a:\n    get: {responses: {'200': {description: ok}}}\n    \
         delete: {responses: {'204': {description: gone}}}\n  \
         /b:\n    get: {responses: {'200': {description: ok}}}\n",
    );
    let routes = || {
        Router::new()
            .route("/a", get(|| async { "a" }).post(|| async { "made" }))
            .route("/undocumented", get(|| async { "hidden" }))
    };
    let strict = format!("openapi: {{ file: {file}, strict_routes: true }}");
    let err = start_error(&strict, routes()).await;
    assert!(
        err.contains("2 operation(s) of the spec have no route: DELETE /a, GET /b"),
        "{err}"
    );
    assert!(
        err.contains("2 route(s) have no operation in the spec: GET /undocumented, POST /a"),
        "{err}"
    );

    // Without strict_routes the same service starts (the differences are warnings), and
    // the undocumented route is served, unvalidated.
    let lenient = format!("openapi: {{ file: {file} }}");
    let support::TestService { running, url } = support::start(&lenient, routes()).await;
    let res = support::client()
        .get(format!("{url}/undocumented"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_under_a_servers_path_validates_the_routes_under_it() {
    let (_dir, file) = spec_file(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: /api/v1}]\npaths:\n  \
         /items/{id}:\n    get:\n      parameters:\n        \
         - {name: id, in: path, required: true, schema: {type: integer}}\n      \
         responses: {'200': {description: ok}}\n",
    );
    let yaml = format!("openapi: {{ file: {file}, strict_routes: true, base_path: /edge }}");
    let router = Router::new().route("/api/v1/items/{id}", get(|| async { "item" }));
    // strict_routes: the route under the servers path is the spec's operation.
    let support::TestService { running, url } = support::start(&yaml, router).await;
    let c = support::client();
    let ok = c.get(format!("{url}/api/v1/items/7")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let bad = c
        .get(format!("{url}/api/v1/items/seven"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("path.id"));
    // Published behind the configured prefix, the server URL keeps the spec's own path.
    let doc: Value = c
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["servers"], json!([{"url": "/edge/api/v1"}]));
    running.shutdown().await.unwrap();
}
