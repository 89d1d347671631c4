//! A user story: `hello` is deployed next to a variable that is not valid UTF-8 (a
//! Latin-1 value left by an old script, a binary token). A variable the chassis does not
//! read must not matter: the service starts. An `MS_*` variable that is not UTF-8 is a
//! config error that names the variable and never shows its value: a clean non-zero
//! exit, never a panic (exit 101).

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

/// How long startup (or failing at it) may take on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Bytes that are not UTF-8 (Latin-1 `café`), around a marker that must never be printed.
const NOT_UTF8: &[u8] = b"caf\xe9-do-not-print";

/// `hello` on port 0 with the variables `extra` (raw bytes) added, in an empty directory.
fn hello(extra: &[(&[u8], &[u8])], cwd: &std::path::Path) -> tokio::process::Command {
    let mut cmd = support::hello_command(&[("MS__SERVER__PORT", "0")], cwd);
    for (k, v) in extra {
        cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    cmd
}

#[tokio::test]
async fn an_unrelated_variable_that_is_not_utf8_is_ignored() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = hello(
        &[
            (b"LEGACY_GREETING", NOT_UTF8),
            (b"LEGACY_\xff_NAME", b"x"),
            // A path-valued MS_ variable is read as a path, which need not be UTF-8.
            (b"MS_KEY_FILE", b"/nonexistent/k\xe9y.key"),
        ],
        cwd.path(),
    )
    .spawn()
    .expect("spawn hello");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    let addr = loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let line = tokio::time::timeout(left, lines.next_line())
            .await
            .expect("hello logs \"listening\" within the deadline")
            .expect("read hello's stdout");
        let Some(line) = line else {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "hello exited ({}) before listening\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            break v["addr"].as_str().expect("an addr field").to_owned();
        }
    };
    let res = support::client()
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .expect("GET /hello");
    assert_eq!(res.status(), 200);
    let pid = child.id().expect("running");
    support::send_signal(pid, "TERM");
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("hello exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Runs `hello` with `extra` to its exit and returns its exit code and stderr.
async fn fails_at_startup(extra: &[(&[u8], &[u8])]) -> (i32, String) {
    let cwd = tempfile::tempdir().unwrap();
    let child = hello(extra, cwd.path()).spawn().expect("spawn hello");
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("hello exits within the deadline")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().expect("an exit code, not a signal");
    (code, stderr)
}

#[tokio::test]
async fn an_ms_variable_that_is_not_utf8_is_a_config_error_naming_it() {
    let (code, stderr) =
        fails_at_startup(&[(b"MS__APP__GREETING", NOT_UTF8), (b"UNRELATED", NOT_UTF8)]).await;
    assert!(code != 0 && code != 101, "exit {code}\n{stderr}");
    assert!(
        stderr.starts_with("Error: invalid configuration:\n"),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l
            == "environment variable MS__APP__GREETING: app.greeting: expected UTF-8 text, \
                but its value is not (the value is not shown); set it as UTF-8 or unset it"),
        "{stderr}"
    );
    for word in ["do-not-print", "caf", "UNRELATED", "panicked"] {
        assert!(!stderr.contains(word), "stderr shows {word:?}\n{stderr}");
    }

    // MS_PROFILE is read as text too; a name that is not UTF-8 is named as well as it can be.
    let (code, stderr) = fails_at_startup(&[(b"MS_PROFILE", NOT_UTF8)]).await;
    assert!(code != 0 && code != 101, "exit {code}\n{stderr}");
    assert!(
        stderr.contains("environment variable MS_PROFILE: expected UTF-8 text"),
        "{stderr}"
    );
    let (code, stderr) = fails_at_startup(&[(b"MS__APP__\xff", b"1")]).await;
    assert!(code != 0 && code != 101, "exit {code}\n{stderr}");
    assert!(
        stderr.contains(
            "environment variable MS__APP__\u{FFFD}: expected UTF-8 text, but its name is not"
        ),
        "{stderr}"
    );
}
