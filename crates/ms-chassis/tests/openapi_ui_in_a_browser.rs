//! A real browser uses the Swagger UI: headless Chromium, driven by npm `playwright-core`
//! (tests/browser/swagger_ui.mjs), loads `/docs`, sees the operations, clicks "Try it out"
//! and "Execute" on `GET /books/{id}` and gets the live service's answer on the page; then
//! the same through a reverse proxy that strips `/api` and sends `X-Forwarded-Prefix`, and
//! on a service whose health and metrics moved to a management port.
//! Every request the browser makes is logged, and none may leave 127.0.0.1. Screenshots
//! go to `$CARGO_TARGET_DIR/openapi-ui/` (or `target/openapi-ui/`).

mod openapi_support;
mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ms_chassis::Service;
use ms_chassis::axum::http::{HeaderValue, StatusCode};
use ms_chassis::axum::response::{IntoResponse, Response};
use ms_chassis::axum::{self, Router, body::Body, extract::Request, extract::State};
use serde_json::Value;

use support::TEST_BASE;

const PLAYWRIGHT: &str = "playwright-core@1.65.1";
const EXPECTED: &str = "The live answer for book 7";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where playwright-core is installed: `MS_TEST_NODE_DIR`, else `.node-test` in the
/// workspace (what scripts/test.sh creates). Panics naming the install command.
fn node_dir() -> PathBuf {
    let dir = std::env::var_os("MS_TEST_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".node-test"));
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "npm {PLAYWRIGHT} is required in {}: scripts/test.sh installs it; by hand: \
         npm install --prefix {} {PLAYWRIGHT}",
        dir.display(),
        dir.display()
    );
    dir
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let dir = target.join("openapi-ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the browser script on `page`; returns what it reported.
async fn browse(page: &str, screenshot: &str) -> Value {
    let node = support::require_tool("node", "apt-get install -y nodejs npm");
    let chromium = support::require_tool(
        "chromium",
        "apt-get install -y --no-install-recommends chromium",
    );
    let shot = artifacts().join(screenshot);
    let _ = std::fs::remove_file(&shot);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/swagger_ui.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(node)
            .arg(script)
            .args([page, shot.to_str().unwrap(), EXPECTED])
            .env("NODE_TEST_DIR", node_dir())
            .env("CHROMIUM", chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finishes within 3 minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        report.get("error").is_none(),
        "in the browser: {}",
        report["error"].as_str().unwrap_or_default()
    );
    assert!(
        shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 10_000,
        "screenshot at {}",
        shot.display()
    );
    report
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// What both runs must show: the operations, the live answer, nothing off loopback.
fn assert_used(report: &Value, base: &str) {
    let operations = strings(&report["operations"]);
    for op in ["GET /books", "POST /books", "GET /books/{id}"] {
        assert!(
            operations.iter().any(|o| o == op),
            "{op} not rendered: {operations:?}"
        );
    }
    assert!(
        report["response"].as_str().unwrap().contains(EXPECTED),
        "{report}"
    );
    assert!(
        strings(&report["offsite"]).is_empty(),
        "requests left 127.0.0.1: {}",
        report["offsite"]
    );
    let requests = strings(&report["requests"]);
    for r in &requests {
        let url = r.split_once(' ').unwrap().1;
        assert!(url.starts_with("http://127.0.0.1:"), "{r} in {requests:?}");
    }
    let executed = format!("GET {base}/books/7");
    assert!(
        requests.contains(&executed),
        "no {executed} in {requests:?}"
    );
    assert_eq!(
        report["executed"].as_str().unwrap(),
        format!("{base}/books/7"),
        "{report}"
    );
}

/// A reverse proxy on 127.0.0.1 that serves the service under `/api`: it strips the
/// prefix, adds `X-Forwarded-Prefix: /api`, and logs what it forwarded.
async fn strip_prefix_proxy(upstream: String) -> (String, Arc<Mutex<Vec<String>>>) {
    #[derive(Clone)]
    struct Proxy {
        upstream: String,
        client: reqwest::Client,
        seen: Arc<Mutex<Vec<String>>>,
    }
    async fn forward(State(p): State<Proxy>, req: Request) -> Response {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |x| x.as_str())
            .to_owned();
        let rest = match pq.strip_prefix("/api") {
            Some("") => "/".to_owned(),
            Some(r) if r.starts_with('/') => r.to_owned(),
            Some(r) if r.starts_with('?') => format!("/{r}"),
            _ => return (StatusCode::NOT_FOUND, "the proxy serves /api only").into_response(),
        };
        p.seen
            .lock()
            .unwrap()
            .push(format!("{} {rest}", req.method()));
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
        let mut headers = parts.headers.clone();
        headers.remove("host");
        headers.insert("x-forwarded-prefix", HeaderValue::from_static("/api"));
        let res = p
            .client
            .request(parts.method, format!("{}{rest}", p.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await
            .expect("the upstream answers");
        let mut out = Response::builder().status(res.status());
        for (k, v) in res.headers() {
            if k != "transfer-encoding" && k != "connection" && k != "content-length" {
                out = out.header(k, v);
            }
        }
        out.body(Body::from(res.bytes().await.unwrap())).unwrap()
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        seen: seen.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The code-first bookshop, configured by `TEST_BASE` and `yaml`, started.
async fn bookshop(yaml: &str) -> ms_chassis::RunningService {
    let (router, api) = openapi_support::books();
    let svc = Service::builder()
        .yaml(TEST_BASE)
        .yaml(yaml)
        .build()
        .unwrap();
    svc.with_openapi(api).start(router).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_tries_an_operation_directly_behind_a_proxy_and_beside_a_management_port() {
    node_dir();
    let running = bookshop("service: { name: bookshop, version: 2.5.0 }").await;
    let base = format!("http://{}", running.local_addr());

    // Directly: `/docs` redirects to `docs/`, and "Execute" calls the service.
    let report = browse(&format!("{base}/docs"), "swagger-ui-direct.png").await;
    assert_used(&report, &base);

    // Behind a proxy that strips `/api`: every URL the page uses stays under `/api`.
    let (proxy, seen) = strip_prefix_proxy(base.clone()).await;
    let report = browse(&format!("{proxy}/api/docs"), "swagger-ui-behind-proxy.png").await;
    assert_used(&report, &format!("{proxy}/api"));
    let requests = strings(&report["requests"]);
    assert!(
        requests
            .iter()
            .all(|r| !r.contains(&proxy) || r.contains(&format!("{proxy}/api/"))),
        "a request escaped the prefix: {requests:?}"
    );
    assert!(
        requests.contains(&format!("GET {proxy}/api/openapi.json")),
        "{requests:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"GET /books/7".to_owned()),
        "the proxy forwarded {seen:?}"
    );
    running.shutdown().await.unwrap();

    // With a management port, the docs stay on the main port by default, so "Execute"
    // still reaches the routes.
    let running = bookshop("server: { management: { port: 0 } }").await;
    let base = format!("http://{}", running.local_addr());
    let report = browse(
        &format!("{base}/docs"),
        "swagger-ui-with-management-port.png",
    )
    .await;
    assert_used(&report, &base);
    running.shutdown().await.unwrap();
}
