//! Hot reload of a real `hello` process whose config file (`MS_CONFIG_FILE`) is edited
//! while it runs: a new log level takes effect without a restart, `app.greeting` reaches the
//! `/hello` handler through its subscription, a new sampler decides the next traces, a bad
//! edit is rejected with the old config kept, a new port is reported as needing a restart,
//! a client that cannot take its new settings is logged as failed rather than applied, and
//! a burst of edits is coalesced by one watcher without duplicating log lines or leaking
//! threads.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{Hello, client, eventually, get_text, spawn_hello_as_configured};

const SPANS_DEADLINE: Duration = Duration::from_secs(30);

/// How long a file edit may take to be reloaded on a busy machine.
const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        Self { _dir: dir, path }
    }

    /// Replaces the file in one step, as editors that save by rename do.
    fn replace(&self, text: &str) {
        let tmp = self.path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// A config with a loopback management port (for `/metrics` and the admin endpoints).
fn config(level: &str, greeting: &str) -> String {
    format!(
        "server:\n  port: 0\n  management: {{ port: 0 }}\n  shutdown: {{ drain_delay: 0s }}\n\
         logging: {{ level: \"{level}\" }}\napp: {{ greeting: \"{greeting}\" }}\n"
    )
}

async fn start(file: &ConfigFile) -> Hello {
    spawn_hello_as_configured(&[("MS_CONFIG_FILE", file.path())]).await
}

/// `http://127.0.0.1:<management port>` from the "listening" line.
fn management(hello: &Hello) -> String {
    let port = hello
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["management"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no management address:\n{}", hello.stdout_text()));
    format!("http://{port}")
}

async fn greeting(hello: &Hello) -> String {
    let body = get_text(&hello.url("/hello")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    v["message"].as_str().unwrap().to_owned()
}

/// A sample of the management port's `/metrics`.
async fn metric(base: &str, sample: &str) -> f64 {
    let text = get_text(&format!("{base}/metrics")).await;
    let prefix = format!("{sample} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

const SUCCESS: &str = "ms_chassis_config_reloads_total{result=\"success\"}";
const ERROR: &str = "ms_chassis_config_reloads_total{result=\"error\"}";

/// The parsed stdout lines whose `message` is `message`.
fn lines_with(hello: &Hello, message: &str) -> Vec<Value> {
    hello
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

fn assert_still_running(hello: &mut Hello) {
    assert!(
        hello.try_exit_status().is_none(),
        "hello exited\n{}\n{}",
        hello.stdout_text(),
        hello.stderr_text()
    );
    assert_eq!(
        lines_with(hello, "listening").len(),
        1,
        "hello restarted:\n{}",
        hello.stdout_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_level_in_the_file_takes_effect_without_a_restart() {
    // `ms_chassis::service=info` keeps the "listening" line the spawn helper waits for.
    let file = ConfigFile::new(&config("warn,ms_chassis::service=info", "hello"));
    let mut hello = start(&file).await;

    get_text(&hello.url("/hello/quiet-before")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !hello.stdout_text().contains("quiet-before"),
        "an info line was logged at warn:\n{}",
        hello.stdout_text()
    );

    file.replace(&config("info", "hello"));
    let mut n = 0;
    eventually(RELOAD_DEADLINE, "info lines after the reload", || {
        n += 1;
        let name = format!("loud-{n}");
        let url = hello.url(&format!("/hello/{name}"));
        let hello = &hello;
        async move {
            get_text(&url).await;
            // The line is written before the response; give the reader a moment.
            tokio::time::sleep(Duration::from_millis(50)).await;
            lines_with(hello, "greeting someone by name")
                .into_iter()
                .find(|v| v["name"] == name.as_str())
                .map(drop)
                .ok_or_else(|| format!("no line for {name}"))
        }
    })
    .await;

    let reloaded = lines_with(&hello, "config reloaded");
    assert_eq!(reloaded.len(), 1, "{}", hello.stdout_text());
    assert_eq!(reloaded[0]["trigger"], "file");
    assert_eq!(reloaded[0]["changed"], "logging.level");
    assert_eq!(reloaded[0]["applied"], "logging.level");
    assert_eq!(reloaded[0]["restart_required"], "");

    // The access log is live too.
    assert!(lines_with(&hello, "request completed").is_empty());
    file.replace(&config("info", "hello").replacen("\" }", "\", access: true }", 1));
    eventually(RELOAD_DEADLINE, "an access log line", || async {
        get_text(&hello.url("/hello")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        lines_with(&hello, "request completed")
            .into_iter()
            .find(|v| v["route"] == "/hello")
            .map(drop)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_still_running(&mut hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_keeps_winning_over_the_file_and_the_report_says_so() {
    let file = ConfigFile::new(&config("info", "hello"));
    let mut hello =
        spawn_hello_as_configured(&[("MS_CONFIG_FILE", file.path()), ("RUST_LOG", "info")]).await;
    file.replace(&config("error", "hello"));
    let line = eventually(RELOAD_DEADLINE, "the reload", || async {
        lines_with(&hello, "config reloaded")
            .into_iter()
            .next()
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(line["changed"], "logging.level", "{line}");
    assert_eq!(line["applied"], "", "{line}");
    assert_eq!(line["overridden"], "logging.level", "{line}");
    // Still at RUST_LOG's level.
    get_text(&hello.url("/hello/still-info")).await;
    eventually(Duration::from_secs(10), "an info line", || async {
        hello
            .stdout_text()
            .contains("still-info")
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_still_running(&mut hello);
}

/// Spans exported on stdout (`tracing.exporter: stdout`) for this trace id.
fn spans_of(hello: &Hello, trace_id: &str) -> usize {
    hello
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "ms_chassis::span" && v["trace_id"] == trace_id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sampler_in_the_file_decides_the_next_traces() {
    let sampler = |kind: &str| {
        format!(
            "{}tracing: {{ exporter: stdout, sampler: {{ type: {kind} }} }}\n",
            config("info", "hello")
        )
    };
    let file = ConfigFile::new(&sampler("always_off"));
    let mut hello = start(&file).await;
    let traced = |trace: String, path: &str| {
        client()
            .get(hello.url(path))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
    };
    let before = "4bf92f3577b34da6a3ce929d0e0e4700".to_owned();
    assert_eq!(
        traced(before.clone(), "/hello/before")
            .await
            .unwrap()
            .status(),
        200
    );

    file.replace(&sampler("always_on"));
    let mut n = 0u32;
    let sampled = eventually(SPANS_DEADLINE, "a sampled span", || {
        n += 1;
        let trace = format!("4bf92f3577b34da6a3ce929d0e{n:06x}");
        let request = traced(trace.clone(), "/hello/after");
        let hello = &hello;
        async move {
            request.await.map_err(|e| e.to_string())?;
            // The batch exporter writes within its delay; look for a while.
            for _ in 0..20 {
                if spans_of(hello, &trace) > 0 {
                    return Ok(trace);
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Err(format!("no span for {trace}"))
        }
    })
    .await;
    // Spans are exported in order: had the first request been sampled, it would be out.
    assert_eq!(spans_of(&hello, &before), 0, "{}", hello.stdout_text());
    assert!(spans_of(&hello, &sampled) > 0);
    let reloaded = lines_with(&hello, "config reloaded");
    assert_eq!(
        reloaded[0]["applied"], "tracing.sampler.type",
        "{}",
        reloaded[0]
    );
    assert_still_running(&mut hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_greeting_follows_the_file_and_a_bad_edit_keeps_the_old_config() {
    let file = ConfigFile::new(&config("info", "hola"));
    let mut hello = start(&file).await;
    let admin = management(&hello);
    assert_eq!(greeting(&hello).await, "hola, world");

    file.replace(&config("info", "adios"));
    eventually(RELOAD_DEADLINE, "the new greeting", || async {
        let g = greeting(&hello).await;
        (g == "adios, world").then_some(()).ok_or(g)
    })
    .await;

    // Invalid for the chassis: rejected whole, so the new greeting is not applied either.
    file.replace(&config("loud", "nope"));
    let error = eventually(RELOAD_DEADLINE, "the reload error", || async {
        lines_with(&hello, "config reload failed; keeping the current config")
            .into_iter()
            .next()
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(error["level"], "ERROR", "{error}");
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}:5: logging.level", file.path())),
        "{error}"
    );
    assert_eq!(metric(&admin, ERROR).await, 1.0);
    assert_eq!(greeting(&hello).await, "adios, world");

    // Invalid for the subscriber: hello reads `app` as its own type, which wants a string.
    file.replace(&config("info", "hola").replace("\"hola\"", "[1, 2]"));
    eventually(RELOAD_DEADLINE, "the second reload error", || async {
        let errors = lines_with(&hello, "config reload failed; keeping the current config");
        match errors.get(1) {
            Some(e) if e["error"].as_str().unwrap().contains("app.greeting") => Ok(()),
            Some(e) => Err(format!("unexpected error {e}")),
            None => Err("not yet".to_owned()),
        }
    })
    .await;
    assert_eq!(metric(&admin, ERROR).await, 2.0);
    assert_eq!(greeting(&hello).await, "adios, world");

    // Fixed: applied again.
    file.replace(&config("info", "otra vez"));
    eventually(RELOAD_DEADLINE, "the fixed greeting", || async {
        let g = greeting(&hello).await;
        (g == "otra vez, world").then_some(()).ok_or(g)
    })
    .await;
    assert_eq!(metric(&admin, SUCCESS).await, 2.0);
    assert_eq!(metric(&admin, ERROR).await, 2.0);
    assert_still_running(&mut hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_port_is_reported_as_needing_a_restart() {
    let file = ConfigFile::new(&config("info", "hello"));
    let mut hello = start(&file).await;
    let admin = management(&hello);

    file.replace(
        &config("info", "hello").replace("port: 0\n  management", "port: 1\n  management"),
    );
    let line = eventually(RELOAD_DEADLINE, "the reload", || async {
        lines_with(
            &hello,
            "config reloaded; some settings take effect only after a restart",
        )
        .into_iter()
        .next()
        .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["changed"], "server.port", "{line}");
    assert_eq!(line["applied"], "", "{line}");
    assert_eq!(line["restart_required"], "server.port", "{line}");

    // Still serving where it was; and still saying so on request.
    assert_eq!(greeting(&hello).await, "hello, world");
    let res = client()
        .post(format!("{admin}/admin/config/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["trigger"], "endpoint", "{report}");
    assert_eq!(report["changed"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["restart_required"],
        serde_json::json!(["server.port"]),
        "{report}"
    );
    assert_still_running(&mut hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rapid_edits_reload_a_few_times_with_one_watcher_and_no_duplicate_lines() {
    let file = ConfigFile::new(&config("info", "g0"));
    let mut hello = start(&file).await;
    let admin = management(&hello);
    assert_eq!(greeting(&hello).await, "g0, world");
    let threads_before = metric(&admin, "process_threads").await;

    // In place, as fast as we can: every intermediate state is a valid file.
    for i in 1..=20 {
        std::fs::write(&file.path, config("info", &format!("g{i}"))).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eventually(RELOAD_DEADLINE, "the last greeting", || async {
        let g = greeting(&hello).await;
        (g == "g20, world").then_some(()).ok_or(g)
    })
    .await;
    // Let any straggling reload finish before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let reloads = metric(&admin, SUCCESS).await;
    // Usually 1-3; a busy CI machine can stall the writer past the 250 ms debounce a few
    // times, so the bound only asserts that coalescing happened at all.
    assert!(
        (1.0..=10.0).contains(&reloads),
        "the debounce should coalesce 20 edits into a few reloads, got {reloads}"
    );
    assert_eq!(metric(&admin, ERROR).await, 0.0);
    // One log line per reload: no duplicated handlers, no second watcher.
    assert_eq!(
        lines_with(&hello, "config reloaded").len() as f64,
        reloads,
        "{}",
        hello.stdout_text()
    );

    get_text(&hello.url("/hello/once-marker")).await;
    let line = eventually(Duration::from_secs(10), "the marker line", || async {
        let found = hello
            .stdout_lines()
            .into_iter()
            .filter(|l| l.contains("once-marker"))
            .count();
        (found > 0)
            .then_some(found)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = hello
        .stdout_lines()
        .iter()
        .filter(|l| l.contains("once-marker"))
        .count();
    assert_eq!((line, count), (1, 1), "{}", hello.stdout_text());

    // Nothing left running that was not there before: a watcher per reload would add a
    // thread each time. Two more are allowed: tokio's blocking pool, where a reload reads
    // the files, keeps its threads (one, sometimes two) for a few seconds.
    let threads_after = metric(&admin, "process_threads").await;
    assert!(
        threads_after <= threads_before + 2.0,
        "threads grew from {threads_before} to {threads_after}"
    );
    assert_still_running(&mut hello);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_refuses_its_new_settings_is_logged_as_failed_not_applied() {
    // hello builds `clients.downstream` at startup when it is configured. Deleting the block
    // leaves the client without settings to take: it keeps its own, and the reload says so.
    let with_client = format!(
        "{}clients:\n  downstream: {{ url: 'http://127.0.0.1:9/' }}\n",
        config("info", "hello")
    );
    let file = ConfigFile::new(&with_client);
    let mut hello = start(&file).await;
    file.replace(&config("info", "hola"));
    let line = eventually(RELOAD_DEADLINE, "the reload line", || async {
        lines_with(
            &hello,
            "config reloaded, but some parts refused their new settings and keep their \
             previous ones",
        )
        .into_iter()
        .next()
        .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(line["level"], "ERROR", "{line}");
    let failed = line["failed"].as_str().unwrap();
    assert!(
        failed.starts_with("clients.downstream.url: missing: clients.downstream is no longer"),
        "{line}"
    );
    assert!(
        line["changed"]
            .as_str()
            .unwrap()
            .contains("clients.downstream.url"),
        "{line}"
    );
    assert_eq!(line["applied"], "app.greeting", "{line}");
    assert!(
        lines_with(&hello, "config reloaded").is_empty(),
        "{}",
        hello.stdout_text()
    );
    assert_eq!(greeting(&hello).await, "hola, world");
    assert_still_running(&mut hello);
}
