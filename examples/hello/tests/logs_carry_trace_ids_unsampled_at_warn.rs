//! Log correlation does not depend on sampling or on the log level: at level `warn`, with a
//! sampler that records nothing, an error logged while handling a request still carries the
//! caller's trace id, a span id of its own, and the caller's span id as `parent_span_id`.

mod support;

use std::time::Duration;

use support::{client, eventually, spawn_hello};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_log_trace_ids_at_warn_level() {
    // `ms_chassis::service=info` keeps the "listening" line the spawn helper waits for.
    let hello = spawn_hello(&[
        ("MS__LOGGING__LEVEL", "warn,ms_chassis::service=info"),
        ("MS__TRACING__SAMPLER__TYPE", "always_off"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
    ])
    .await;
    let res = client()
        .get(hello.url("/demo/panic"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-00"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);

    let line = eventually(Duration::from_secs(30), "the panic log line", || {
        let lines = hello.stdout_lines();
        async move {
            lines
                .into_iter()
                .find(|l| l.contains("request handler panicked"))
                .ok_or_else(|| "not yet".to_owned())
        }
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "ERROR", "{line}");
    assert_eq!(v["trace_id"], TRACE, "{line}");
    assert_eq!(v["parent_span_id"], PARENT, "{line}");
    let span_id = v["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16, "{line}");
    assert_ne!(span_id, PARENT, "{line}");
    // Nothing below warn from the request path.
    assert!(
        hello
            .stdout_lines()
            .iter()
            .all(|l| !l.contains("\"level\":\"INFO\"") || l.contains("ms_chassis::service")),
        "{}",
        hello.stdout_text()
    );
}
