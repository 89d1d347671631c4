//! Hostile input to a validated service: huge, deep, long and malformed requests are all
//! answered quickly with a 4xx, and the service keeps serving afterwards. None may panic,
//! stall a worker or grow memory without bound (bodies are cut at the limit, JSON depth
//! at serde_json's 128, error lists at `max_errors`, and a value of over 16,384 members and
//! items that breaks its schema is checked only to its first violation).

mod openapi_validation_support;
mod support;

use std::time::{Duration, Instant};

use ms_chassis::openapi::ValidationOptions;
use openapi_validation_support::{Shop, TENANT, at, problem, shop_with};
use serde_json::{Value, json};
use support::client;

const LIMIT: usize = 256 * 1024;

async fn hostile_shop() -> Shop {
    shop_with(
        "v31.yaml",
        ValidationOptions {
            body_limit: LIMIT,
            ..ValidationOptions::default()
        },
        "server: { limits: { body_size: 256KiB } }",
        |v| v,
    )
    .await
}

/// Fast enough: a hostile request must not hold a worker (generous for busy 2-core CI).
fn assert_quick(start: Instant, what: &str) {
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{what} took {:?}",
        start.elapsed()
    );
}

async fn still_serving(s: &Shop) {
    let res = client()
        .get(format!("{}/items?limit=3", s.url))
        .header("x-tenant", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the service still serves");
}

#[tokio::test]
async fn a_one_mib_body_is_413_whether_its_length_is_declared_or_streamed() {
    let s = hostile_shop().await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024));
    let res = client()
        .post(format!("{}/items", s.url))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    problem(res, 413, "declared").await;
    // Chunked: no Content-Length, so only the collecting stops it.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = client()
        .post(format!("{}/items", s.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    problem(res, 413, "streamed").await;
    still_serving(&s).await;
}

#[tokio::test]
async fn json_nested_100000_deep_is_a_fast_400() {
    let s = hostile_shop().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let start = Instant::now();
    let res = client()
        .post(format!("{}/items", s.url))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "deep").await;
    assert_quick(start, "deep JSON");
    let e = at(&errors, "body", "deep");
    assert!(
        e["message"].as_str().unwrap().contains("recursion limit"),
        "{e}"
    );
    still_serving(&s).await;
}

/// `body` with `n` codes that break their pattern, posted: the 400 problem, which came
/// quickly.
async fn post_codes(s: &Shop, body: &mut Value, n: usize) -> Value {
    body["codes"] = Value::Array((0..n).map(|i| json!(format!("c{i}"))).collect());
    let start = Instant::now();
    let res = client()
        .post(format!("{}/items", s.url))
        .json(&*body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_quick(start, &format!("{n} items"));
    problem
}

#[tokio::test]
async fn ten_thousand_items_against_a_pattern_give_a_capped_list() {
    let s = hostile_shop().await;
    let mut body = json!({"name": "Lamp", "price": 1, "when": "2024-05-01T10:00:00Z"});
    let problem = post_codes(&s, &mut body, 10_000).await;
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), ValidationOptions::default().max_errors);
    assert_eq!(problem["truncated"], true);
    assert_eq!(errors[0]["location"], "body/codes/0");
    assert_eq!(errors[0]["keyword"], "pattern");
    still_serving(&s).await;

    // Past 16,384 values, listing every violation would first collect them all (hundreds
    // of bytes each, in the validator): only the first is listed, and the answer says so.
    let problem = post_codes(&s, &mut body, 20_000).await;
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["location"], "body/codes/0");
    assert_eq!(problem["truncated"], true);
    assert!(
        problem["detail"].as_str().unwrap().contains(
            "more than 16384 members and items is checked only up to its first violation"
        ),
        "{problem}"
    );
    still_serving(&s).await;
}

#[tokio::test]
async fn invalid_utf8_percent_escapes_are_a_400_of_their_parameter() {
    let s = hostile_shop().await;
    let c = client();
    let res = c
        .get(format!("{}/items?limit=%FF%FE", s.url))
        .header("x-tenant", TENANT)
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "query").await;
    assert_eq!(at(&errors, "query.limit", "query")["keyword"], "encoding");
    let res = c
        .get(format!("{}/items?%C3%28=1", s.url))
        .header("x-tenant", TENANT)
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "query name").await;
    assert_eq!(errors[0]["keyword"], "encoding");
    let res = c
        .get(format!("{}/items/%FF%FE", s.url))
        .send()
        .await
        .unwrap();
    let errors = problem(res, 400, "path").await;
    assert_eq!(at(&errors, "path.id", "path")["keyword"], "encoding");
    still_serving(&s).await;
}

#[tokio::test]
async fn a_content_type_with_1000_parameters_is_judged_by_its_essence_alone() {
    let s = hostile_shop().await;
    let params: String = (0..1000).map(|i| format!("; p{i}=v{i}")).collect();
    let start = Instant::now();
    let res = client()
        .post(format!("{}/items", s.url))
        .header("content-type", format!("text/plain{params}"))
        .body("hello")
        .send()
        .await
        .unwrap();
    problem(res, 415, "text/plain").await;
    let res = client()
        .post(format!("{}/items", s.url))
        .header("content-type", format!("application/json{params}"))
        .body(r#"{"name": "Lamp", "price": 1, "when": "2024-05-01T10:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_quick(start, "1,000 parameters");
    still_serving(&s).await;
}
