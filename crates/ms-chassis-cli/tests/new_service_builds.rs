//! `ms-chassis new`, as a user runs it: each `--openapi` variant is generated outside the
//! workspace against this checkout (`--chassis-path`), passes its own `cargo test`,
//! `cargo clippy -D warnings` and `cargo fmt --check`, starts on its dev config and answers
//! `/health/ready`, and its `healthcheck` subcommand exits 0 against it and 1 once it is
//! stopped. Bad input writes nothing.
//!
//! The generated crates build into the workspace's target directory, with the workspace's
//! `Cargo.lock`, so the dependencies are not built again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the service may take to log "listening", and to stop, on a busy machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The target directory the workspace builds into, which the generated crates share.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn ms_chassis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ms-chassis"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cargo <args>` in `dir`, asserting success and showing its output otherwise.
fn cargo(dir: &Path, args: &[&str]) {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`cargo {}` failed in {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Generates `name` with `--openapi variant` into a fresh temp dir, and returns both.
fn generate(name: &str, variant: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    let root = workspace();
    let out = ms_chassis(
        &[
            "new",
            name,
            "--path",
            dir.to_str().unwrap(),
            "--openapi",
            variant,
            "--chassis-path",
            root.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "new failed: {}", text(&out.stderr));
    let said = text(&out.stdout);
    for next in ["cd ", "cargo test", "cargo run"] {
        assert!(said.contains(next), "the summary names `{next}`: {said}");
    }
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    (tmp, dir)
}

/// The service's binary, started on its dev config with a free port and JSON logs.
struct Running {
    child: Child,
    port: u16,
}

impl Running {
    fn start(bin: &Path, dir: &Path) -> Self {
        let mut child = Command::new(bin)
            .current_dir(dir)
            .env("MS_PROFILE", "dev")
            .env("MS__SERVER__PORT", "0")
            .env("MS__LOGGING__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let port = loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no \"listening\" line within {DEADLINE:?}: {e}"));
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "listening" {
                let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
                break addr.port();
            }
        };
        // Keep draining stdout so the service never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self { child, port }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success(), "kill -TERM {pid}");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the service did not stop within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "the service exited with {status}");
    }
}

fn ready_status(port: u16) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn generated_service_builds_tests_and_probes_itself(variant: &str) {
    let name = format!("gen-{variant}");
    let (_tmp, dir) = generate(&name, variant);
    cargo(&dir, &["test", "--quiet"]);
    cargo(
        &dir,
        &["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"],
    );
    cargo(&dir, &["fmt", "--check"]);

    let bin = target_dir().join("debug").join(&name);
    let service = Running::start(&bin, &dir);
    assert_eq!(ready_status(service.port), 200);
    let probe = healthcheck(&bin, &dir, service.port);
    assert_eq!(
        probe.status.code(),
        Some(0),
        "healthcheck against a ready service\nstdout:\n{}\nstderr:\n{}",
        text(&probe.stdout),
        text(&probe.stderr)
    );
    assert!(
        text(&probe.stdout).contains("200"),
        "{}",
        text(&probe.stdout)
    );

    let port = service.port;
    service.stop();
    let probe = healthcheck(&bin, &dir, port);
    assert_eq!(probe.status.code(), Some(1), "healthcheck once stopped");
    let why = text(&probe.stderr);
    assert!(
        why.contains(&format!("127.0.0.1:{port}/health/ready")),
        "the failure names the URL: {why}"
    );
}

/// `<bin> healthcheck`, in `dir` on its dev config, against `port`.
fn healthcheck(bin: &Path, dir: &Path, port: u16) -> Output {
    Command::new(bin)
        .arg("healthcheck")
        .current_dir(dir)
        .env("MS_PROFILE", "dev")
        .env("MS__SERVER__PORT", port.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_code_first_service_builds_tests_and_probes_itself() {
    generated_service_builds_tests_and_probes_itself("code");
}

#[test]
fn a_spec_first_service_builds_tests_and_probes_itself() {
    generated_service_builds_tests_and_probes_itself("spec");
}

#[test]
fn a_service_without_a_contract_builds_tests_and_probes_itself() {
    generated_service_builds_tests_and_probes_itself("none");
}

/// Every file under `dir`, for "nothing was written" checks.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn bad_input_is_named_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["new", "Orders"],
            "invalid service name \"Orders\": 'O' is not allowed",
        ),
        (vec!["new", "order_events"], "'_' is not allowed"),
        (vec!["new", "9lives"], "must start with a lowercase letter"),
        (vec!["new", "ms-chassis"], "a crate the service depends on"),
        (
            vec!["new", "orders", "--openapi", "swagger"],
            "invalid value 'swagger' for '--openapi",
        ),
        (
            vec!["new", "orders", "--chassis-path", "/nonexistent"],
            "no crates/ms-chassis/Cargo.toml",
        ),
    ] {
        let out = ms_chassis(&args, tmp.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = text(&out.stderr);
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in:\n{err}"
        );
        assert!(files_under(tmp.path()).is_empty(), "{args:?} wrote files");
    }

    // A directory that holds anything is not generated into, and is left as it was.
    let taken = tmp.path().join("orders");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let out = ms_chassis(&["new", "orders"], tmp.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists and is not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(files_under(tmp.path()), vec![taken.join("notes.txt")]);

    // An empty one is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = ms_chassis(&["new", "orders", "--path", "empty"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(empty.join("Cargo.toml").is_file());
}
