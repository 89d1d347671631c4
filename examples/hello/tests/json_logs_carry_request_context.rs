//! A user story: an operator ships `hello`'s stdout to a log store and follows one request
//! by its `x-request-id`. Every line must be one flat JSON object with the standard fields,
//! the handler's own log line and the access log line must both carry the request id, and
//! `logging.level: warn` must silence the info lines.

mod support;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use support::{client, eventually, spawn_hello, spawn_hello_unready};

/// A JSON object's members in order, duplicates kept (a `Map` would silently drop them).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses one log line as a flat JSON object: an object, no duplicate keys, no nested
/// objects or arrays, and string `timestamp`, `level`, `service`, `target`, `message`.
fn parse_flat_line(line: &str) -> Result<Map<String, Value>, String> {
    let members: Members =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object ({e}): {line}"))?;
    let mut map = Map::new();
    for (key, value) in members.0 {
        if value.is_object() || value.is_array() {
            return Err(format!("field `{key}` is nested, not flat: {line}"));
        }
        if let Some(first) = map.get(&key) {
            return Err(format!(
                "duplicate key `{key}` ({first} and {value}): {line}"
            ));
        }
        map.insert(key, value);
    }
    for key in ["timestamp", "level", "service", "target", "message"] {
        if !map.get(key).is_some_and(Value::is_string) {
            return Err(format!("no string `{key}` field: {line}"));
        }
    }
    Ok(map)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn is_rfc3339_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let fraction = match &b.get(19..) {
        Some([b'Z']) => true,
        Some([b'.', rest @ .., b'Z']) => !rest.is_empty() && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && fraction
}

/// The first collected line whose `message` (and, if given, `target`) match.
fn find_line(lines: &[String], message: &str, target: Option<&str>) -> Option<String> {
    lines
        .iter()
        .find(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["message"] == message && target.is_none_or(|t| v["target"] == t))
        })
        .cloned()
}

/// Pins the detector itself on a line an earlier build really wrote: the `request` span's
/// name leaked as a `name` field and collided with the event's own `name`.
#[test]
fn duplicate_keys_are_not_a_flat_object() {
    let line = r#"{"level":"INFO","service":"hello","target":"hello","timestamp":"2026-11-28T14:38:06.044226Z","message":"greeting someone by name","name":"ada","name":"request","request_id":"test-req-42"}"#;
    let err = parse_flat_line(line).unwrap_err();
    assert!(
        err.starts_with(r#"duplicate key `name` ("ada" and "request")"#),
        "{err}"
    );
}

#[tokio::test]
async fn handler_and_access_log_lines_carry_the_request_id() {
    let hello = spawn_hello(&[("MS__LOGGING__ACCESS", "true")]).await;

    let res = client()
        .get(hello.url("/hello/ada"))
        .header("x-request-id", "test-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"test-req-42"[..]),
        "the response must echo the request id"
    );
    assert_eq!(res.text().await.unwrap(), r#"{"message":"hello, ada"}"#);

    let (handler, access) = eventually(
        Duration::from_secs(15),
        "the handler's and the access log's lines",
        || {
            let lines = hello.stdout_lines();
            async move {
                let handler = find_line(&lines, "greeting someone by name", None);
                let access = find_line(&lines, "request completed", Some("ms_chassis::access"));
                match (handler, access) {
                    (Some(h), Some(a)) => Ok((h, a)),
                    _ => Err(format!("stdout so far:\n{}", lines.join("\n"))),
                }
            }
        },
    )
    .await;

    // The handler's line: the standard fields, the span's request id, the event's field.
    let h = parse_flat_line(&handler).unwrap_or_else(|e| panic!("handler line: {e}"));
    let ts = h["timestamp"].as_str().unwrap();
    assert!(
        is_rfc3339_utc(ts),
        "timestamp {ts:?} is not RFC 3339 UTC: {handler}"
    );
    assert_eq!(h["level"], "INFO", "{handler}");
    assert_eq!(h["service"], "hello", "{handler}");
    assert_eq!(h["target"], "hello", "{handler}");
    assert_eq!(h["message"], "greeting someone by name", "{handler}");
    assert_eq!(h["request_id"], "test-req-42", "{handler}");
    assert_eq!(h["name"], "ada", "the event's own field: {handler}");

    // The access log line.
    let a = parse_flat_line(&access).unwrap_or_else(|e| panic!("access line: {e}"));
    let ts = a["timestamp"].as_str().unwrap();
    assert!(
        is_rfc3339_utc(ts),
        "timestamp {ts:?} is not RFC 3339 UTC: {access}"
    );
    assert_eq!(a["level"], "INFO", "{access}");
    assert_eq!(a["service"], "hello", "{access}");
    assert_eq!(a["method"], "GET", "{access}");
    assert_eq!(
        a["route"], "/hello/{name}",
        "the route template, not the path: {access}"
    );
    assert_eq!(a["status"], 200, "{access}");
    assert!(
        a["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "duration_ms must be a non-negative number: {access}"
    );
    assert_eq!(a["request_id"], "test-req-42", "{access}");
    let peer = a["peer"].as_str().unwrap_or_default();
    assert!(
        peer.parse::<SocketAddr>()
            .is_ok_and(|p| p.ip().is_loopback()),
        "peer must be the client's loopback address, found {peer:?}: {access}"
    );
}

#[tokio::test]
async fn every_stdout_line_is_one_flat_json_object() {
    let mut hello = spawn_hello(&[
        ("MS__LOGGING__ACCESS", "true"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
    ])
    .await;
    let http = client();
    for path in [
        "/hello",
        "/hello/bob",
        "/no/such/route",
        "/health/ready",
        "/metrics",
    ] {
        let res = http.get(hello.url(path)).send().await.unwrap();
        res.text().await.unwrap();
    }
    let res = http
        .get(hello.url("/hello"))
        .header("x-request-id", r#"id"with"quotes\and{braces}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    hello.terminate(Duration::from_secs(60)).await;

    let lines = hello.stdout_lines();
    // listening, 6 access lines, the handler's line, and the shutdown steps at least.
    assert!(lines.len() >= 10, "too few lines:\n{}", lines.join("\n"));
    for line in &lines {
        let map = parse_flat_line(line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map["service"], "hello", "{line}");
        let ts = map["timestamp"].as_str().unwrap();
        assert!(is_rfc3339_utc(ts), "timestamp {ts:?}: {line}");
    }
    let unmatched = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "ms_chassis::access" && v["status"] == 404)
        .unwrap_or_else(|| panic!("no access line for the 404:\n{}", lines.join("\n")));
    assert_eq!(unmatched["route"], "unmatched", "{unmatched}");
}

#[tokio::test]
async fn warn_level_silences_info_lines() {
    // No "listening" line at this level, so choose the port up front; retry if another
    // process takes it between our probe and hello's bind.
    let http = client();
    let mut attempts = Vec::new();
    let mut hello = loop {
        assert!(attempts.len() < 5, "could not start hello: {attempts:#?}");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("probe a free port")
            .port()
            .to_string();
        let mut hello = spawn_hello_unready(&[
            ("MS__SERVER__PORT", &port),
            ("MS__LOGGING__LEVEL", "warn"),
            ("MS__LOGGING__ACCESS", "true"),
            ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
        ]);
        hello.port = port.parse().unwrap();
        let url = hello.url("/health/ready");
        let started = eventually(Duration::from_secs(30), "hello to answer readiness", || {
            let exited = hello.try_exit_status();
            let probe = http.get(&url).send();
            async move {
                if let Some(status) = exited {
                    return Ok(Err(status));
                }
                match probe.await {
                    Ok(res) if res.status() == 200 => {
                        let body = res.text().await.map_err(|e| e.to_string())?;
                        if body.contains("lifecycle") {
                            Ok(Ok(()))
                        } else {
                            Err(format!("not hello's readiness: {body}"))
                        }
                    }
                    Ok(res) => Err(format!("status {}", res.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        match started {
            Ok(()) => break hello,
            Err(status) => {
                // Give the reader a moment to catch stderr, then record and retry.
                let stderr = eventually(Duration::from_secs(5), "hello's stderr", || {
                    let s = hello.stderr_text();
                    async move {
                        if s.is_empty() {
                            Err("empty".to_owned())
                        } else {
                            Ok(s)
                        }
                    }
                })
                .await;
                assert!(
                    stderr.contains("cannot listen on"),
                    "hello exited ({status}) for another reason than a taken port:\n{stderr}"
                );
                attempts.push(stderr);
            }
        }
    };

    let res = http
        .get(hello.url("/hello/ada"))
        .header("x-request-id", "test-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    hello.terminate(Duration::from_secs(60)).await;

    let lines = hello.stdout_lines();
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"] == "WARN" || v["level"] == "ERROR",
            "an info-or-below line at level warn: {line}"
        );
    }
    for absent in [
        "listening",
        "greeting someone by name",
        "request completed",
        "shutdown complete",
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(absent)),
            "{absent:?} logged at level warn:\n{}",
            lines.join("\n")
        );
    }
}
