//! The chassis server stack over real HTTP: request ids, panic isolation, timeouts, body and
//! concurrency limits, problem+json errors, and the management port.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::Notify;

async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "chassis errors are RFC 7807"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_or_generated() {
    let svc = support::start("", Router::new().route("/x", get(|| async { "x" }))).await;
    let c = support::client();
    let url = format!("{}/x", svc.url);

    let res = c
        .get(&url)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");

    let generated = c.get(&url).send().await.unwrap().headers()["x-request-id"].clone();
    let generated = generated.to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let again = c.get(&url).send().await.unwrap().headers()["x-request-id"].clone();
    assert_ne!(again, generated, "a fresh id per request");

    // Oversized or non-visible ids are replaced, not echoed.
    let huge = "a".repeat(129);
    let res = c
        .get(&url)
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], huge.as_str());
    let res = c
        .get(&url)
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "two words");

    // Unmatched routes get the id too, and a problem+json 404.
    let res = c
        .get(format!("{}/nope", svc.url))
        .header("x-request-id", "r-404")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "r-404");
    problem(res, 404).await;
    svc.running.shutdown().await.unwrap();
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gives_500_and_the_service_keeps_serving() {
    let router = Router::new()
        .route("/boom", get(boom))
        .route("/ok", get(|| async { "fine" }));
    let svc = support::start("", router).await;
    let c = support::client();
    for _ in 0..3 {
        let res = c.get(format!("{}/boom", svc.url)).send().await.unwrap();
        let body = problem(res, 500).await;
        assert!(
            !body.to_string().contains("handler bug"),
            "panic text must not leak: {body}"
        );
    }
    let res = c.get(format!("{}/ok", svc.url)).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "fine");
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_gets_504_at_the_request_timeout() {
    let router = Router::new().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    );
    let svc = support::start("server: { limits: { request_timeout: 300ms } }", router).await;
    let res = support::client()
        .get(format!("{}/hang", svc.url))
        .send()
        .await
        .unwrap();
    let body = problem(res, 504).await;
    assert!(body["detail"].as_str().unwrap().contains("300ms"), "{body}");
    // Chassis endpoints are outside the user's timeout.
    let res = support::client()
        .get(format!("{}/health", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let router = Router::new().route(
        "/echo",
        post(|body: String| async move { body.len().to_string() }),
    );
    let svc = support::start("server: { limits: { body_size: 1KiB } }", router).await;
    let c = support::client();
    let url = format!("{}/echo", svc.url);

    let res = c.post(&url).body("x".repeat(1024)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "1024");

    // Declared length over the limit: rejected before the handler, as problem+json.
    let res = c.post(&url).body("x".repeat(1025)).send().await.unwrap();
    let body = problem(res, 413).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("server.limits.body_size"),
        "{body}"
    );

    // Streamed without a length: cut off while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'y'; 512])).collect();
    let res = c
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    svc.running.shutdown().await.unwrap();
}

/// The default `body_size` (2 MiB) is axum's own default, so the chassis adds no
/// `DefaultBodyLimit` layer for it: this pins that axum still stops there. Streamed without
/// a length, so that the extractor's limit is what answers, not the declared-length check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_body_limit_is_2_mib_for_extractors() {
    let router = Router::new().route(
        "/echo",
        post(|body: ms_chassis::axum::body::Bytes| async move { body.len().to_string() }),
    );
    let svc = support::start("", router).await;
    let c = support::client();
    let url = format!("{}/echo", svc.url);
    let streamed = |len: usize| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![b'z'; len]
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    };
    let limit = 2 * 1024 * 1024;
    let res = c.post(&url).body(streamed(limit)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), limit.to_string());
    let res = c.post(&url).body(streamed(limit + 1)).send().await.unwrap();
    assert_eq!(res.status(), 413, "one byte over axum's default");
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_is_global_and_sheds_with_503() {
    // Two routes, limit 1: a request held on one route makes the other route shed, which
    // proves the limit is service-wide rather than per route.
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let (r, e) = (release.clone(), entered.clone());
    let router = Router::new()
        .route(
            "/hold",
            get(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "released"
                }
            }),
        )
        .route("/other", get(|| async { "other" }));
    let svc = support::start("server: { limits: { concurrency: 1 } }", router).await;
    let c = support::client();
    let held = tokio::spawn(c.get(format!("{}/hold", svc.url)).send());
    tokio::time::timeout(Duration::from_secs(30), entered.notified())
        .await
        .expect("handler entered");

    let res = c.get(format!("{}/other", svc.url)).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    problem(res, 503).await;
    // Health stays reachable while the user's routes are saturated.
    assert_eq!(
        c.get(format!("{}/health/live", svc.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    release.notify_one();
    let res = held.await.unwrap().unwrap();
    assert_eq!(res.text().await.unwrap(), "released");
    let res = c.get(format!("{}/other", svc.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_port_carries_the_chassis_endpoints() {
    let router = Router::new().route("/hello", get(|| async { "hi" }));
    let svc = support::start(
        "server: { management: { host: 127.0.0.1, port: 0 } }",
        router,
    )
    .await;
    let mgmt = format!(
        "http://{}",
        svc.running.management_addr().expect("management listener")
    );
    let c = support::client();

    assert_eq!(
        c.get(format!("{}/hello", svc.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for path in ["/health", "/health/ready", "/metrics", "/healthcheck"] {
        let public = c.get(format!("{}{path}", svc.url)).send().await.unwrap();
        assert_eq!(public.status(), 404, "{path} must be off the public port");
        let private = c.get(format!("{mgmt}{path}")).send().await.unwrap();
        assert_eq!(
            private.status(),
            200,
            "{path} must be on the management port"
        );
    }
    assert_eq!(
        c.get(format!("{mgmt}/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_path_lacks_is_a_405_problem_with_allow() {
    let svc = support::start("", Router::new().route("/x", get(|| async { "x" }))).await;
    let c = support::client();
    // A user route, and a chassis endpoint: the same answer, with what the path takes.
    for path in ["/x", "/health", "/metrics"] {
        let res = c.post(format!("{}{path}", svc.url)).send().await.unwrap();
        let allow = res.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allow.contains("GET"), "{path}: Allow {allow}");
        let body = problem(res, 405).await;
        assert_eq!(body["title"], "Method Not Allowed", "{path}: {body}");
    }
    svc.running.shutdown().await.unwrap();
}
