//! Health endpoints over real HTTP: formats, status codes, who sees the checks' details,
//! concurrency, timeouts, single flight and caching.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::config::ConfigLoader;
use ms_chassis::health::{CheckOutcome, Probe, Registration};
use serde_json::{Value, json};

const SPRING: &str = "application/vnd.spring-boot.actuator.v3+json";

async fn get(url: &str, accept: Option<&str>) -> (u16, String, Value) {
    get_as(url, accept, None).await
}

/// GET `url`, with `Authorization: Bearer <token>` when given.
async fn get_as(url: &str, accept: Option<&str>, token: Option<&str>) -> (u16, String, Value) {
    let mut req = support::client().get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
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

/// A live `memory` check with data, and a `db` readiness check DOWN with an error that
/// names its URL: what a public probe must not show.
fn memory_and_db(s: &ms_chassis::Service) {
    s.health()
        .liveness("memory", || async {
            CheckOutcome::up().with("used_mb", 12)
        })
        .readiness("db", || async {
            Err::<(), _>("connection refused: postgres://db.internal:5432")
        });
}

/// The readiness bodies of [`memory_and_db`], with and without details.
fn ready_bodies() -> [Value; 4] {
    [
        json!({"status":"DOWN","checks":[
            {"name":"lifecycle","status":"UP","data":{"state":"serving"}},
            {"name":"db","status":"DOWN","data":{"error":"connection refused: postgres://db.internal:5432"}}]}),
        json!({"status":"DOWN","checks":[
            {"name":"lifecycle","status":"UP"},
            {"name":"db","status":"DOWN"}]}),
        json!({"status":"DOWN","components":{
            "lifecycle":{"status":"UP","details":{"state":"serving"}},
            "db":{"status":"DOWN","details":{"error":"connection refused: postgres://db.internal:5432"}}}}),
        json!({"status":"DOWN","components":{
            "lifecycle":{"status":"UP"},
            "db":{"status":"DOWN"}}}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_and_status_codes_and_details_for_the_admin_token_only() {
    let token = "health-admin-token";
    let svc = support::start_with(
        &format!("admin: {{ token: {token} }}"),
        Router::new(),
        memory_and_db,
    )
    .await;
    let u = &svc.url;
    let [mp_details, mp_public, spring_details, spring_public] = ready_bodies();

    // Public: the status, and each check's name and status.
    let (code, ct, body) = get(&format!("{u}/health/live"), None).await;
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    assert_eq!(
        body,
        json!({"status":"UP","checks":[{"name":"memory","status":"UP"}]})
    );
    let (code, _, body) = get(&format!("{u}/health/ready"), None).await;
    assert_eq!(code, 503);
    assert_eq!(body, mp_public);

    // With the admin token: the data too.
    let (code, _, body) = get_as(&format!("{u}/health/live"), None, Some(token)).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"status":"UP","checks":[{"name":"memory","status":"UP","data":{"used_mb":12}}]})
    );
    let (code, _, body) = get_as(&format!("{u}/health/ready"), None, Some(token)).await;
    assert_eq!(code, 503);
    assert_eq!(body, mp_details);
    // Another token is no token: no details, and still no 401 or 403 for a probe.
    let (code, _, body) = get_as(&format!("{u}/health/ready"), None, Some("guess")).await;
    assert_eq!((code, &body), (503, &mp_public));

    // Spring Boot Actuator shape, by query or by Accept, under the same rule.
    let (code, ct, body) = get(&format!("{u}/health/ready?format=spring"), None).await;
    assert_eq!((code, ct.as_str()), (503, SPRING));
    assert_eq!(body, spring_public);
    let (_, _, body) = get(&format!("{u}/health/ready"), Some(SPRING)).await;
    assert_eq!(body, spring_public);
    let (code, ct, body) = get_as(
        &format!("{u}/health/ready?format=spring"),
        None,
        Some(token),
    )
    .await;
    assert_eq!((code, ct.as_str()), (503, SPRING));
    assert_eq!(body, spring_details);
    let (_, _, body) = get_as(&format!("{u}/health/ready"), Some(SPRING), Some(token)).await;
    assert_eq!(body, spring_details);

    let (code, _, body) = get(&format!("{u}/health/started"), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"status":"UP","checks":[{"name":"lifecycle","status":"UP"}]})
    );

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
    assert!(!body.to_string().contains("postgres"), "{body}");

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
async fn a_loopback_management_port_shows_the_details_unless_never() {
    for (show, details) in [("when_authorized", true), ("never", false)] {
        let svc = support::start_with(
            &format!(
                "server: {{ management: {{ host: 127.0.0.1, port: 0 }} }}\n\
                 health: {{ show_details: {show} }}"
            ),
            Router::new(),
            memory_and_db,
        )
        .await;
        let m = format!("http://{}", svc.running.management_addr().unwrap());
        let [mp_details, mp_public, spring_details, spring_public] = ready_bodies();
        let (code, _, body) = get(&format!("{m}/health/ready"), None).await;
        assert_eq!(code, 503, "{show}");
        assert_eq!(body, if details { mp_details } else { mp_public }, "{show}");
        let (code, _, body) = get(&format!("{m}/health/ready?format=spring"), None).await;
        assert_eq!(code, 503, "{show}");
        assert_eq!(
            body,
            if details {
                spring_details
            } else {
                spring_public
            },
            "{show}"
        );
        svc.running.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_shows_the_details_to_everyone_and_never_to_nobody() {
    let token = "t0k";
    for (show, details) in [("always", true), ("never", false)] {
        let svc = support::start_with(
            &format!(
                "admin: {{ token: {token} }}
health: {{ show_details: {show} }}"
            ),
            Router::new(),
            memory_and_db,
        )
        .await;
        let u = &svc.url;
        let [mp_details, mp_public, spring_details, spring_public] = ready_bodies();
        for auth in [None, Some(token)] {
            let (code, _, body) = get_as(&format!("{u}/health/ready"), None, auth).await;
            assert_eq!(code, 503);
            assert_eq!(
                &body,
                if details { &mp_details } else { &mp_public },
                "{show}"
            );
            let (_, _, body) = get_as(&format!("{u}/health/ready"), Some(SPRING), auth).await;
            let expected = if details {
                &spring_details
            } else {
                &spring_public
            };
            assert_eq!(&body, expected, "{show} {auth:?}");
        }
        svc.running.shutdown().await.unwrap();
    }
}

#[test]
fn an_unknown_show_details_is_a_config_error_naming_the_key_and_the_values() {
    let e = ConfigLoader::new()
        .yaml("health:\n  show_details: sometimes\n")
        .load()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "inline config:2: health.show_details: expected one of never, when_authorized, \
         always, found \"sometimes\""
    );
    let e = ConfigLoader::new()
        .env_vars([("MS__HEALTH__SHOW_DETAILS", "yes")])
        .load()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable MS__HEALTH__SHOW_DETAILS: health.show_details: expected one of \
         never, when_authorized, always, found \"yes\""
    );
    let defaults = ConfigLoader::new().load().unwrap();
    let health = &defaults.chassis().health;
    assert_eq!(health.cache_ttl, Duration::from_secs(1));
    assert_eq!(
        health.show_details,
        ms_chassis::health::ShowDetails::WhenAuthorized
    );
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
    // Details shown to everyone, to read the errors.
    let yaml = "health: { timeout: 2s, show_details: always }";
    let svc = support::start_with(yaml, Router::new(), |s| {
        s.health().readiness("hangs", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            true
        });
        s.health().add(
            Registration::new("own-timeout", Probe::Readiness, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                true
            })
            .timeout(Duration::from_millis(100)),
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
async fn two_hundred_concurrent_probes_run_the_check_a_handful_of_times() {
    // Default health settings: a cache of 1s, and single flight.
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = support::start_with("", Router::new(), move |s| {
        s.health().readiness("db", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                true
            }
        });
    })
    .await;
    let http = support::client();
    let url = format!("{}/health/ready", svc.url);
    let started = Instant::now();
    let probes: Vec<_> = (0..200)
        .map(|_| {
            let req = http.get(&url).send();
            tokio::spawn(async move { req.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.unwrap().unwrap(), 200);
    }
    let elapsed = started.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    // A run can start only once the previous one has finished and its result is 1s old:
    // at most one run per second of probing, plus the first.
    let bound = 1 + elapsed.as_secs() as usize;
    assert!(
        runs <= bound,
        "{runs} runs for 200 probes in {elapsed:?}; at most {bound} expected"
    );
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_probes_share_one_run_of_a_slow_check() {
    // No cache: what keeps the check to one run is single flight alone.
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let r = runs.clone();
    let yaml = "health: { cache_ttl: 0s, timeout: 20s }";
    let svc = support::start_with(yaml, Router::new(), move |s| {
        s.health().readiness("slow", move || {
            r.fetch_add(1, Ordering::SeqCst);
            let mut released = released.clone();
            async move { released.wait_for(|r| *r).await.is_ok() }
        });
    })
    .await;
    let http = support::client();
    let url = format!("{}/health/ready", svc.url);
    let probes: Vec<_> = (0..20)
        .map(|_| {
            let req = http.get(&url).send();
            tokio::spawn(async move { req.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    support::eventually(Duration::from_secs(10), "the first run to start", || {
        let started = runs.load(Ordering::SeqCst) > 0;
        async move { started.then_some(()) }
    })
    .await;
    // Time for the other probes to arrive and join the run in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        probes.iter().all(|p| !p.is_finished()),
        "every probe waits for the run"
    );
    release.send(true).unwrap();
    for p in probes {
        assert_eq!(p.await.unwrap().unwrap(), 200);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "20 concurrent probes, one run"
    );
    // Nothing is left behind: the next probe runs the check afresh, and passes.
    let (code, _, _) = get(&url, None).await;
    assert_eq!(code, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_turns_readiness_down_at_once_whatever_the_cache() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = support::start_with(
        "health: { cache_ttl: 1h }\nserver: { shutdown: { drain_delay: 30s, grace: 1s } }",
        Router::new(),
        move |s| {
            s.health().readiness("db", move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { true }
            });
        },
    )
    .await;
    let ready = format!("{}/health/ready", svc.url);
    assert_eq!(get(&ready, None).await.0, 200);
    svc.running.trigger_shutdown();
    // Well within the drain delay, with db's UP cached for an hour.
    let body = support::eventually(Duration::from_secs(5), "readiness DOWN", || async {
        let (code, _, body) = get(&ready, None).await;
        (code == 503).then_some(body)
    })
    .await;
    assert_eq!(
        body,
        json!({"status":"DOWN","checks":[
            {"name":"lifecycle","status":"DOWN"},
            {"name":"db","status":"UP"}]})
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "db came from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_readiness_follow_the_lifecycle() {
    let svc = support::start(
        "server: { shutdown: { drain_delay: 30s, grace: 1s } }\n\
         health: { show_details: always }",
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
