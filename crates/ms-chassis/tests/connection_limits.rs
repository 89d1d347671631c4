//! Connection-level hardening over real sockets: slow request heads, idle keep-alive
//! connections, the connection cap, HTTP/2 stream limits, and request bodies that trickle
//! or stream past the body limit. Timeouts are configured short (1–2 s) so the tests stay
//! fast; every wait is bounded and generous for a busy 2-core machine.

mod support;

use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::axum::body::{Body, Bytes};
use ms_chassis::axum::extract::DefaultBodyLimit;
use ms_chassis::axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn router() -> Router {
    Router::new()
        .route("/x", get(|| async { "x" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "slow"
            }),
        )
        .route(
            "/len",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
}

/// Reads until the peer closes (or resets); `None` if it is still open at `deadline`.
async fn closed_within(s: &mut TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `ms_chassis_connections_closed_total` of `listener` for `reason`, scraped from `base`.
async fn closed(base: &str, listener: &str, reason: &str) -> f64 {
    let m = support::metrics_text(base).await;
    let name = format!(
        r#"ms_chassis_connections_closed_total{{listener="{listener}",reason="{reason}"}}"#
    );
    series(&m, &name)
}

/// The value of one series in a `/metrics` text, 0 if absent.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_closed_at_the_header_timeout_while_others_are_served() {
    let svc = support::start(
        "server: { limits: { header_read_timeout: 1s, idle_timeout: 30s } }",
        router(),
    )
    .await;
    let addr = svc.running.local_addr();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("a partial head");
        slow.push(s);
    }
    let sent = Instant::now();
    // A normal client keeps getting answers while the slow heads hang.
    let c = support::client();
    let mut served = 0;
    while sent.elapsed() < Duration::from_millis(1500) {
        let res = c
            .get(format!("{}/x", svc.url))
            .send()
            .await
            .expect("GET /x");
        assert_eq!(res.status(), 200);
        served += 1;
    }
    assert!(served > 0);
    // All closed by about 1 s plus a tick; a generous bound for a busy machine.
    for s in &mut slow {
        let left = Duration::from_secs(8).saturating_sub(sent.elapsed());
        let got = closed_within(s, left)
            .await
            .expect("a slow head is closed near header_read_timeout");
        assert!(got.is_empty(), "no response to a partial head: {got:?}");
    }
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed no sooner than the timeout ({elapsed:?})"
    );
    assert_eq!(closed(&svc.url, "main", "header_timeout").await, 200.0);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_a_slow_head() {
    let svc = support::start("server: { limits: { header_read_timeout: 1s } }", router()).await;
    let mut s = TcpStream::connect(svc.running.local_addr()).await.unwrap();
    let t = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(8))
            .await
            .is_some()
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_at_the_idle_timeout_not_the_header_timeout() {
    let svc = support::start(
        "server: { limits: { header_read_timeout: 1s, idle_timeout: 3s } }",
        router(),
    )
    .await;
    let mut s = TcpStream::connect(svc.running.local_addr()).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let idle_from = Instant::now();
    // Still open well past the header timeout: it is idle, not slow.
    assert!(
        closed_within(&mut s, Duration::from_millis(2000))
            .await
            .is_none(),
        "an idle keep-alive connection outlives header_read_timeout"
    );
    // And it serves a second request on the same connection.
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle_from2 = Instant::now();
    assert!(idle_from2 > idle_from);
    assert!(
        closed_within(&mut s, Duration::from_secs(10))
            .await
            .is_some(),
        "closed after idle_timeout"
    );
    let idled = idle_from2.elapsed();
    assert!(idled >= Duration::from_millis(2900), "{idled:?}");
    assert_eq!(closed(&svc.url, "main", "idle").await, 1.0);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_idle() {
    let svc = support::start(
        "server: { limits: { header_read_timeout: 1s, idle_timeout: 1s } }",
        router(),
    )
    .await;
    // /slow takes 3 s with no bytes moving: three idle timeouts.
    let res = support::client()
        .get(format!("{}/slow", svc.url))
        .send()
        .await
        .expect("the slow request is answered");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "slow");
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_under_a_burst_and_recovers() {
    let svc = support::start("server: { limits: { max_connections: 20 } }", router()).await;
    let addr = svc.running.local_addr();
    let mut burst = Vec::new();
    for _ in 0..40 {
        burst.push(TcpStream::connect(addr).await.expect("the kernel accepts"));
    }
    // Those over the cap are closed at once; the first 20 stay open.
    let mut closed = 0;
    for s in &mut burst {
        if closed_within(s, Duration::from_millis(300)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 20, "exactly the excess is refused");
    drop(burst);
    let c = support::client();
    let m = support::eventually(Duration::from_secs(10), "accepting again", || {
        let c = c.clone();
        let url = svc.url.clone();
        async move {
            let res = c.get(format!("{url}/metrics")).send().await.ok()?;
            res.text().await.ok()
        }
    })
    .await;
    assert_eq!(
        series(
            &m,
            r#"ms_chassis_connections_closed_total{listener="main",reason="limit"}"#
        ),
        20.0,
        "{m}"
    );
    assert!(
        series(&m, r#"http_server_open_connections{listener="main"}"#) >= 1.0,
        "the scrape's own connection is open: {m}"
    );
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_listener_has_the_same_connection_limits() {
    let svc = support::start(
        "server: { management: { port: 0 }, limits: { header_read_timeout: 1s } }",
        router(),
    )
    .await;
    let addr = svc.running.management_addr().expect("a management port");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(8))
            .await
            .is_some()
    );
    assert_eq!(
        closed(&format!("http://{addr}"), "management", "header_timeout").await,
        1.0
    );
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_bounded_by_the_request_timeout() {
    let svc = support::start("server: { limits: { request_timeout: 1s } }", router()).await;
    let mut s = TcpStream::connect(svc.running.local_addr()).await.unwrap();
    s.write_all(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // One byte every 200 ms: the body would take 20 s.
    while t.elapsed() < Duration::from_secs(10) {
        let _ = s.write_all(b"a").await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413_even_without_the_extractors_limit() {
    // The user turned axum's own extractor limit off: the chassis still bounds the body.
    let app = Router::new()
        .route(
            "/len",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .layer(DefaultBodyLimit::disable())
        .route(
            "/stream",
            post(|body: Body| async move {
                use futures_util::StreamExt;
                let mut s = body.into_data_stream();
                let mut n = 0usize;
                while let Some(chunk) = s.next().await {
                    match chunk {
                        Ok(c) => n += c.len(),
                        Err(_) => {
                            return (
                                ms_chassis::axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                                n.to_string(),
                            );
                        }
                    }
                }
                (ms_chassis::axum::http::StatusCode::OK, n.to_string())
            }),
        );
    let svc = support::start("server: { limits: { body_size: 2MiB } }", app).await;
    let c = support::client();
    let three_mib = 3 * 1024 * 1024;
    let addr = svc.running.local_addr();
    let (status, _) = post_chunked_raw(addr, "/len", three_mib).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let (status, body) = post_chunked_raw(addr, "/stream", three_mib).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let read: usize = body.trim().parse().unwrap();
    assert!(
        read <= 2 * 1024 * 1024,
        "the handler saw at most the limit: {read}"
    );
    // Under the limit, a chunked body passes whole.
    let res = c
        .post(format!("{}/len", svc.url))
        .body(reqwest::Body::wrap_stream(chunked_stream(1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), (1024 * 1024).to_string());
    svc.running.shutdown().await.unwrap();
}

/// POSTs `total` bytes with chunked encoding over a raw socket and returns the status line
/// and the body of the answer. The server answers 413 while the body is still coming and
/// then closes, so the writer's broken pipe is expected: an HTTP client library would
/// report that write error rather than the answer, depending on who wins the race.
async fn post_chunked_raw(
    addr: std::net::SocketAddr,
    path: &str,
    total: usize,
) -> (String, String) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
        }
        wr.write_all(b"0\r\n\r\n").await
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut got)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn chunked_stream(
    total: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
    let n = total / chunk.len();
    futures_util::stream::iter((0..n).map(move |_| Ok(chunk.clone())))
}

/// One HTTP/2 frame: (type, flags, stream id, payload).
type Frame = (u8, u8, u32, Vec<u8>);

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

/// A raw HTTP/2 client (prior knowledge, over cleartext) that ignores the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS`, as an attacker would: well-behaved clients queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_over_the_cap_are_refused_and_the_settings_are_pinned() {
    let app = Router::new().route(
        "/wait",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        }),
    );
    let svc = support::start(
        "server: { limits: { http2: { max_concurrent_streams: 8 } } }",
        app,
    )
    .await;
    let mut s = TcpStream::connect(svc.running.local_addr()).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    // The server's SETTINGS come first.
    let (kind, flags, _, payload) = read_frame(&mut s).await.expect("server SETTINGS");
    assert_eq!((kind, flags), (SETTINGS, 0));
    let settings: std::collections::HashMap<u16, u32> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert_eq!(
        settings.get(&0x3),
        Some(&8),
        "MAX_CONCURRENT_STREAMS: {settings:?}"
    );
    assert_eq!(
        settings.get(&0x6),
        Some(&(64 * 1024)),
        "MAX_HEADER_LIST_SIZE is server.limits.header_size: {settings:?}"
    );
    // hyper's defaults that hold: 1 MiB stream window (RFC default 64 KiB otherwise).
    assert_eq!(settings.get(&0x4), Some(&(1024 * 1024)), "{settings:?}");
    s.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap();

    // GET /wait, HPACK: :method GET, :scheme http (static), :path and :authority as
    // literals without indexing.
    let mut block = vec![0x82, 0x86, 0x04, 5];
    block.extend_from_slice(b"/wait");
    block.extend_from_slice(&[0x01, 1, b'x']);
    let mut all = Vec::new();
    for i in 0..20u32 {
        all.extend(frame(HEADERS, 0x5, 2 * i + 1, &block));
    }
    s.write_all(&all).await.unwrap();

    let mut refused = std::collections::BTreeSet::new();
    let mut answered = std::collections::BTreeSet::new();
    while refused.len() + answered.len() < 20 {
        let Some((kind, _, stream, payload)) = read_frame(&mut s).await else {
            panic!("connection ended: refused {refused:?}, answered {answered:?}");
        };
        match kind {
            RST_STREAM => {
                let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                assert_eq!(code, REFUSED_STREAM, "stream {stream}");
                refused.insert(stream);
            }
            HEADERS => {
                answered.insert(stream);
            }
            _ => {}
        }
    }
    assert_eq!(
        answered.len(),
        8,
        "the cap's worth of streams is served: {answered:?}"
    );
    assert_eq!(refused.len(), 12, "the rest are refused: {refused:?}");
    // This client answers no PING, so it would hold the graceful GOAWAY until the grace.
    drop(s);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connection_limits_are_config_errors_that_name_the_key() {
    for (yaml, key) in [
        (
            "server: { limits: { header_size: 1KiB } }",
            "server.limits.header_size",
        ),
        (
            "server: { limits: { http2: { max_concurrent_streams: 0 } } }",
            "server.limits.http2.max_concurrent_streams",
        ),
        (
            "server: { limits: { idle_timeout: forever } }",
            "server.limits.idle_timeout",
        ),
        (
            "server: { limits: { max_connections: -1 } }",
            "server.limits.max_connections",
        ),
    ] {
        let err = ms_chassis::Service::builder()
            .yaml(support::TEST_BASE)
            .yaml(yaml)
            .build()
            .expect_err(yaml)
            .to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

/// A request whose future is dropped mid-flight (its HTTP/2 stream reset by the client)
/// gives back its concurrency slot and its place in the in-flight gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_in_flight_leaves_the_gauges_right() {
    let app = router().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    );
    let svc = support::start("server: { limits: { concurrency: 1 } }", app).await;
    let mut s = TcpStream::connect(svc.running.local_addr()).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    read_frame(&mut s).await.expect("server SETTINGS");
    s.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap();
    let mut block = vec![0x82, 0x86, 0x04, 5];
    block.extend_from_slice(b"/hang");
    block.extend_from_slice(&[0x01, 1, b'x']);
    s.write_all(&frame(HEADERS, 0x5, 1, &block)).await.unwrap();

    let active = |m: &str| series(m, "http_server_active_requests");
    support::eventually(Duration::from_secs(10), "the request in flight", || {
        let url = svc.url.clone();
        async move { (active(&support::metrics_text(&url).await) == 1.0).then_some(()) }
    })
    .await;
    let c = support::client();
    let res = c.get(format!("{}/x", svc.url)).send().await.unwrap();
    assert_eq!(res.status(), 503, "the one slot is taken");

    const CANCEL: u32 = 0x8;
    s.write_all(&frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()))
        .await
        .unwrap();
    support::eventually(Duration::from_secs(10), "the gauge back at 0", || {
        let url = svc.url.clone();
        async move { (active(&support::metrics_text(&url).await) == 0.0).then_some(()) }
    })
    .await;
    let res = c.get(format!("{}/x", svc.url)).send().await.unwrap();
    assert_eq!(res.status(), 200, "the slot was given back");
    drop(s);
    svc.running.shutdown().await.unwrap();
}

/// HTTP/1 heads are bounded by `header_size` (64 KiB by default) and by hyper's own cap of
/// 100 headers, which this pins: both get 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_http1_heads_get_431() {
    let svc = support::start("", router()).await;
    let addr = svc.running.local_addr();
    let status_of = |head: String| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(head.as_bytes()).await;
        let got = closed_within(&mut s, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: x\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert!(status_of(big).await.starts_with("HTTP/1.1 431"));
    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /x HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert!(status_of(many).await.starts_with("HTTP/1.1 431"));
    let fine: String = (0..90).map(|i| format!("x-h{i}: v\r\n")).collect();
    let fine = format!("GET /x HTTP/1.1\r\nHost: x\r\n{fine}Connection: close\r\n\r\n");
    assert_eq!(status_of(fine).await, "HTTP/1.1 200 OK");
    svc.running.shutdown().await.unwrap();
}
