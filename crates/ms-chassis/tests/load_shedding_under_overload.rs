//! Adaptive load shedding under overload, over real sockets.
//!
//! The same service runs twice, load shedding off and on, behind a dependency with a fixed
//! capacity, and gets the same overload from an in-test load generator. With shedding on,
//! the excess gets fast 503 problem+json answers with `Retry-After`, the requests it accepts
//! keep a far lower p99 than without, and once the load stops the service serves again. A
//! smaller test pins the shed response itself: a request beyond the limit never reaches its
//! handler.
//!
//! Every comparison is a ratio between the two runs of this one test, never an absolute
//! time: latency here comes from queueing for the dependency, which a busy machine slows
//! down for both runs alike.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

/// The dependency serves this many requests at once...
const CAPACITY: usize = 4;
/// ...each for this long: at most 200 requests a second.
const HOLD: Duration = Duration::from_millis(20);
/// Callers in the overload, each sending its next request as soon as the last one ends:
/// 32 times the dependency's capacity.
const OVERLOAD_CALLERS: usize = 128;
const OVERLOAD_FOR: Duration = Duration::from_secs(3);
/// A caller that gets a 503 waits this long before its next request: an impatient client
/// that ignores `Retry-After` (still over 5 times the capacity in all), without spending
/// both cores on 503s.
const BACKOFF: Duration = Duration::from_millis(100);

/// Defaults, except a floor below the dependency's capacity: the default `min_limit` (10)
/// would keep more than 4 requests in flight, queueing, whatever latency says.
const SHEDDING_ON: &str = "
resilience:
  load_shedding: { enabled: true, min_limit: 2 }
";
const SHEDDING_OFF: &str = "";

fn router() -> Router {
    let pool = Arc::new(Semaphore::new(CAPACITY));
    Router::new().route(
        "/work",
        get(move || {
            let pool = Arc::clone(&pool);
            async move {
                let _connection = pool.acquire().await.expect("never closed");
                tokio::time::sleep(HOLD).await;
                "done"
            }
        }),
    )
}

/// What the callers saw: the latency of each accepted (200) and each shed (503) request.
#[derive(Debug, Default)]
struct Outcomes {
    ok: Vec<Duration>,
    shed: Vec<Duration>,
}

impl Outcomes {
    fn merge(&mut self, other: Outcomes) {
        self.ok.extend(other.ok);
        self.shed.extend(other.shed);
    }

    fn sort(mut self) -> Self {
        self.ok.sort_unstable();
        self.shed.sort_unstable();
        self
    }
}

/// The nearest-rank percentile of sorted latencies.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no samples");
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A shed response: 503 problem+json with `Retry-After: 1`, naming the setting.
async fn assert_shed(res: reqwest::Response) {
    assert_shed_retry_after(res, "1").await;
}

async fn assert_shed_retry_after(res: reqwest::Response, retry_after: &str) {
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["retry-after"], retry_after);
    let body: Value = res.json().await.expect("problem+json body");
    assert_eq!(body["status"], 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("resilience.load_shedding")),
        "{body}"
    );
}

/// `callers` loops sending `GET /work` for `length`; every request is answered 200 or 503.
async fn drive(client: &reqwest::Client, url: &str, callers: usize, length: Duration) -> Outcomes {
    let until = Instant::now() + length;
    let loops: Vec<_> = (0..callers)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{url}/work"));
            tokio::spawn(async move {
                let mut seen = Outcomes::default();
                while Instant::now() < until {
                    let start = Instant::now();
                    let res = client.get(&url).send().await.expect("GET /work");
                    match res.status().as_u16() {
                        200 => {
                            res.bytes().await.expect("body");
                            seen.ok.push(start.elapsed());
                        }
                        503 => {
                            assert_shed(res).await;
                            seen.shed.push(start.elapsed());
                            tokio::time::sleep(BACKOFF).await;
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Outcomes::default();
    for l in loops {
        all.merge(l.await.expect("caller loop"));
    }
    all.sort()
}

/// Light load (the dependency's capacity, no queue) to learn the baseline, then the
/// overload. Returns what the overload saw.
async fn warm_up_then_overload(client: &reqwest::Client, url: &str) -> Outcomes {
    let warm = drive(client, url, CAPACITY, Duration::from_secs(1)).await;
    assert!(
        warm.shed.is_empty(),
        "nothing is shed at capacity: {warm:?}"
    );
    drive(client, url, OVERLOAD_CALLERS, OVERLOAD_FOR).await
}

/// The value of the `name="server"` series of `metric` on `/metrics`, if any.
async fn server_series(url: &str, metric: &str) -> Option<f64> {
    let body = support::metrics_text(url).await;
    let prefix = format!("{metric}{{name=\"server\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_fast_accepted_requests_stay_fast_and_the_service_recovers() {
    // Shedding off: everything queues for the dependency.
    let off = support::start(SHEDDING_OFF, router()).await;
    let client = support::client();
    let without = warm_up_then_overload(&client, &off.url).await;
    assert!(without.shed.is_empty(), "nothing sheds without it");
    assert_eq!(
        server_series(&off.url, "ms_chassis_load_shedding_limit").await,
        None,
        "no shedder, no series"
    );
    off.running.shutdown().await.unwrap();

    // Shedding on: the same load.
    let on = support::start(SHEDDING_ON, router()).await;
    let client = support::client();
    let with = warm_up_then_overload(&client, &on.url).await;

    let p50_without = percentile(&without.ok, 0.5);
    let p99_without = percentile(&without.ok, 0.99);
    let p99_with = percentile(&with.ok, 0.99);
    let summary = format!(
        "off: {} ok, p50 {p50_without:?}, p99 {p99_without:?}; on: {} ok, p50 {:?}, p99 \
         {p99_with:?}, {} shed, median shed {:?}",
        without.ok.len(),
        with.ok.len(),
        percentile(&with.ok, 0.5),
        with.shed.len(),
        with.shed.get(with.shed.len() / 2),
    );
    eprintln!("{summary}");
    assert!(
        with.shed.len() >= OVERLOAD_CALLERS,
        "the excess is shed: {summary}"
    );
    assert!(
        p99_with < p99_without / 2,
        "accepted requests keep a bounded p99: {summary}"
    );
    assert!(
        percentile(&with.shed, 0.5) < p50_without,
        "503s come fast, without queueing: {summary}"
    );
    assert!(
        with.ok.len() * 2 > without.ok.len(),
        "shedding keeps the dependency busy: {summary}"
    );
    let shed_total = server_series(&on.url, "ms_chassis_load_shed_total").await;
    assert_eq!(
        shed_total,
        Some(with.shed.len() as f64),
        "every shed request is counted: {summary}"
    );

    // The load has stopped: requests are served again, at a limit above its floor.
    let url = format!("{}/work", on.url);
    support::eventually(
        Duration::from_secs(30),
        "the service to recover",
        || async {
            let ok = client.get(&url).send().await.ok()?.status() == 200;
            let limit = server_series(&on.url, "ms_chassis_load_shedding_limit").await?;
            (ok && limit > 2.0).then_some(())
        },
    )
    .await;
    for _ in 0..20 {
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "nothing is shed once the load is gone");
    }
    on.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_the_adaptive_limit_is_shed_before_its_handler_runs() {
    // No fixed limit at all, and an adaptive limit of one: a request held in its handler
    // makes the next one shed, on any route, and its handler never runs.
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (e, r, c) = (entered.clone(), release.clone(), calls.clone());
    let router = Router::new()
        .route(
            "/hold",
            get(move || {
                let (e, r) = (e.clone(), r.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "released"
                }
            }),
        )
        .route(
            "/other",
            get(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async { "other" }
            }),
        );
    let yaml = "
server: { limits: { concurrency: 0 } }
resilience:
  load_shedding: { enabled: true, min_limit: 1, initial_limit: 1, retry_after: 2500ms }
";
    let svc = support::start(yaml, router).await;
    let client = support::client();
    let held = tokio::spawn(client.get(format!("{}/hold", svc.url)).send());
    tokio::time::timeout(Duration::from_secs(30), entered.notified())
        .await
        .expect("handler entered");

    let res = client
        .get(format!("{}/other", svc.url))
        .send()
        .await
        .unwrap();
    assert_shed_retry_after(res, "3").await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
    assert_eq!(
        server_series(&svc.url, "ms_chassis_load_shed_total").await,
        Some(1.0)
    );

    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    let res = client
        .get(format!("{}/other", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the slot came back");
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_retunes_the_limit_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let write = |shedding: &str| {
        std::fs::write(
            &file,
            format!(
                "{}admin: {{ token: t0k }}\nresilience:\n  load_shedding: {shedding}\n",
                support::TEST_BASE
            ),
        )
        .unwrap();
    };
    write("{ enabled: true, initial_limit: 20 }");
    let svc = ms_chassis::Service::builder().file(&file).build().unwrap();
    let running = svc.start(router()).await.unwrap();
    let url = format!("http://{}", running.local_addr());
    let client = support::client();
    let limit = || server_series(&url, "ms_chassis_load_shedding_limit");
    assert_eq!(limit().await, Some(20.0));

    // A lower ceiling applies at once: the limit moves into the new bounds.
    write("{ enabled: true, initial_limit: 5, min_limit: 2, max_limit: 5, retry_after: 3s }");
    let post_reload = || async {
        client
            .post(format!("{url}/admin/config/reload"))
            .header("authorization", "Bearer t0k")
            .send()
            .await
            .unwrap()
    };
    let reload = || async {
        let res = post_reload().await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    let report = reload().await;
    let applied = report["applied"].to_string();
    for key in ["min_limit", "max_limit"] {
        assert!(
            applied.contains(&format!("resilience.load_shedding.{key}")),
            "{report}"
        );
    }
    assert_eq!(
        report["restart_required"],
        serde_json::json!([
            "resilience.load_shedding.initial_limit",
            "resilience.load_shedding.retry_after"
        ]),
        "{report}"
    );
    assert_eq!(limit().await, Some(5.0));

    // Invalid tuning is rejected as a whole; the limit stays.
    write("{ enabled: true, min_limit: 9, max_limit: 5 }");
    let res = post_reload().await;
    assert_eq!(res.status(), 422, "{}", res.text().await.unwrap());
    assert_eq!(limit().await, Some(5.0));
    running.shutdown().await.unwrap();
}
