//! A user story: an operator makes a mistake in `config.yaml` or in an `MS__*` override.
//! `hello` must refuse to start with a non-zero exit and one line that says where the
//! mistake is (file and line, or the env var), which key, and what was expected — never a
//! panic or a backtrace.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::run_hello_to_exit;

/// How long a run that fails at startup may take on a busy machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `hello` with `envs` and asserts it fails cleanly with a stderr line equal to
/// `expected`.
async fn assert_fails_with(envs: &[(&str, &str)], expected: &str) {
    let (status, stdout, stderr) = run_hello_to_exit(envs, DEADLINE).await;
    let report = format!("status: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !status.success(),
        "hello started despite a bad config\n{report}"
    );
    assert!(
        status.code().is_some_and(|c| c != 0),
        "hello must exit with a non-zero code, not die by a signal\n{report}"
    );
    assert!(
        stderr.lines().any(|l| l == expected),
        "stderr lacks the line\n  {expected}\n{report}"
    );
    assert!(
        stderr.starts_with("Error: invalid configuration:\n"),
        "stderr must open with the error summary\n{report}"
    );
    for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(word), "stderr mentions {word:?}\n{report}");
    }
}

/// A temp dir holding `config.yaml` with `text`; returns the dir (keep it alive) and the
/// file's path.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).expect("write config.yaml");
    (dir, path)
}

/// Runs `hello` with `MS_CONFIG_FILE` pointing at a `config.yaml` holding `text`, and
/// asserts the error line is `<path>:<rest>`.
async fn assert_file_fails_with(text: &str, rest: &str) {
    let (_dir, path) = config_file(text);
    let path = path.to_str().expect("temp paths are UTF-8");
    assert_fails_with(&[("MS_CONFIG_FILE", path)], &format!("{path}:{rest}")).await;
}

#[tokio::test]
async fn explicitly_named_missing_file_is_reported_with_its_path() {
    assert_fails_with(
        &[("MS_CONFIG_FILE", "/nonexistent/config.yaml")],
        "/nonexistent/config.yaml: config file not found (named by MS_CONFIG_FILE)",
    )
    .await;
}

#[tokio::test]
async fn invalid_yaml_names_file_line_and_column() {
    assert_file_fails_with(
        "server:\n  port: 80\n  host: a: b\n",
        "3: invalid YAML: mapping values are not allowed in this context (column 10)",
    )
    .await;
}

#[tokio::test]
async fn wrong_type_names_the_key_and_the_expected_type() {
    assert_file_fails_with(
        "# the access log\nlogging: {access: maybe}\n",
        r#"2: logging.access: expected a boolean, found string "maybe""#,
    )
    .await;
}

#[tokio::test]
async fn unknown_key_suggests_the_nearest_valid_one() {
    assert_file_fails_with(
        "service:\n  name: hello\nserver: {prot: 80}\n",
        "3: server.prot: unknown key in `server`; did you mean `port`? \
         (valid: host, limits, management, port, shutdown)",
    )
    .await;
}

#[tokio::test]
async fn port_out_of_range_names_the_range_and_the_value() {
    assert_file_fails_with(
        "server:\n  port: 70000\n",
        "2: server.port: expected an integer 0-65535, found 70000",
    )
    .await;
}

#[tokio::test]
async fn port_as_a_word_is_quoted_back() {
    assert_file_fails_with(
        "server:\n  port: eighty\n",
        r#"2: server.port: expected an integer 0-65535, found "eighty""#,
    )
    .await;
}

#[tokio::test]
async fn bad_duration_shows_valid_examples() {
    assert_file_fails_with(
        "server:\n  limits:\n    request_timeout: 30 parsecs\n",
        "3: server.limits.request_timeout: expected a duration such as 30s, 250ms or 5m, \
         found \"30 parsecs\"",
    )
    .await;
}

#[tokio::test]
async fn bad_duration_in_a_flow_mapping_names_its_line() {
    assert_file_fails_with(
        "service: {name: hello}\nserver: {limits: {request_timeout: 30 parsecs}}\n",
        "2: server.limits.request_timeout: expected a duration such as 30s, 250ms or 5m, \
         found \"30 parsecs\"",
    )
    .await;
}

#[tokio::test]
async fn bad_env_override_names_the_variable() {
    assert_fails_with(
        &[("MS__SERVER__PORT", "eighty")],
        r#"environment variable MS__SERVER__PORT: server.port: expected an integer 0-65535, found "eighty""#,
    )
    .await;
}

#[tokio::test]
async fn env_override_is_blamed_even_when_a_file_sets_the_key() {
    let (_dir, path) = config_file("server:\n  port: 8080\n");
    assert_fails_with(
        &[
            ("MS_CONFIG_FILE", path.to_str().unwrap()),
            ("MS__SERVER__PORT", "eighty"),
        ],
        r#"environment variable MS__SERVER__PORT: server.port: expected an integer 0-65535, found "eighty""#,
    )
    .await;
}
