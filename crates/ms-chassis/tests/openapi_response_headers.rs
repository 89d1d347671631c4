//! Response validation covers the documented response `headers`: a required header that is
//! missing, or a value its schema refuses, makes the response a 500 problem in `reject`
//! mode, naming the header; a response that keeps the contract passes untouched.

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use ms_chassis::testing::TestService;
use serde_json::Value;

const SPEC: &str = "openapi: 3.1.0
info: {title: headers, version: '1'}
components:
  headers:
    Limit:
      required: true
      schema: {type: integer, minimum: 1}
  responses:
    Limited:
      description: ok
      headers:
        X-Rate-Limit: {$ref: '#/components/headers/Limit'}
        X-Trace-Tags:
          schema: {type: array, maxItems: 2, items: {type: string}}
        Content-Type: {required: true, schema: {type: integer}}
paths:
  /good: {get: {responses: {'200': {$ref: '#/components/responses/Limited'}}}}
  /wrong: {get: {responses: {'200': {$ref: '#/components/responses/Limited'}}}}
  /missing: {get: {responses: {'200': {$ref: '#/components/responses/Limited'}}}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_response_headers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.yaml");
    std::fs::write(&file, SPEC).unwrap();
    let router = Router::new()
        .route(
            "/good",
            get(|| async { ([("x-rate-limit", "10"), ("x-trace-tags", "a,b")], "ok") }),
        )
        .route(
            "/wrong",
            get(|| async { ([("x-rate-limit", "ten"), ("x-trace-tags", "a,b,c")], "ok") }),
        )
        .route("/missing", get(|| async { "ok" }));
    let yaml = format!(
        "openapi: {{ file: {:?}, validation: {{ responses: reject }} }}",
        file.display().to_string()
    );
    let s = TestService::start(&yaml, router).await.unwrap();

    // Content-Type is documented as a required integer: the spec says to ignore it.
    let good = s.get("/good").await.unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.headers()["x-rate-limit"], "10");
    assert_eq!(good.text().await.unwrap(), "ok");

    for (path, expected) in [
        (
            "/wrong",
            ["header.x-rate-limit", "header.x-trace-tags"].as_slice(),
        ),
        ("/missing", ["header.x-rate-limit"].as_slice()),
    ] {
        let res = s.get(path).await.unwrap();
        assert_eq!(res.status(), 500, "{path}");
        let problem: Value = res.json().await.unwrap();
        let mut at: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["location"].as_str().unwrap())
            .collect();
        at.sort();
        assert_eq!(at, expected, "{path}: {problem}");
    }
    s.shutdown().await.unwrap();
}
