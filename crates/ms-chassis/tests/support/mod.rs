//! Shared test support: start a real service on 127.0.0.1 port 0, talk to it over a real
//! socket, and find peer binaries or fail loudly with the command that installs them.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::{RunningService, Service};

pub use ms_chassis::testing::TEST_BASE;

/// `text` written as `api.yaml` in a fresh directory, and that file's path quoted for YAML
/// (`openapi: { file: QUOTED }`); the directory lives as long as the returned guard.
pub fn spec_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.yaml");
    std::fs::write(&file, text).unwrap();
    let quoted = format!("{:?}", file.display().to_string());
    (dir, quoted)
}

/// A service with `spec` as its `openapi.file`, serving `router`, started with
/// `ms_chassis::testing`; the spec's directory lives as long as the returned guard.
pub async fn with_spec(
    spec: &str,
    router: Router,
) -> (tempfile::TempDir, ms_chassis::testing::TestService) {
    let (dir, file) = spec_file(spec);
    let yaml = format!("openapi: {{ file: {file} }}");
    let s = ms_chassis::testing::TestService::start(&yaml, router)
        .await
        .expect("the service starts with its spec");
    (dir, s)
}

/// A service started in this process, with its base URL.
pub struct TestService {
    pub running: RunningService,
    pub url: String,
}

/// Builds a service from `TEST_BASE` plus `yaml`; lets the caller register checks with
/// `setup`, then starts it with `router`.
pub async fn start_with(yaml: &str, router: Router, setup: impl FnOnce(&Service)) -> TestService {
    let svc = ms_chassis::testing::service(yaml).expect("test config is valid");
    setup(&svc);
    let running = svc.start(router).await.expect("service starts");
    let url = format!("http://{}", running.local_addr());
    TestService { running, url }
}

/// [`start_with`] without setup.
pub async fn start(yaml: &str, router: Router) -> TestService {
    start_with(yaml, router, |_| {}).await
}

/// A client with generous timeouts (the machines are busy 2-core boxes).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ms_chassis::testing::CLIENT_TIMEOUT)
        .build()
        .expect("client builds")
}

/// `GET {base}/metrics` as text, asserting a 200.
pub async fn metrics_text(base: &str) -> String {
    let res = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200, "GET /metrics");
    res.text().await.expect("the /metrics body")
}

/// The path of a peer binary, or a panic naming the command that installs it. Tests never
/// skip silently.
pub fn require_tool(bin: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{bin}` is required by this test but is not on PATH; install it with: {install}"
            )
        })
}

/// Polls `f` until it returns `Some`, or panics after `deadline` with `what`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
