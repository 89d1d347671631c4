//! A real Prometheus server scrapes the service and sees exactly the requests we sent.

mod support;

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::axum::routing::get;
use serde_json::Value;

/// How many GET /hello requests the test sends.
const N: u64 = 7;
const QUERY: &str = r#"http_server_request_duration_seconds_count{http_route="/hello"}"#;

/// Kills and reaps the Prometheus child when dropped, including on panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Prometheus and where to find it.
struct Prometheus {
    child: KillOnDrop,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<no log: {e}>"))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn write_config(dir: &Path, target: SocketAddr) -> PathBuf {
    let path = dir.join("prometheus.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ms-chassis\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    path
}

/// Starts Prometheus on a free loopback port and waits until it reports ready. Retries with
/// a new port if another process took the one we picked.
async fn start_prometheus(bin: &Path, dir: &Path, config: &Path) -> Prometheus {
    let client = support::client();
    for attempt in 1..=5 {
        let port = free_port();
        let data = dir.join(format!("data-{attempt}"));
        let log = dir.join(format!("prometheus-{attempt}.log"));
        let out = File::create(&log).expect("create prometheus log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut prom = Prometheus {
            child: KillOnDrop(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        };

        let deadline = Duration::from_secs(60);
        let started = Instant::now();
        loop {
            if let Some(status) = prom.child.0.try_wait().expect("poll prometheus") {
                let log = prom.log();
                if log.contains("address already in use") {
                    eprintln!("port {port} was taken (attempt {attempt}); retrying");
                    break;
                }
                panic!("prometheus exited early with {status}\n--- log ---\n{log}");
            }
            let ready = client
                .get(format!("{}/-/ready", prom.base))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return prom;
            }
            assert!(
                started.elapsed() < deadline,
                "prometheus not ready after {deadline:?}\n--- log ---\n{}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("could not find a free port for prometheus in 5 attempts");
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant-query result vector, or `None` until the query succeeds with a sample.
async fn query(client: &reqwest::Client, base: &str) -> Option<Vec<Value>> {
    let res = client
        .get(format!(
            "{base}/api/v1/query?query={}",
            percent_encode(QUERY)
        ))
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let body: Value = res.json().await.ok()?;
    if body["status"] != "success" {
        return None;
    }
    match body["data"]["result"].as_array() {
        Some(r) if !r.is_empty() => Some(r.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_request_counts_by_route() {
    let bin = support::require_tool("prometheus", "apt-get install -y prometheus");
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    let svc = support::start("", router).await;
    let client = support::client();
    for _ in 0..N {
        let res = client
            .get(format!("{}/hello", svc.url))
            .send()
            .await
            .expect("GET /hello");
        assert_eq!(res.status(), reqwest::StatusCode::OK);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), svc.running.local_addr());
    let prom = start_prometheus(&bin, dir.path(), &config).await;

    // Poll in a task so that, on timeout, we can still report what Prometheus saw.
    let (poll_client, base) = (client.clone(), prom.base.clone());
    let polled = tokio::spawn(async move {
        support::eventually(
            Duration::from_secs(60),
            "Prometheus to return a sample for the /hello request count",
            || query(&poll_client, &base),
        )
        .await
    })
    .await;
    let result = match polled {
        Ok(r) => r,
        Err(e) => {
            let targets = match client
                .get(format!("{}/api/v1/targets", prom.base))
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => format!("<targets unavailable: {e}>"),
            };
            panic!(
                "{e}\n--- /api/v1/targets ---\n{targets}\n--- prometheus log ---\n{}",
                prom.log()
            );
        }
    };

    assert_eq!(
        result.len(),
        1,
        "expected one series for {QUERY}, got {result:#?}"
    );
    let series = &result[0];
    assert_eq!(series["metric"]["http_request_method"], "GET", "{series:#}");
    assert_eq!(
        series["metric"]["http_response_status_code"], "200",
        "{series:#}"
    );
    assert_eq!(
        series["metric"]["instance"],
        svc.running.local_addr().to_string(),
        "{series:#}"
    );
    let value = series["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("instant value is [ts, \"string\"]: {series:#}"));
    assert_eq!(
        value.parse::<f64>().ok(),
        Some(N as f64),
        "Prometheus should have scraped exactly {N} GET /hello requests: {series:#}"
    );

    drop(prom);
    svc.running.shutdown().await.expect("clean shutdown");
}
