//! The spec-first example over a real socket: `api.yaml` is published, and requests that
//! break it are answered 400 problem+json with every violation before a handler runs.

use ms_chassis::testing::TestService;
use serde_json::{Value, json};

#[path = "../src/main.rs"]
#[allow(dead_code)]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_is_published_and_enforced() {
    let app = TestService::start(
        // `reject`: the example's own responses must keep its contract too.
        &format!(
            "openapi: {{ file: {:?}, validation: {{ responses: reject }} }}",
            example::SPEC
        ),
        example::router(),
    )
    .await
    .expect("service starts");
    let url = app.base_url();
    let c = app.client();

    let spec: Value = c
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    assert!(spec["paths"]["/books"]["post"].is_object(), "{spec}");

    let res = c
        .post(format!("{url}/books"))
        .json(&json!({"title": "", "isbn": "12", "extra": 1, "published": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    let locations: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["location"].as_str().unwrap())
        .collect();
    for expected in ["body/title", "body/isbn"] {
        assert!(locations.contains(&expected), "{problem}");
    }
    assert!(
        locations.iter().any(|l| l.starts_with("body")) && locations.len() >= 3,
        "{problem}"
    );

    let res = c.get(format!("{url}/books?limit=0")).send().await.unwrap();
    assert_eq!(res.status(), 400);

    let res = c
        .post(format!("{url}/books"))
        .json(&json!({"title": "Dune", "isbn": "9780441013593", "published": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let books: Value = c
        .get(format!("{url}/books?limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(books[0]["title"], "Dune");
    assert_eq!(books[0]["id"], 1, "{books}");
    app.shutdown().await.unwrap();
}
