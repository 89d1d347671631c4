//! `/metrics` in OpenMetrics when asked through `Accept`: a valid exposition (checked by the
//! reference parser, Python `prometheus_client`) whose request duration histogram carries
//! the trace id of a sampled request as an exemplar.

mod support;

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_carries_trace_exemplars_and_parses() {
    let python = support::require_tool("python3", "apt-get install -y python3");
    let probe = std::process::Command::new(&python)
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "Python prometheus_client is required: python3 -m pip install prometheus-client"
    );

    let router = Router::new().route("/hello", get(|| async { "hi" }));
    // One process, one tracer provider: this file is its own test binary.
    let svc = support::start("tracing: { sampler: { type: always_on } }", router).await;
    let c = support::client();
    let res = c
        .get(format!("{}/hello", svc.url))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Plain scrapes stay in text format 0.0.4, without exemplars.
    let plain = c.get(format!("{}/metrics", svc.url)).send().await.unwrap();
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("version=0.0.4")
    );
    let plain = plain.text().await.unwrap();
    assert!(!plain.contains("# EOF") && !plain.contains("trace_id"));

    let res = c
        .get(format!("{}/metrics", svc.url))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = res.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    let bucket_with_exemplar = body
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_bucket{")
                && l.contains("http_route=\"/hello\"")
                && l.contains(" # {trace_id=")
        })
        .unwrap_or_else(|| panic!("no exemplar on a /hello bucket:\n{body}"));
    assert!(
        bucket_with_exemplar.contains(&format!("# {{trace_id=\"{TRACE_ID}\"}}")),
        "{bucket_with_exemplar}"
    );
    // Counters follow OpenMetrics naming: TYPE without _total, samples with it.
    assert!(
        body.contains("# TYPE process_cpu_seconds counter"),
        "{body}"
    );
    assert!(body.contains("\nprocess_cpu_seconds_total "), "{body}");

    // The reference parser accepts the whole exposition and sees the exemplar.
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = sys.stdin.read()
found = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        if s.exemplar is not None:
            found.append(s.exemplar.labels["trace_id"])
print(",".join(sorted(set(found))))
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), TRACE_ID);
    svc.running.shutdown().await.unwrap();
}
