//! `ms-chassis config check` in an environment holding variables that are not valid UTF-8:
//! an unrelated one is ignored (the check passes), an `MS__*` one is a problem that names
//! the variable and not its value, with exit 1 and never a panic (exit 101).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

/// Latin-1 bytes around a marker that must never be printed.
const NOT_UTF8: &[u8] = b"caf\xe9-do-not-print";

fn check(vars: &[(&[u8], &[u8])]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ms-chassis"));
    cmd.args(["config", "check", "--print"])
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    let out = cmd.output().unwrap();
    let shown = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, shown)
}

#[test]
fn an_unrelated_variable_that_is_not_utf8_is_ignored() {
    let (out, shown) = check(&[(b"LEGACY", NOT_UTF8), (b"LEGACY_\xff", b"1")]);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("the configuration is valid"), "{shown}");
}

#[test]
fn an_ms_variable_that_is_not_utf8_is_a_problem_naming_it() {
    let (out, shown) = check(&[(b"MS__SERVER__HOST", NOT_UTF8), (b"UNRELATED", NOT_UTF8)]);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "environment variable MS__SERVER__HOST: server.host: expected UTF-8 text, but its \
             value is not (the value is not shown); set it as UTF-8 or unset it",
            "ms-chassis: the configuration has 1 problem",
        ],
        "{shown}"
    );
    assert!(out.stdout.is_empty(), "{shown}");
}
