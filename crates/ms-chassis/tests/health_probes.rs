//! Health endpoints over real HTTP: formats, status codes, concurrency, timeouts and caching.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ms_chassis::axum::Router;
use ms_chassis::health::{CheckOutcome, Probe};
use serde_json::{Value, json};

async fn get(url: &str, accept: Option<&str>) -> (u16, String, Value) {
    let mut req = support::client().get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    (
        status,
        ct,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_and_status_codes() {
    let svc = support::start_with("", Router::new(), |s| {
        s.health()
            .liveness("memory", || async {
                CheckOutcome::up().with("used_mb", 12)
            })
            .readiness("db", || async { Err::<(), _>("connection refused") });
    })
    .await;
    let u = &svc.url;

    let (code, ct, body) = get(&format!("{u}/health/live"), None).await;
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    assert_eq!(
        body,
        json!({"status":"UP","checks":[{"name":"memory","status":"UP","data":{"used_mb":12}}]})
    );

    let (code, _, body) = get(&format!("{u}/health/ready"), None).await;
    assert_eq!(code, 503);
    assert_eq!(
        body,
        json!({"status":"DOWN","checks":[
            {"name":"lifecycle","status":"UP","data":{"state":"serving"}},
            {"name":"db","status":"DOWN","data":{"error":"connection refused"}}]})
    );

    // Spring Boot Actuator shape, by query or by Accept.
    let spring = json!({"status":"DOWN","components":{
        "lifecycle":{"status":"UP","details":{"state":"serving"}},
        "db":{"status":"DOWN","details":{"error":"connection refused"}}}});
    let (code, ct, body) = get(&format!("{u}/health/ready?format=spring"), None).await;
    assert_eq!(
        (code, ct.as_str()),
        (503, "application/vnd.spring-boot.actuator.v3+json")
    );
    assert_eq!(body, spring);
    let (_, _, body) = get(
        &format!("{u}/health/ready"),
        Some("application/vnd.spring-boot.actuator.v3+json"),
    )
    .await;
    assert_eq!(body, spring);

    let (code, _, body) = get(&format!("{u}/health/started"), None).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "UP");

    // /health aggregates everything: DOWN because of db.
    let (code, _, body) = get(&format!("{u}/health"), None).await;
    assert_eq!(code, 503);
    let names: Vec<_> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("lifecycle"), json!("memory"), json!("db")]);

    // PyMS compatibility: plain OK while live.
    let res = support::client()
        .get(format!("{u}/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "OK");

    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_concurrently() {
    // Each check waits at a barrier for the other. Run one after the other, the first would
    // wait forever and time out DOWN; run concurrently, both pass.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let svc = support::start_with("health: { timeout: 20s }", Router::new(), |s| {
        for name in ["a", "b"] {
            let barrier = barrier.clone();
            s.health().liveness(name, move || {
                let barrier = barrier.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    barrier.wait().await;
                    true
                }
            });
        }
    })
    .await;
    let (code, _, body) = get(&format!("{}/health/live", svc.url), None).await;
    assert_eq!(code, 200, "{body}");
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_is_down_with_a_timeout_error() {
    let svc = support::start_with("health: { timeout: 2s }", Router::new(), |s| {
        s.health().readiness("hangs", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            true
        });
        s.health().register(
            "own-timeout",
            Probe::Readiness,
            Some(Duration::from_millis(100)),
            || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                true
            },
        );
    })
    .await;
    let (code, _, body) = get(&format!("{}/health/ready", svc.url), None).await;
    assert_eq!(code, 503);
    assert_eq!(
        body["checks"][1],
        json!({"name":"hangs","status":"DOWN","data":{"error":"timeout after 2s"}})
    );
    assert_eq!(
        body["checks"][2],
        json!({"name":"own-timeout","status":"DOWN","data":{"error":"timeout after 100ms"}})
    );
    svc.running.shutdown().await.unwrap();
}

async fn count_runs(yaml: &str, probes: usize) -> usize {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = support::start_with(yaml, Router::new(), move |s| {
        s.health().liveness("counted", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { true }
        });
    })
    .await;
    for _ in 0..probes {
        let (code, _, _) = get(&format!("{}/health/live", svc.url), None).await;
        assert_eq!(code, 200);
    }
    svc.running.shutdown().await.unwrap();
    runs.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_cached_for_the_ttl() {
    assert_eq!(count_runs("health: { cache_ttl: 0s }", 3).await, 3);
    assert_eq!(count_runs("health: { cache_ttl: 1h }", 3).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_readiness_follow_the_lifecycle() {
    let svc = support::start(
        "server: { shutdown: { drain_delay: 30s, grace: 1s } }",
        Router::new(),
    )
    .await;
    let ready = format!("{}/health/ready", svc.url);
    assert_eq!(get(&ready, None).await.0, 200);
    svc.running.trigger_shutdown();
    // During the drain delay the listener still accepts, and readiness reports DOWN.
    let body = support::eventually(Duration::from_secs(20), "readiness DOWN", || async {
        let (code, _, body) = get(&ready, None).await;
        (code == 503).then_some(body)
    })
    .await;
    assert_eq!(
        body["checks"][0],
        json!({"name":"lifecycle","status":"DOWN","data":{"state":"stopping"}})
    );
    // Liveness stays UP while draining: Kubernetes must not restart a draining pod.
    assert_eq!(get(&format!("{}/health/live", svc.url), None).await.0, 200);
}
