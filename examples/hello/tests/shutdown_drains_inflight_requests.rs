//! A user story: an operator rolls out a new version, so Kubernetes sends SIGTERM to `hello`
//! while it is serving. Readiness must go DOWN at once, while the listener still accepts,
//! so the load balancer stops routing here; requests keep being served through the drain
//! delay; requests already in flight finish; and the process exits 0, logging each step.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{client, eventually, fresh_connection_client, send_signal, spawn_hello};

const ADMIN_TOKEN: &str = "hello-admin-token";

const DRAIN_DELAY: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_secs(20);
/// Concurrent `GET /slow/3000` requests in flight when SIGTERM arrives.
const SLOW_REQUESTS: usize = 4;
/// Tasks looping on `GET /hello` through the shutdown.
const HELLO_LOOPS: usize = 2;

/// The value of the `http_server_active_requests` gauge in a Prometheus text body.
fn active_requests(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with("http_server_active_requests"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// What one `GET /hello` of a loop saw.
struct HelloOutcome {
    started: Instant,
    result: Result<(u16, String), String>,
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp such as
/// `2026-11-28T14:38:06.381368Z`.
fn epoch_seconds(ts: &str) -> f64 {
    let (date, time) = ts
        .split_once('T')
        .and_then(|(d, t)| Some((d, t.strip_suffix('Z')?)))
        .unwrap_or_else(|| panic!("not an RFC 3339 UTC timestamp: {ts:?}"));
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_turns_readiness_down_drains_and_finishes_inflight_requests() {
    let mut hello = spawn_hello(&[
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "2s"),
        ("MS__SERVER__SHUTDOWN__GRACE", "20s"),
        // To read the lifecycle check's state, which only the admin sees.
        ("MS__ADMIN__TOKEN", ADMIN_TOKEN),
    ])
    .await;
    let http = client();

    // Ready before anything else.
    let ready = http.get(hello.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "readiness before shutdown");

    // In-flight load: slow requests first, each on its own connection.
    let slow: Vec<_> = (0..SLOW_REQUESTS)
        .map(|_| {
            let http = http.clone();
            let url = hello.url("/slow/3000");
            tokio::spawn(async move {
                let result = async {
                    let res = http.get(&url).send().await.map_err(|e| format!("{e:?}"))?;
                    let status = res.status().as_u16();
                    let body = res.text().await.map_err(|e| format!("{e:?}"))?;
                    Ok::<_, String>((status, body))
                }
                .await;
                (result, Instant::now())
            })
        })
        .collect();

    // Wait until the server itself counts them as in flight.
    let metrics_url = hello.url("/metrics");
    eventually(
        Duration::from_secs(30),
        "the slow requests to be in flight (http_server_active_requests)",
        || {
            let http = http.clone();
            let url = metrics_url.clone();
            async move {
                let body = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                match active_requests(&body) {
                    Some(n) if n >= SLOW_REQUESTS as f64 => Ok(()),
                    other => Err(format!("http_server_active_requests = {other:?}")),
                }
            }
        },
    )
    .await;

    // Plus a steady trickle of quick requests, each on a fresh connection.
    let stop = Arc::new(AtomicBool::new(false));
    let hello_loops: Vec<_> = (0..HELLO_LOOPS)
        .map(|_| {
            let http = fresh_connection_client();
            let url = hello.url("/hello");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = async {
                        let res = http.get(&url).send().await.map_err(|e| format!("{e:?}"))?;
                        let status = res.status().as_u16();
                        let body = res.text().await.map_err(|e| format!("{e:?}"))?;
                        Ok((status, body))
                    }
                    .await;
                    let failed = result.is_err();
                    outcomes.push(HelloOutcome { started, result });
                    if failed {
                        // The listener is closed: nothing more to learn here.
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcomes
            })
        })
        .collect();

    let sigterm_at = Instant::now();
    send_signal(hello.pid, "TERM");

    // Readiness goes DOWN while the listener still accepts: each poll is a fresh connection,
    // so a 503 answer proves the listener was open. A refused connection means the listener
    // closed before readiness was ever seen DOWN.
    let probe = fresh_connection_client();
    let ready_url = hello.url("/health/ready");
    let (status, body) = eventually(
        Duration::from_secs(15),
        "/health/ready to answer 503 after SIGTERM",
        || {
            let probe = probe.clone();
            let url = ready_url.clone();
            async move {
                match probe.get(&url).bearer_auth(ADMIN_TOKEN).send().await {
                    Ok(res) if res.status() == 200 => Err("still 200".to_owned()),
                    Ok(res) => {
                        let status = res.status().as_u16();
                        Ok((Ok(status), res.text().await.unwrap_or_default()))
                    }
                    Err(e) => Ok((Err(format!("{e:?}")), String::new())),
                }
            }
        },
    )
    .await;
    let ready_down_seen = sigterm_at.elapsed();
    assert_eq!(
        status,
        Ok(503),
        "readiness must answer 503 before the listener closes (drain delay {DRAIN_DELAY:?}); \
         after {ready_down_seen:?}; body: {body}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("readiness body is JSON");
    assert_eq!(body["status"], "DOWN", "{body}");
    let lifecycle = body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "lifecycle"))
        .unwrap_or_else(|| panic!("no lifecycle check in {body}"));
    assert_eq!(lifecycle["status"], "DOWN", "{body}");
    assert_eq!(lifecycle["data"]["state"], "stopping", "{body}");
    let ready_down_at = Instant::now();

    // The process exits 0 well within drain delay + grace.
    let deadline = DRAIN_DELAY + GRACE + Duration::from_secs(30);
    let exit = hello.wait_exit(deadline).await;
    let exited_after = sigterm_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert!(
        exit.success(),
        "hello exited with {exit} after SIGTERM\nstdout:\n{}\nstderr:\n{}",
        hello.stdout_text(),
        hello.stderr_text()
    );
    assert!(
        exited_after >= DRAIN_DELAY,
        "hello exited {exited_after:?} after SIGTERM, before the drain delay {DRAIN_DELAY:?} ended"
    );

    // Every slow request accepted before SIGTERM completed, with 200, after SIGTERM.
    for (i, task) in slow.into_iter().enumerate() {
        let (result, finished) = task.await.unwrap();
        let (status, body) =
            result.unwrap_or_else(|e| panic!("slow request {i} failed during shutdown: {e}"));
        assert_eq!(status, 200, "slow request {i}: {body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({ "slept_ms": 3000 }),
            "slow request {i}"
        );
        assert!(
            finished > sigterm_at,
            "slow request {i} finished before SIGTERM: it was not in flight at shutdown"
        );
    }

    // The quick requests: every answer was a 200; none failed before SIGTERM; some were
    // served during the drain delay, after readiness was already DOWN.
    let mut served_while_draining = 0;
    for task in hello_loops {
        for o in task.await.unwrap() {
            match &o.result {
                Ok((status, body)) => {
                    assert_eq!(*status, 200, "GET /hello during shutdown: {body}");
                    assert_eq!(body, r#"{"message":"hello, world"}"#);
                    if o.started > ready_down_at {
                        served_while_draining += 1;
                    }
                }
                Err(e) => assert!(
                    o.started > sigterm_at,
                    "GET /hello failed before SIGTERM was sent: {e}"
                ),
            }
        }
    }
    assert!(
        served_while_draining > 0,
        "no GET /hello was served after readiness went DOWN: the listener must keep \
         accepting for the drain delay ({DRAIN_DELAY:?})"
    );

    // The log tells the story, in order.
    let lines = hello.stdout_lines();
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str, from: usize| -> (usize, &serde_json::Value) {
        logs.iter()
            .enumerate()
            .skip(from)
            .find(|(_, v)| v["message"] == message)
            .unwrap_or_else(|| {
                panic!(
                    "no {message:?} log line after line {from}; stdout:\n{}",
                    lines.join("\n")
                )
            })
    };
    let (i, signal) = find("shutdown signal received", 0);
    assert_eq!(signal["signal"], "SIGTERM", "{signal}");
    let (i, draining) = find("shutdown: readiness is DOWN, draining", i + 1);
    assert_eq!(draining["drain_delay"], "2s", "{draining}");
    let (i, closed) = find(
        "shutdown: listener closed, finishing in-flight requests",
        i + 1,
    );
    assert_eq!(closed["grace"], "20s", "{closed}");
    let (_, complete) = find("shutdown complete", i + 1);
    assert_eq!(complete["level"], "INFO", "{complete}");
    let drained_for = epoch_seconds(closed["timestamp"].as_str().unwrap())
        - epoch_seconds(draining["timestamp"].as_str().unwrap());
    assert!(
        drained_for >= DRAIN_DELAY.as_secs_f64() - 0.001,
        "the listener closed {drained_for}s after readiness went DOWN, before the drain \
         delay {DRAIN_DELAY:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("grace period expired")),
        "the grace period must not expire for 3s requests:\n{}",
        lines.join("\n")
    );
}
