//! The demo's `/downstream` calls another `hello` through the chassis client
//! (`clients.downstream`). While the downstream is up, one trace covers A's server span,
//! A's client span and B's server span. Then the downstream is killed: A stays
//! responsive, every `/downstream` call fails fast with a problem, the breaker opens,
//! `/health` reports the dependency DOWN, and `/metrics` shows all of it.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use support::otlp::{self, Attr, Transport};
use support::{client, eventually, get_text, spawn_hello};

const DEADLINE: Duration = Duration::from_secs(30);

const ADMIN_TOKEN: &str = "hello-admin-token";

#[tokio::test]
async fn a_dead_downstream_opens_the_breaker_and_the_demo_stays_responsive() {
    let receiver = otlp::start(Transport::Grpc).await;
    let tracing_env = |name: &'static str| {
        vec![
            ("MS__SERVICE__NAME", name),
            ("MS__TRACING__EXPORTER", "otlp"),
            ("MS__TRACING__ENDPOINT", receiver.endpoint.as_str()),
            ("MS__TRACING__SAMPLER__TYPE", "always_on"),
            ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
        ]
    };
    let b = spawn_hello(&tracing_env("hello-b")).await;
    let b_url = format!("http://127.0.0.1:{}", b.port);
    let mut a_env = tracing_env("hello-a");
    a_env.extend([
        ("MS__CLIENTS__DOWNSTREAM__URL", b_url.as_str()),
        ("MS__CLIENTS__DOWNSTREAM__TIMEOUT", "1s"),
        ("MS__CLIENTS__DOWNSTREAM__RETRY__INITIAL_BACKOFF", "10ms"),
        (
            "MS__CLIENTS__DOWNSTREAM__BREAKER__CONSECUTIVE_FAILURE_THRESHOLD",
            "3",
        ),
        ("MS__CLIENTS__DOWNSTREAM__BREAKER__WAIT_IN_OPEN", "1h"),
        // The checks' details (the breaker state) are for the admin only.
        ("MS__ADMIN__TOKEN", ADMIN_TOKEN),
    ]);
    let a = spawn_hello(&a_env).await;
    let http = client();

    let res = http.get(a.url("/downstream")).send().await.unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}\nA stdout:\n{}", a.stdout_text());
    assert_eq!(body, r#"{"message":"hello, downstream"}"#);

    let (a_server, a_client, b_server) = receiver
        .wait_for(
            DEADLINE,
            "A's server and client spans and B's server span",
            |spans| {
                let find = |what: &str, f: &dyn Fn(&otlp::ReceivedSpan) -> bool| {
                    spans
                        .iter()
                        .find(|s| f(s))
                        .cloned()
                        .ok_or_else(|| format!("no {what}"))
                };
                let service =
                    |s: &otlp::ReceivedSpan| s.resource_str("service.name").unwrap_or_default();
                Ok((
                    find("A server span", &|s| {
                        service(s) == "hello-a" && s.name() == "GET /downstream"
                    })?,
                    find("A client span", &|s| {
                        service(s) == "hello-a" && s.kind() == SpanKind::Client
                    })?,
                    find("B server span", &|s| {
                        service(s) == "hello-b" && s.name() == "GET /hello/{name}"
                    })?,
                ))
            },
        )
        .await;
    assert_eq!(a_client.trace_id(), a_server.trace_id());
    assert_eq!(
        a_client.parent_span_id(),
        a_server.span_id(),
        "{}",
        a_client.describe()
    );
    assert_eq!(
        b_server.trace_id(),
        a_server.trace_id(),
        "{}",
        b_server.describe()
    );
    assert_eq!(
        b_server.parent_span_id(),
        a_client.span_id(),
        "{}",
        b_server.describe()
    );
    assert_eq!(a_client.name(), "GET");
    assert_eq!(
        a_client.attr("ms_chassis.client"),
        Some(Attr::Str("downstream".into()))
    );
    assert_eq!(
        a_client.attr("http.response.status_code"),
        Some(Attr::Int(200))
    );

    drop(b); // kills the downstream

    // Fails fast and typed; within a few calls the breaker opens and rejects without I/O.
    let mut statuses = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    let opened = loop {
        assert!(
            Instant::now() < give_up,
            "the breaker did not open: {statuses:?}"
        );
        let started = Instant::now();
        let res = http.get(a.url("/downstream")).send().await.unwrap();
        let took = started.elapsed();
        let status = res.status().as_u16();
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(ct, "application/problem+json", "{body}");
        assert!(
            took < Duration::from_secs(10),
            "a dead downstream took {took:?}"
        );
        statuses.push(status);
        // A refused call is a 503 whose detail names no client, address or cause (the
        // breaker state shows in the metrics below and in the log).
        if status == 503 {
            let detail = body["detail"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                detail, "a service this request depends on is unavailable; retry later",
                "{body}"
            );
            break status;
        }
    };
    assert_eq!(opened, 503, "an open breaker is a 503");
    assert!(
        statuses.iter().all(|s| [502, 503].contains(s)),
        "{statuses:?}"
    );

    let hello = http.get(a.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200, "A keeps serving its own routes");

    // A probe result may be up to health.cache_ttl (1s) old: poll until the check is in.
    let health = eventually(DEADLINE, "/health to report downstream DOWN", || {
        let req = http.get(a.url("/health")).bearer_auth(ADMIN_TOKEN).send();
        async move {
            let res = req.await.map_err(|e| e.to_string())?;
            let status = res.status();
            let health: Value = res.json().await.map_err(|e| e.to_string())?;
            let check = health["checks"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "downstream"))
                .cloned()
                .ok_or_else(|| format!("no downstream check: {health}"))?;
            if check["status"] == "DOWN" {
                Ok((status, check, health))
            } else {
                Err(format!("{status}: {health}"))
            }
        }
    })
    .await;
    let (status, check, health) = health;
    assert_eq!(
        status, 200,
        "a shared dependency is informational: {health}"
    );
    assert_eq!(check["data"]["breaker"], "OPEN", "{health}");
    // Without the token: the status only.
    let public: Value = http
        .get(a.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!public.to_string().contains("OPEN"), "{public}");

    let metrics = get_text(&a.url("/metrics")).await;
    assert!(
        metrics.contains(r#"ms_chassis_circuit_breaker_state{name="downstream",state="open"} 1"#),
        "{metrics}"
    );
    let rejected = metrics
        .lines()
        .find(|l| {
            l.starts_with("ms_chassis_circuit_breaker_calls_total") && l.contains("not_permitted")
        })
        .unwrap_or_else(|| panic!("no rejected calls counted:\n{metrics}"));
    assert!(!rejected.ends_with(" 0"), "{rejected}");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("http_client_request_duration_seconds_count")
                && l.contains(r#"client="downstream""#)
                && l.contains(r#"error_type="connect""#)
        ),
        "the failed attempts are measured:\n{metrics}"
    );
}
