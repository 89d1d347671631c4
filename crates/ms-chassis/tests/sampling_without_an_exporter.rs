//! With no exporter (`tracing.exporter: none`, the default) the chassis records no spans,
//! but every request still gets a span id of its own and the sampler's decision, which its
//! outgoing calls carry on: callees that do export must see the same decisions as if this
//! service exported too.

mod support;

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use ms_chassis::telemetry::propagation::inject_current_headers;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The `traceparent` the handler would send downstream.
async fn outgoing(url: &str, headers: &[(&str, &str)]) -> String {
    let mut req = support::client().get(format!("{url}/out"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn ids_and_sampling_decisions_flow_on_without_recording() {
    let router = Router::new().route(
        "/out",
        get(|| async {
            let mut h = http::HeaderMap::new();
            inject_current_headers(&mut h);
            h["traceparent"].to_str().unwrap().to_owned()
        }),
    );
    let svc = support::start(
        "tracing: { sampler: { type: parent_ratio, ratio: 1.0 } }",
        router,
    )
    .await;

    let sampled = outgoing(
        &svc.url,
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await;
    let parts: Vec<&str> = sampled.split('-').collect();
    assert_eq!((parts[1], parts[3]), (TRACE, "01"), "{sampled}");
    assert_ne!(
        parts[2], PARENT,
        "the request has a span id of its own: {sampled}"
    );
    assert_eq!(parts[2].len(), 16);

    let unsampled = outgoing(
        &svc.url,
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))],
    )
    .await;
    assert!(
        unsampled.starts_with(&format!("00-{TRACE}-")),
        "{unsampled}"
    );
    assert!(
        unsampled.ends_with("-00"),
        "the caller's decision is followed: {unsampled}"
    );

    let denied = outgoing(&svc.url, &[("b3", &format!("{TRACE}-{PARENT}-0"))]).await;
    assert!(denied.ends_with("-00"), "B3 deny is followed: {denied}");

    let root = outgoing(&svc.url, &[]).await;
    let parts: Vec<&str> = root.split('-').collect();
    assert_ne!(parts[1], TRACE);
    assert_ne!(parts[1], "0".repeat(32), "{root}");
    assert_eq!(
        parts[3], "01",
        "a new trace is sampled at ratio 1.0: {root}"
    );
    svc.running.shutdown().await.unwrap();
}
