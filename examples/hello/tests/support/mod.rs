//! Shared support for the `hello` integration tests: run the real binary as a child
//! process, learn its port from the "listening" log line, keep its output, poll with
//! deadlines, and send it signals.
#![allow(dead_code, unreachable_pub)]

pub mod otlp;

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a child may take to log "listening" on a busy 2-core machine.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// Lines the child has written to stdout so far.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// A `hello` child process. Dropping it kills the child and waits for it.
pub struct Hello {
    child: Option<Child>,
    /// The child's process id.
    pub pid: u32,
    /// The port of the main listener, read from the "listening" line (0 if not known).
    pub port: u16,
    /// Every stdout line so far, collected by a background task so the pipe never fills.
    pub stdout: Lines,
    /// Everything written to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    stdout_task: Option<JoinHandle<()>>,
    stderr_task: Option<JoinHandle<()>>,
    /// The working directory of the child: empty, so no stray `./config.yaml` is read.
    _cwd: tempfile::TempDir,
}

/// A `hello` command with a clean environment: no inherited `MS_*` or `RUST_LOG`, the
/// given variables set, and an empty working directory.
pub fn hello_command(envs: &[(&str, &str)], cwd: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hello"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("MS_") || k == "RUST_LOG" || k == "RUST_BACKTRACE" {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(envs.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts `hello` with `envs` (plus `MS__SERVER__PORT=0` unless `envs` sets the port) and
/// waits for its "listening" line to learn the port.
pub async fn spawn_hello(envs: &[(&str, &str)]) -> Hello {
    let mut all: Vec<(&str, &str)> = Vec::new();
    if !envs.iter().any(|(k, _)| *k == "MS__SERVER__PORT") {
        all.push(("MS__SERVER__PORT", "0"));
    }
    all.extend_from_slice(envs);
    spawn_hello_as_configured(&all).await
}

/// Starts `hello` with exactly `envs` (no port override, so a config file can set it) and
/// waits for its "listening" line to learn the port.
pub async fn spawn_hello_as_configured(envs: &[(&str, &str)]) -> Hello {
    let mut hello = spawn_hello_unready(envs);
    learn_port(&mut hello).await;
    hello
}

/// Waits for the "listening" line and reads the port from it.
async fn learn_port(hello: &mut Hello) {
    let addr = wait_for_listening(hello).await;
    hello.port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("cannot read a port from addr {addr:?}"));
    assert_ne!(hello.port, 0, "hello reported port 0: {addr}");
}

/// Starts `hello` with exactly `envs` and returns at once, without waiting for anything.
pub fn spawn_hello_unready(envs: &[(&str, &str)]) -> Hello {
    spawn_with(hello_command(envs, &std::env::temp_dir()))
}

/// Starts `hello` (plus `MS__SERVER__PORT=0`) under `ulimit -n nofile`, as in a container
/// with a small open-file limit, and waits for its "listening" line.
pub async fn spawn_hello_with_nofile(envs: &[(&str, &str)], nofile: u32) -> Hello {
    let mut all = vec![("MS__SERVER__PORT", "0")];
    all.extend_from_slice(envs);
    let hello = hello_command(&all, &std::env::temp_dir());
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\""))
        .arg(hello.as_std().get_program());
    for (k, v) in hello.as_std().get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut hello = spawn_with(sh);
    learn_port(&mut hello).await;
    hello
}

/// Spawns `cmd` in a fresh empty working directory.
fn spawn_with(mut cmd: Command) -> Hello {
    let cwd = tempfile::tempdir().expect("create a temp working dir");
    let mut child = cmd
        .current_dir(cwd.path())
        .spawn()
        .expect("spawn the hello binary");
    let pid = child.id().expect("a freshly spawned child has a pid");
    let stdout: Lines = Arc::default();
    let stderr: Arc<Mutex<String>> = Arc::default();
    let out = child.stdout.take().expect("stdout is piped");
    let err = child.stderr.take().expect("stderr is piped");
    let stdout_task = tokio::spawn(collect_lines(out, stdout.clone()));
    let stderr_task = tokio::spawn(collect_text(err, stderr.clone()));
    Hello {
        child: Some(child),
        pid,
        port: 0,
        stdout,
        stderr,
        stdout_task: Some(stdout_task),
        stderr_task: Some(stderr_task),
        _cwd: cwd,
    }
}

async fn collect_lines(out: impl AsyncRead + Unpin, into: Lines) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        into.lock().unwrap().push(line);
    }
}

async fn collect_text(err: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut reader = BufReader::new(err);
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        into.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Waits for the first `"message":"listening"` line and returns its `addr`.
async fn wait_for_listening(hello: &mut Hello) -> String {
    let start = Instant::now();
    loop {
        if let Some(addr) = hello.stdout.lock().unwrap().iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["message"] == "listening").then(|| v["addr"].as_str().map(str::to_owned))?
        }) {
            return addr;
        }
        if let Some(status) = hello.try_exit_status() {
            // Let the readers catch the last output before reporting it.
            hello.finish_output().await;
            panic!(
                "hello exited ({status}) before logging \"listening\"\nstdout:\n{}\nstderr:\n{}",
                hello.stdout_text(),
                hello.stderr_text()
            );
        }
        if start.elapsed() > STARTUP_DEADLINE {
            panic!(
                "hello did not log \"listening\" within {STARTUP_DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                hello.stdout_text(),
                hello.stderr_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Hello {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A copy of the stdout lines collected so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stdout lines so far, joined for failure messages.
    pub fn stdout_text(&self) -> String {
        self.stdout_lines().join("\n")
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The exit status if the child has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("query the child's status"))
    }

    /// Waits up to `deadline` for the child to exit, then for its output to be fully read.
    /// Panics (the guard then kills it) if it does not exit in time.
    /// Sends SIGTERM and asserts a clean exit (status 0) within `deadline`, showing stderr
    /// otherwise.
    pub async fn terminate(&mut self, deadline: Duration) {
        send_signal(self.pid, "TERM");
        let status = self.wait_exit(deadline).await;
        assert!(
            status.success(),
            "exit {status}\nstderr:\n{}",
            self.stderr_text()
        );
    }

    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("child not yet reaped");
        let status = match tokio::time::timeout(deadline, child.wait()).await {
            Ok(status) => status.expect("wait for the child"),
            Err(_) => panic!(
                "hello did not exit within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout_text(),
                self.stderr_text()
            ),
        };
        self.finish_output().await;
        status
    }

    /// Waits (bounded) for the stdout and stderr readers to reach end of file.
    async fn finish_output(&mut self) {
        for task in [self.stdout_task.take(), self.stderr_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = child.start_kill();
        // Reap it: SIGKILL takes effect at once, so this loop is short.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// Runs `hello` with `envs` to completion (bounded by `deadline`) and returns its status,
/// stdout and stderr. For runs that must fail at startup.
pub async fn run_hello_to_exit(
    envs: &[(&str, &str)],
    deadline: Duration,
) -> (ExitStatus, String, String) {
    let cwd = tempfile::tempdir().expect("create a temp working dir");
    let child = hello_command(envs, cwd.path())
        .spawn()
        .expect("spawn the hello binary");
    // kill_on_drop: if the deadline passes, dropping the future kills the child.
    let output = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("hello with {envs:?} did not exit within {deadline:?}"))
        .expect("collect hello's output");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `check` until it returns `Some`, or panics after `deadline` naming `what` and the
/// last thing `check` reported through `Err`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sends `kill -SIGNAL pid` (SIGNAL such as "TERM") through the `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run the kill command");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// `GET url` as text, asserting a 200.
pub async fn get_text(url: &str) -> String {
    let res = client().get(url).send().await.expect("send the GET");
    assert_eq!(res.status(), 200, "GET {url}");
    res.text().await.expect("read the body")
}

/// A client with generous timeouts and no connection reuse, so each request is a fresh
/// accept on the listener.
pub fn fresh_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build a reqwest client")
}

/// A client with generous timeouts (busy 2-core machines).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build a reqwest client")
}
