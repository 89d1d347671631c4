//! A user story: a teammate opens `hello`'s `/docs` and `/openapi.json` to learn its API.
//! Every route of the demo is in the spec, documented code-first; the JSON and YAML
//! documents pass `openapi-spec-validator`; the Swagger UI page is served.

mod support;

#[path = "../../../crates/ms-chassis/tests/openapi_support/spec_validator.rs"]
mod spec_validator;

use serde_json::Value;
use support::{client, spawn_hello};

#[tokio::test]
async fn every_route_is_documented_and_the_spec_is_valid() {
    let hello = spawn_hello(&[
        ("MS__SERVICE__NAME", "hello"),
        ("MS__SERVICE__VERSION", "0.1.0"),
    ])
    .await;
    let res = client()
        .get(hello.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let json = res.bytes().await.unwrap();
    let doc: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(doc["info"]["title"], "hello");
    assert_eq!(doc["info"]["version"], "0.1.0");
    for (path, method) in [
        ("/hello", "get"),
        ("/hello/{name}", "get"),
        ("/relay", "get"),
        ("/downstream", "get"),
        ("/slow/{ms}", "get"),
        ("/demo/dependency/{state}", "post"),
        ("/demo/panic", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(
            op["summary"].is_string(),
            "{method} {path} is not documented: {doc}"
        );
    }
    let yaml = client()
        .get(hello.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (j, y) = (dir.path().join("hello.json"), dir.path().join("hello.yaml"));
    std::fs::write(&j, &json).unwrap();
    std::fs::write(&y, &yaml).unwrap();
    spec_validator::assert_valid_openapi(&[&j, &y]);
    let page = client().get(hello.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui-bundle.js"));
}
