//! The admin endpoints over real sockets: `/admin/info` names the service and the build,
//! `/admin/config` never shows a secret, `/admin/loggers` changes levels (and reverts them),
//! `/admin/config/reload` applies what can change live, reports what cannot and what
//! refused its new settings, and the protection rule holds for every endpoint, `/admin/info`
//! included: a bearer token where one is set, nothing needed on a loopback management port,
//! and off otherwise.

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ms_chassis::axum::Router;
use ms_chassis::config::{ConfigLoader, SecretKey};
use ms_chassis::{RunningService, Service};
use serde_json::{Value, json};
use support::{TEST_BASE, client, eventually};

/// A service started from `loader` (plus [`TEST_BASE`] below it), with an empty router.
async fn start(loader: ConfigLoader, setup: impl FnOnce(&Service)) -> RunningService {
    let svc = Service::builder_from(loader)
        .build()
        .expect("test config is valid");
    setup(&svc);
    svc.start(Router::new()).await.expect("service starts")
}

fn yaml(extra: &str) -> ConfigLoader {
    ConfigLoader::new().yaml(TEST_BASE).yaml(extra)
}

/// Loopback management port, so the protected endpoints need no token.
const LOOPBACK_MANAGEMENT: &str = "server: { management: { host: 127.0.0.1, port: 0 } }";

fn management(s: &RunningService) -> String {
    format!("http://{}", s.management_addr().expect("a management port"))
}

fn main_port(s: &RunningService) -> String {
    format!("http://{}", s.local_addr())
}

/// Asserts a problem+json response with `status` and returns its body.
async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    body
}

async fn get_json(url: &str) -> Value {
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    res.json().await.unwrap()
}

/// The commit `build.rs` should have found, by the same rules.
fn expected_commit() -> String {
    if let Some(c) = option_env!("MS_BUILD_GIT_COMMIT").or(option_env!("GIT_COMMIT"))
        && !c.trim().is_empty()
    {
        return c.trim().to_owned();
    }
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[tokio::test]
async fn info_names_the_service_the_build_and_the_uptime() {
    let before = SystemTime::now() - Duration::from_secs(1);
    let s = start(
        yaml(&format!(
            "{LOOPBACK_MANAGEMENT}\nservice: {{ name: books, version: 1.2.3 }}"
        ))
        .profile("staging"),
        |_| {},
    )
    .await;
    let info = get_json(&format!("{}/admin/info", management(&s))).await;
    assert_eq!(info["service"], "books", "{info}");
    assert_eq!(info["version"], "1.2.3", "{info}");
    assert_eq!(info["chassis_version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert_eq!(info["profile"], "staging", "{info}");
    assert_eq!(info["git_commit"], expected_commit(), "{info}");

    let rustc = info["rustc"].as_str().unwrap();
    let version = rustc.split_whitespace().next().unwrap();
    assert_eq!(version.split('.').count(), 3, "{info}");
    assert!(
        version.split('.').all(|n| n.parse::<u32>().is_ok()),
        "{info}"
    );

    let now = SystemTime::now();
    let built = humantime::parse_rfc3339(info["build_time"].as_str().unwrap()).unwrap();
    assert!(built <= now, "{info}");
    let started = humantime::parse_rfc3339(info["start_time"].as_str().unwrap()).unwrap();
    assert!(started >= before && started <= now, "{info}");

    let uptime = info["uptime_seconds"].as_f64().unwrap();
    assert!(uptime >= 0.0, "{info}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = get_json(&format!("{}/admin/info", management(&s))).await;
    assert!(
        // Rounded to milliseconds.
        later["uptime_seconds"].as_f64().unwrap() >= uptime + 0.199,
        "{info} then {later}"
    );

    // The same facts label the build info gauge.
    let metrics = client()
        .get(format!("{}/metrics", management(&s)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ms_chassis_build_info{"))
        .expect("ms_chassis_build_info");
    assert!(
        line.contains(&format!(
            "git_commit=\"{}\"",
            info["git_commit"].as_str().unwrap()
        )),
        "{line}"
    );
    assert!(line.contains(&format!("rustc=\"{version}\"")), "{line}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn config_shows_the_effective_config_with_every_secret_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.key");
    std::fs::write(&key_file, SecretKey::generate()).unwrap();
    let key = SecretKey::from_file(&key_file).unwrap();
    let db_password = "decrypted-db-password-7731";
    let admin_token = "decrypted-admin-token-9914";
    let db_token = key.encrypt(db_password.as_bytes());
    let admin_enc = key.encrypt(admin_token.as_bytes());
    let s = start(
        yaml(&format!(
            "{LOOPBACK_MANAGEMENT}\n\
             admin: {{ enc_token: {admin_enc} }}\n\
             app:\n  db: {{ user: books, enc_password: {db_token} }}\n  \
             api: {{ password: plain-password-in-yaml, client_secret: plain-secret-5521 }}\n"
        ))
        .key_file(&key_file),
        |svc| {
            // The service itself reads the plaintext.
            let pw: String = svc.config().get("app.db.password").unwrap();
            assert_eq!(pw, db_password);
        },
    )
    .await;
    let res = client()
        .get(format!("{}/admin/config", management(&s)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for secret in [
        db_password,
        admin_token,
        &db_token,
        &admin_enc,
        "plain-password-in-yaml",
        "plain-secret-5521",
        "enc_",
    ] {
        assert!(!text.contains(secret), "{secret:?} shown in {text}");
    }
    let cfg: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg["app"]["db"]["user"], "books", "{cfg}");
    assert_eq!(cfg["app"]["db"]["password"], "<redacted>", "{cfg}");
    assert_eq!(cfg["app"]["api"]["password"], "<redacted>", "{cfg}");
    assert_eq!(cfg["app"]["api"]["client_secret"], "<redacted>", "{cfg}");
    assert_eq!(cfg["admin"]["token"], "<redacted>", "{cfg}");
    // The rest is there: it is the effective tree, defaults included.
    assert_eq!(cfg["server"]["host"], "127.0.0.1", "{cfg}");
    assert_eq!(cfg["logging"]["format"], "json", "{cfg}");
    s.shutdown().await.unwrap();
}

async fn post_loggers(base: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}/admin/loggers"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn loggers_change_a_level_and_revert_it_after_the_duration() {
    let s = start(yaml(LOOPBACK_MANAGEMENT), |_| {}).await;
    let base = management(&s);
    let target = "admin_endpoints_test_target";
    let view = get_json(&format!("{base}/admin/loggers")).await;
    assert!(view["targets"].get(target).is_none(), "{view}");
    assert!(view["root"]["level"].is_string(), "{view}");
    assert!(!tracing::enabled!(target: "admin_endpoints_test_target", tracing::Level::DEBUG));

    let posted = Instant::now();
    let res = post_loggers(
        &base,
        json!({"target": target, "level": "debug", "duration": "300ms"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["targets"][target]["level"], "debug", "{view}");
    assert_eq!(view["targets"][target]["source"], "admin", "{view}");
    let reverts_at = view["targets"][target]["reverts_at"].as_str().unwrap();
    humantime::parse_rfc3339(reverts_at).unwrap();
    assert!(
        view["filter"]
            .as_str()
            .unwrap()
            .contains(&format!("{target}=debug")),
        "{view}"
    );
    // The level is in force in this process's subscriber.
    assert!(tracing::enabled!(target: "admin_endpoints_test_target", tracing::Level::DEBUG));
    let shown = get_json(&format!("{base}/admin/loggers")).await;
    assert_eq!(shown["targets"][target]["level"], "debug", "{shown}");

    eventually(Duration::from_secs(10), "the override to revert", || {
        let url = format!("{base}/admin/loggers");
        async move {
            let v = get_json(&url).await;
            v["targets"].get(target).is_none().then_some(())
        }
    })
    .await;
    assert!(
        posted.elapsed() >= Duration::from_millis(300),
        "reverted early"
    );
    assert!(!tracing::enabled!(target: "admin_endpoints_test_target", tracing::Level::DEBUG));

    // Without a duration it stays; `level: null` takes it away.
    let res = post_loggers(&base, json!({"target": target, "level": "trace"})).await;
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = get_json(&format!("{base}/admin/loggers")).await;
    assert_eq!(v["targets"][target]["level"], "trace", "{v}");
    assert!(v["targets"][target].get("reverts_at").is_none(), "{v}");
    let res = post_loggers(&base, json!({"target": target, "level": null})).await;
    let v: Value = res.json().await.unwrap();
    assert!(v["targets"].get(target).is_none(), "{v}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn loggers_reject_bad_input_naming_the_field() {
    let s = start(yaml(LOOPBACK_MANAGEMENT), |_| {}).await;
    let base = management(&s);
    for (body, field) in [
        (json!({"target": "x", "level": "loud"}), "level"),
        (json!({"target": "x"}), "level"),
        (json!({"target": "a=b,c", "level": "info"}), "target"),
        (
            json!({"target": "x", "level": "info", "duration": "soon"}),
            "duration",
        ),
        (json!({"target": "x", "level": "info", "lvl": 1}), "lvl"),
    ] {
        let res = post_loggers(&base, body.clone()).await;
        let p = problem(res, 400).await;
        assert_eq!(p["field"], field, "{body} → {p}");
        assert!(p["detail"].as_str().unwrap().contains(field), "{p}");
    }
    let res = client()
        .post(format!("{base}/admin/loggers"))
        .body("not json")
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    s.shutdown().await.unwrap();
}

/// Every protected endpoint, as (method, path).
const PROTECTED: [(&str, &str); 5] = [
    ("GET", "/admin/info"),
    ("GET", "/admin/config"),
    ("GET", "/admin/loggers"),
    ("POST", "/admin/loggers"),
    ("POST", "/admin/config/reload"),
];

async fn call(base: &str, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
    let url = format!("{base}{path}");
    let mut req = match method {
        "GET" => client().get(url),
        _ => client().post(url),
    };
    if path == "/admin/loggers" && method == "POST" {
        req = req.json(&json!({"target": "protection_test", "level": "info"}));
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn with_a_token_every_protected_endpoint_requires_it() {
    let token = "s3cret-admin-token";
    let s = start(yaml(&format!("admin: {{ token: {token} }}")), |_| {}).await;
    let base = main_port(&s);
    for (method, path) in PROTECTED {
        let res = call(&base, method, path, None).await;
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"ms-chassis admin\""),
            "{method} {path}"
        );
        problem(res, 401).await;
        problem(call(&base, method, path, Some("wrong-token")).await, 403).await;
        problem(
            call(&base, method, path, Some("s3cret-admin-token-and-more")).await,
            403,
        )
        .await;
        let res = call(&base, method, path, Some(token)).await;
        assert_eq!(res.status(), 200, "{method} {path}");
        let text = res.text().await.unwrap();
        assert!(
            !text.contains(token),
            "{method} {path} shows the token: {text}"
        );
    }
    // A Basic header is not a bearer token.
    let res = client()
        .get(format!("{base}/admin/config"))
        .basic_auth("admin", Some(token))
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_encrypted_token_is_compared_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.key");
    std::fs::write(&key_file, SecretKey::generate()).unwrap();
    let key = SecretKey::from_file(&key_file).unwrap();
    let enc = key.encrypt(b"plain-admin-token");
    let s = start(
        yaml(&format!("admin: {{ ENC_token: {enc} }}")).key_file(&key_file),
        |_| {},
    )
    .await;
    let base = main_port(&s);
    problem(call(&base, "GET", "/admin/config", Some(&enc)).await, 403).await;
    let res = call(&base, "GET", "/admin/config", Some("plain-admin-token")).await;
    assert_eq!(res.status(), 200);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_loopback_management_port_needs_no_token() {
    let s = start(yaml(LOOPBACK_MANAGEMENT), |_| {}).await;
    let base = management(&s);
    for (method, path) in PROTECTED {
        let res = call(&base, method, path, None).await;
        assert_eq!(res.status(), 200, "{method} {path}");
    }
    // The admin endpoints moved with the other chassis endpoints: the main port has none.
    for path in ["/admin/info", "/admin/config"] {
        problem(
            client()
                .get(format!("{}{path}", main_port(&s)))
                .send()
                .await
                .unwrap(),
            404,
        )
        .await;
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_neither_a_token_nor_a_loopback_management_port_they_are_off() {
    let s = start(yaml(""), |_| {}).await;
    let base = main_port(&s);
    for (method, path) in PROTECTED {
        let p = problem(call(&base, method, path, None).await, 404).await;
        assert!(
            p["detail"].as_str().unwrap().contains("admin.token"),
            "{method} {path}: {p}"
        );
        // A token does not help when none is configured.
        problem(call(&base, method, path, Some("anything")).await, 404).await;
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_management_port_on_a_routable_address_still_needs_the_token() {
    let s = start(
        yaml("server: { management: { host: 0.0.0.0, port: 0 } }"),
        |_| {},
    )
    .await;
    let port = s.management_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    for (method, path) in PROTECTED {
        problem(call(&base, method, path, None).await, 404).await;
    }
    s.shutdown().await.unwrap();

    let s = start(
        yaml("server: { management: { host: 0.0.0.0, port: 0 } }\nadmin: { token: tok-123 }"),
        |_| {},
    )
    .await;
    let port = s.management_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    problem(call(&base, "GET", "/admin/config", None).await, 401).await;
    let res = call(&base, "GET", "/admin/config", Some("tok-123")).await;
    assert_eq!(res.status(), 200);
    s.shutdown().await.unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn reload(base: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/admin/config/reload"))
        .send()
        .await
        .unwrap()
}

async fn reloads_total(base: &str, result: &str) -> u64 {
    let text = support::metrics_text(base).await;
    let prefix = format!("ms_chassis_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn reload_applies_live_settings_rejects_bad_config_and_reports_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let config = |greeting: &str, timeout: &str, concurrency: u32| {
        format!(
            "{TEST_BASE}  management: {{ port: 0 }}\n  limits: {{ concurrency: {concurrency} }}\n\
             health: {{ timeout: {timeout} }}\napp: {{ greeting: {greeting} }}\n"
        )
    };
    write(&file, &config("hi", "1s", 100));
    let svc = Service::builder().file(&file).build().unwrap();
    let greeting = svc.config_watch().live::<String>("app.greeting").unwrap();
    // A dependency that answers in 2s: DOWN under a 1s timeout, UP under 5s.
    svc.health().readiness("slow-dependency", || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        true
    });
    let s = svc.start(Router::new()).await.unwrap();
    let base = management(&s);
    let ready = |base: String| async move {
        client()
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready(base.clone()).await, 503);
    assert_eq!(greeting.get().as_str(), "hi");

    write(&file, &config("hey", "5s", 5));
    let res = reload(&base).await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["result"], "success", "{report}");
    // The file watcher may have got there first; then this reload found nothing new.
    let changed = strings(&report["changed"]);
    let applied = strings(&report["applied"]);
    let all = [
        "app.greeting",
        "health.timeout",
        "server.limits.concurrency",
    ];
    assert!(
        changed.iter().all(|k| all.contains(&k.as_str())),
        "{report}"
    );
    assert!(
        applied
            .iter()
            .all(|k| k == "app.greeting" || k == "health.timeout"),
        "{report}"
    );
    assert_eq!(
        strings(&report["restart_required"]),
        ["server.limits.concurrency"],
        "{report}"
    );
    // Live: the subscriber, the health timeout, and the effective config.
    assert_eq!(greeting.get().as_str(), "hey");
    assert_eq!(ready(base.clone()).await, 200);
    let cfg = get_json(&format!("{base}/admin/config")).await;
    assert_eq!(cfg["app"]["greeting"], "hey", "{cfg}");

    // A config that does not load: rejected, old config kept, problems located.
    let errors_before = reloads_total(&base, "error").await;
    write(
        &file,
        &config("bad", "5s", 5).replace("port: 0\n  shutdown", "port: eighty\n  shutdown"),
    );
    let res = reload(&base).await;
    let p = problem(res, 422).await;
    assert_eq!(p["result"], "error", "{p}");
    let errors = p["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["key"] == "server.port"
            && e["location"]
                .as_str()
                .unwrap()
                .starts_with(&file.display().to_string())),
        "{p}"
    );
    assert!(reloads_total(&base, "error").await > errors_before);
    assert_eq!(greeting.get().as_str(), "hey");
    let cfg = get_json(&format!("{base}/admin/config")).await;
    assert_eq!(cfg["app"]["greeting"], "hey", "{cfg}");

    // A value the subscriber cannot read rejects the reload too.
    write(&file, &config("[1, 2]", "5s", 5));
    let p = problem(reload(&base).await, 422).await;
    assert!(
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "app.greeting"),
        "{p}"
    );
    assert_eq!(greeting.get().as_str(), "hey");

    // Put the started values back: nothing needs a restart any more.
    write(&file, &config("hi", "1s", 100));
    let report: Value = reload(&base).await.json().await.unwrap();
    assert_eq!(report["result"], "success", "{report}");
    assert!(strings(&report["restart_required"]).is_empty(), "{report}");
    assert!(reloads_total(&base, "success").await >= 2);
    s.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_client_that_refuses_its_new_settings_is_reported_as_failed_not_applied() {
    // The service reads the file through a symlink from another directory. The watcher
    // watches the link's directory, so an edit of the target does not reload by itself, and
    // the report read here is that of this test's own reload.
    let (real_dir, link_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = real_dir.path().join("config.yaml");
    let link = link_dir.path().join("config.yaml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let config = |clients: &str| {
        format!("{TEST_BASE}  management: {{ host: 127.0.0.1, port: 0 }}\nclients:\n{clients}")
    };
    write(
        &file,
        &config(
            "  books: { url: 'http://127.0.0.1:9/' }\n  \
             authors: { url: 'http://127.0.0.1:9/', timeout: 2s }\n",
        ),
    );
    let svc = Service::builder().file(&link).build().unwrap();
    let books = svc.client("books").unwrap();
    let authors = svc.client("authors").unwrap();
    let s = svc.start(Router::new()).await.unwrap();
    let base = management(&s);

    // `clients.books` is gone, but the service holds the client: it cannot take settings
    // that are not there, and keeps its own. `clients.authors` changes as asked.
    write(
        &file,
        &config("  authors: { url: 'http://127.0.0.1:9/', timeout: 3s }\n"),
    );
    let res = reload(&base).await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["result"], "success", "{report}");
    let failed = report["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["part"], "clients.books", "{report}");
    assert_eq!(failed[0]["key"], "clients.books.url", "{report}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("no longer in the config"),
        "{report}"
    );
    assert!(
        strings(&report["changed"]).contains(&"clients.books.url".to_owned()),
        "{report}"
    );
    let applied = strings(&report["applied"]);
    assert_eq!(applied, ["clients.authors.timeout"], "{report}");
    assert_eq!(books.config().url.as_deref(), Some("http://127.0.0.1:9/"));
    assert_eq!(authors.config().timeout, Duration::from_secs(3));

    // A reload where every client takes its settings has no `failed` heading.
    write(
        &file,
        &config(
            "  books: { url: 'http://127.0.0.1:9/' }\n  \
             authors: { url: 'http://127.0.0.1:9/', timeout: 4s }\n",
        ),
    );
    let report: Value = reload(&base).await.json().await.unwrap();
    assert!(report.get("failed").is_none(), "{report}");
    assert_eq!(
        strings(&report["applied"]),
        ["clients.authors.timeout", "clients.books.url"],
        "{report}"
    );
    s.shutdown().await.unwrap();
}
