//! A connection flood against `hello` running under `ulimit -n 256`, as in a container with a
//! small open-file limit: the service never crashes, never logs in a tight loop, and serves
//! again once the flood is over — both with the derived `max_connections` (which keeps it
//! clear of the limit) and with one set too high (so that accepts really fail with EMFILE).

mod support;

use std::time::{Duration, Instant};

use support::Hello;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const NOFILE: u32 = 256;

/// Opens `n` connections that each send a partial request head and then nothing.
async fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n").await;
            conns.push(s);
        }
    }
    conns
}

fn lines_with(hello: &Hello, needle: &str) -> Vec<String> {
    hello
        .stdout_lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

fn logged(hello: &Hello, needle: &str) -> Result<(), String> {
    match lines_with(hello, needle).is_empty() {
        true => Err(format!("no line with {needle:?} yet")),
        false => Ok(()),
    }
}

async fn serves_again(hello: &Hello) {
    let url = hello.url("/hello");
    support::eventually(Duration::from_secs(30), "GET /hello answers 200", || {
        let url = url.clone();
        async move {
            let res = support::fresh_connection_client()
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            (res.status() == 200)
                .then_some(())
                .ok_or_else(|| res.status().to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_derived_cap_keeps_a_flood_clear_of_the_fd_limit() {
    let mut hello = support::spawn_hello_with_nofile(
        &[("MS__SERVER__LIMITS__HEADER_READ_TIMEOUT", "2s")],
        NOFILE,
    )
    .await;
    let limits = lines_with(&hello, "\"connection limits\"");
    assert_eq!(limits.len(), 1, "{}", hello.stdout_text());
    let line: serde_json::Value = serde_json::from_str(&limits[0]).unwrap();
    assert_eq!(line["rlimit_nofile"], NOFILE, "{line}");
    // 256 less a quarter (64): the rest is for files and outgoing connections.
    assert_eq!(line["max_connections"], 192, "{line}");

    let start = Instant::now();
    let conns = flood(hello.port, 400).await;
    assert!(conns.len() >= 300, "the kernel took the connections");
    // Over the cap, connections are refused and counted, never an accept error.
    support::eventually(Duration::from_secs(20), "refusals at the cap", || async {
        logged(
            &hello,
            "connections refused at server.limits.max_connections",
        )
    })
    .await;
    drop(conns);
    serves_again(&hello).await;
    assert!(
        lines_with(&hello, "accept failed").is_empty(),
        "the cap keeps accepts clear of EMFILE:\n{}",
        hello.stdout_text()
    );
    let warnings = lines_with(&hello, "connections refused").len();
    let bound = start.elapsed().as_secs() / 10 + 2;
    assert!(
        warnings as u64 <= bound,
        "{warnings} refusal lines: not a tight loop"
    );
    assert!(hello.try_exit_status().is_none(), "hello is still running");
    hello.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_that_fail_with_emfile_pause_and_log_at_most_once_a_second() {
    let mut hello = support::spawn_hello_with_nofile(
        &[
            ("MS__SERVER__LIMITS__HEADER_READ_TIMEOUT", "2s"),
            ("MS__SERVER__LIMITS__MAX_CONNECTIONS", "10000"),
        ],
        NOFILE,
    )
    .await;
    let start = Instant::now();
    let conns = flood(hello.port, 400).await;
    support::eventually(Duration::from_secs(20), "an accept error", || async {
        logged(&hello, "accept failed")
    })
    .await;
    // Descriptors come back as the flood goes (and as its slow heads time out).
    drop(conns);
    serves_again(&hello).await;
    let errors = lines_with(&hello, "accept failed").len() as u64;
    let bound = start.elapsed().as_secs() + 2;
    assert!(
        errors <= bound,
        "{errors} accept errors in {:?}: at most one a second",
        start.elapsed()
    );
    assert!(hello.try_exit_status().is_none(), "hello is still running");
    assert!(
        !hello.stderr_text().contains("panicked"),
        "{}",
        hello.stderr_text()
    );
    hello.terminate(Duration::from_secs(30)).await;
}
