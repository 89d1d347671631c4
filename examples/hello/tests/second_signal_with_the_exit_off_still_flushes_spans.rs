//! `ServeOptions::exit_on_second_signal(false)`: a second SIGTERM during the graceful
//! shutdown is logged and ignored, so the drain ends and the spans are flushed (the default
//! exits at once with 130 and skips the flush). `hello` sets it from
//! `app.exit_on_second_signal`; a real OTLP receiver decodes what arrives.

mod support;

use std::time::Duration;

use support::otlp::{self, Transport};
use support::{eventually, send_signal, spawn_hello};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_with_the_exit_off_still_drains_and_flushes_spans() {
    let receiver = otlp::start(Transport::Grpc).await;
    let mut hello = spawn_hello(&[
        ("MS__TRACING__EXPORTER", "otlp"),
        ("MS__TRACING__PROTOCOL", "grpc"),
        ("MS__TRACING__ENDPOINT", receiver.endpoint.as_str()),
        ("MS__TRACING__SAMPLER__TYPE", "always_on"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "2s"),
        ("MS__APP__EXIT_ON_SECOND_SIGNAL", "false"),
    ])
    .await;
    let res = support::client()
        .get(hello.url("/hello"))
        .send()
        .await
        .expect("GET /hello");
    assert_eq!(res.status(), 200);

    send_signal(hello.pid, "TERM");
    eventually(Duration::from_secs(20), "the drain to begin", || async {
        match hello.stdout_text().contains("readiness is DOWN, draining") {
            true => Ok(()),
            false => Err(hello.stdout_text()),
        }
    })
    .await;
    send_signal(hello.pid, "TERM");
    let status = hello.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "a clean exit, not 130: {status:?}");
    let out = hello.stdout_text();
    assert!(
        out.contains("ignored (exit_on_second_signal is off)"),
        "{out}"
    );
    assert!(out.contains("shutdown complete"), "{out}");
    // The span of the request made before the signals was flushed at the end.
    receiver
        .wait_for(Duration::from_secs(10), "the GET /hello span", |spans| {
            spans
                .iter()
                .find(|s| s.name() == "GET /hello")
                .map(|_| ())
                .ok_or_else(|| "no GET /hello span".to_owned())
        })
        .await;
}
