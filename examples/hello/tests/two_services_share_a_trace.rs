//! A user story: service A calls service B, and an operator follows one request across
//! both. Two real `hello` processes export to one OTLP receiver started by the test; A's
//! `/relay` calls B's `/hello/relay` through the outgoing propagation API
//! (`inject_current_headers`) inside a client span. With no incoming trace context:
//!
//! - one trace id covers A's server span, A's client span and B's server span (and B's
//!   `compose_greeting` child);
//! - A's client span is a child of A's server span, and B's server span is a child of A's
//!   client span;
//! - the JSON log lines of both services carry that trace id, with the span ids of the
//!   spans they were written in.
//!
//! It runs twice: with the default W3C `traceparent`, and with A injecting only B3
//! multi-header (`tracing.propagation: [b3multi]`), to show that B extracts every format.
//! In the B3 run a wire tap in the test sits between A and B: it forwards each request
//! unchanged and records its headers, so the test can check that A really sent B3 and
//! nothing else. The tap opens no spans, so it is invisible in the trace.
//!
//! Last, the relay's failure modes: no downstream configured is a 503 problem, and a
//! downstream that refuses connections is a 502 problem with error client and server spans.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use serde_json::Value;
use support::otlp::{self, Attr, ReceivedSpan, Transport};
use support::{Hello, client, eventually, spawn_hello};

const EXPORT_DEADLINE: Duration = Duration::from_secs(30);

/// The wire tap: forwards every request to `upstream` and keeps its headers.
#[derive(Clone)]
struct Tap {
    upstream: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

async fn forward(State(tap): State<Tap>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = req.headers().clone();
    tap.seen.lock().unwrap().push(headers.clone());
    // Hop-by-hop and per-connection headers are the tap's own business.
    for name in [header::HOST, header::CONNECTION, header::CONTENT_LENGTH] {
        headers.remove(name);
    }
    let res = match tap
        .client
        .request(req.method().clone(), format!("{}{path}", tap.upstream))
        .headers(headers)
        .send()
        .await
    {
        Ok(res) => res,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("tap: {e}")).into_response(),
    };
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
    let body = res.bytes().await.unwrap_or_default();
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    out
}

/// Starts a tap on 127.0.0.1 forwarding to `upstream`; returns its base URL, the headers it
/// has seen, and the server task (aborted by the caller).
async fn start_tap(upstream: String) -> (String, Arc<Mutex<Vec<HeaderMap>>>, AbortOnDrop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the tap");
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let tap = Tap {
        upstream,
        client: client(),
        seen: seen.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(tap);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the tap failed");
    });
    (format!("http://{addr}"), seen, AbortOnDrop(task))
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_env<'a>(
    name: &'a str,
    receiver: &'a otlp::Receiver,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut envs = vec![
        ("MS__SERVICE__NAME", name),
        ("MS__TRACING__EXPORTER", "otlp"),
        ("MS__TRACING__PROTOCOL", receiver.transport.protocol()),
        ("MS__TRACING__ENDPOINT", receiver.endpoint.as_str()),
        ("MS__TRACING__SAMPLER__TYPE", "always_on"),
        ("MS__LOGGING__ACCESS", "true"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
    ];
    envs.extend_from_slice(extra);
    envs
}

/// The JSON log lines of `hello` whose `trace_id` is `trace`.
fn log_lines_of_trace(hello: &Hello, trace: &str) -> Vec<Value> {
    hello
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["trace_id"] == trace)
        .collect()
}

/// The one log line of `trace` with `message`, or an error listing what there is.
fn log_line(hello: &Hello, trace: &str, message: &str) -> Result<Value, String> {
    let lines = log_lines_of_trace(hello, trace);
    let found: Vec<_> = lines.iter().filter(|v| v["message"] == message).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(format!(
            "expected one {message:?} line with trace_id {trace}, found {}; stdout:\n{}",
            found.len(),
            hello.stdout_text()
        )),
    }
}

fn service_of(s: &ReceivedSpan) -> String {
    s.resource_str("service.name").unwrap_or_default()
}

/// The spans of the relay: A's server and client spans, B's server span and its child.
struct RelaySpans {
    a_server: ReceivedSpan,
    a_client: ReceivedSpan,
    b_server: ReceivedSpan,
    b_child: ReceivedSpan,
}

fn find_relay_spans(spans: &[ReceivedSpan]) -> Result<RelaySpans, String> {
    let a_servers: Vec<_> = spans
        .iter()
        .filter(|s| service_of(s) == "hello-a" && s.kind() == SpanKind::Server)
        .collect();
    let [a_server] = a_servers.as_slice() else {
        return Err(format!(
            "expected one server span from hello-a, found {}",
            a_servers.len()
        ));
    };
    let trace = a_server.trace_id();
    let one = |what: &str, pred: &dyn Fn(&ReceivedSpan) -> bool| {
        let found: Vec<_> = spans.iter().filter(|s| pred(s)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(format!("expected one {what}, found {}", found.len())),
        }
    };
    // Searched across all traces, so a broken link shows up as a wrong id, not a timeout.
    Ok(RelaySpans {
        a_server: (*a_server).clone(),
        a_client: one("client span from hello-a", &|s| {
            service_of(s) == "hello-a" && s.kind() == SpanKind::Client
        })?,
        b_server: one("server span from hello-b", &|s| {
            service_of(s) == "hello-b" && s.kind() == SpanKind::Server
        })?,
        b_child: one("compose_greeting span from hello-b", &|s| {
            service_of(s) == "hello-b" && s.name() == "compose_greeting"
        })
        .map_err(|e| format!("{e} (trace {trace})"))?,
    })
}

/// A (`hello-a`, injecting `a_propagation`) relays to B (`hello-b`), directly or through
/// the wire tap; both export to one receiver over `transport`.
async fn a_calls_b(transport: Transport, a_propagation: Option<&str>, through_tap: bool) {
    let receiver = otlp::start(transport).await;
    let mut b = spawn_hello(&spawn_env("hello-b", &receiver, &[])).await;
    let b_url = format!("http://127.0.0.1:{}", b.port);
    let (downstream, seen, _tap) = if through_tap {
        let (url, seen, task) = start_tap(b_url.clone()).await;
        (url, Some(seen), Some(task))
    } else {
        (b_url.clone(), None, None)
    };
    let downstream_port: i64 = downstream.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut a_extra = vec![("MS__APP__DOWNSTREAM", downstream.as_str())];
    if let Some(p) = a_propagation {
        a_extra.push(("MS__TRACING__PROPAGATION", p));
    }
    let mut a = spawn_hello(&spawn_env("hello-a", &receiver, &a_extra)).await;

    // The call carries no trace context: A starts the trace.
    let res = client()
        .get(a.url("/relay"))
        .send()
        .await
        .expect("GET A /relay");
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(
        status,
        200,
        "{body}\nA stdout:\n{}\nB stdout:\n{}",
        a.stdout_text(),
        b.stdout_text()
    );
    assert_eq!(body, r#"{"message":"hello, relay"}"#);

    let spans = receiver
        .wait_for(EXPORT_DEADLINE, "the spans of A and B", find_relay_spans)
        .await;
    let RelaySpans {
        a_server,
        a_client,
        b_server,
        b_child,
    } = spans;
    let trace = a_server.trace_id();
    let all = otlp::describe_all(&receiver.spans());

    // One trace id across both services.
    for s in [&a_client, &b_server, &b_child] {
        assert_eq!(s.trace_id(), trace, "{}\nall spans:\n{all}", s.describe());
    }
    // A started it.
    assert_eq!(a_server.name(), "GET /relay", "{}", a_server.describe());
    assert_eq!(
        a_server.parent_span_id(),
        "",
        "A's server span is a root: {}",
        a_server.describe()
    );
    // A's client span is a child of A's server span.
    assert_eq!(
        a_client.parent_span_id(),
        a_server.span_id(),
        "client {} / server {}",
        a_client.describe(),
        a_server.describe()
    );
    assert_eq!(a_client.name(), "GET", "{}", a_client.describe());
    let c = a_client.attrs();
    assert_eq!(
        c.get("http.request.method"),
        Some(&Attr::Str("GET".into())),
        "{}",
        a_client.describe()
    );
    assert_eq!(
        c.get("server.address"),
        Some(&Attr::Str("127.0.0.1".into())),
        "{}",
        a_client.describe()
    );
    assert_eq!(
        c.get("server.port"),
        Some(&Attr::Int(downstream_port)),
        "{}",
        a_client.describe()
    );
    assert_eq!(
        c.get("http.response.status_code"),
        Some(&Attr::Int(200)),
        "{}",
        a_client.describe()
    );
    // B's server span is a child of A's client span, named after B's route.
    assert_eq!(
        b_server.parent_span_id(),
        a_client.span_id(),
        "B server {} / A client {}",
        b_server.describe(),
        a_client.describe()
    );
    assert_eq!(
        b_server.name(),
        "GET /hello/{name}",
        "{}",
        b_server.describe()
    );
    assert_eq!(
        b_server.attr("url.path"),
        Some(Attr::Str("/hello/relay".into())),
        "{}",
        b_server.describe()
    );
    assert_eq!(
        b_child.parent_span_id(),
        b_server.span_id(),
        "{}",
        b_child.describe()
    );
    // Two processes, two instance ids.
    assert_ne!(
        a_server.resource_str("service.instance.id"),
        b_server.resource_str("service.instance.id"),
        "service.instance.id must be unique per process"
    );

    // What A put on the wire, when the tap saw it: the configured format, and only that.
    if let Some(seen) = &seen {
        let seen = seen.lock().unwrap().clone();
        let [h] = seen.as_slice() else {
            panic!("the tap saw {} requests, expected 1", seen.len());
        };
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        match a_propagation {
            Some("[b3multi]") => {
                assert_eq!(get("x-b3-traceid"), Some(trace.clone()), "{h:?}");
                assert_eq!(get("x-b3-spanid"), Some(a_client.span_id()), "{h:?}");
                assert_eq!(get("x-b3-sampled").as_deref(), Some("1"), "{h:?}");
                for absent in ["traceparent", "tracestate", "b3", "uber-trace-id"] {
                    assert_eq!(get(absent), None, "A must send only B3 multi: {h:?}");
                }
            }
            other => {
                assert_eq!(
                    get("traceparent"),
                    Some(format!("00-{trace}-{}-01", a_client.span_id())),
                    "propagation {other:?}: {h:?}"
                );
            }
        }
    }

    // Both services' JSON logs carry the trace id, with the ids of the span they were in.
    let (calling, a_access, greeting, b_access) = eventually(
        Duration::from_secs(15),
        "the log lines of the relayed request",
        || {
            let r = (|| {
                Ok((
                    log_line(&a, &trace, "calling downstream")?,
                    log_line(&a, &trace, "request completed")?,
                    log_line(&b, &trace, "greeting someone by name")?,
                    log_line(&b, &trace, "request completed")?,
                ))
            })();
            async move { r }
        },
    )
    .await;
    assert_eq!(calling["service"], "hello-a", "{calling}");
    assert_eq!(
        calling["span_id"],
        a_client.span_id(),
        "A's client span: {calling}"
    );
    assert_eq!(a_access["service"], "hello-a", "{a_access}");
    assert_eq!(
        a_access["span_id"],
        a_server.span_id(),
        "A's server span: {a_access}"
    );
    assert_eq!(greeting["service"], "hello-b", "{greeting}");
    assert_eq!(
        greeting["span_id"],
        b_server.span_id(),
        "B's server span: {greeting}"
    );
    assert_eq!(
        greeting["parent_span_id"],
        a_client.span_id(),
        "at B's server span the parent is A's client span: {greeting}"
    );
    assert_eq!(b_access["service"], "hello-b", "{b_access}");
    assert_eq!(b_access["span_id"], b_server.span_id(), "{b_access}");

    for svc in [&mut a, &mut b] {
        svc.terminate(Duration::from_secs(45)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relays_to_b_over_w3c_and_one_trace_covers_both() {
    a_calls_b(Transport::Grpc, None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relays_to_b_over_b3_multi_header_and_b_continues_the_trace() {
    a_calls_b(Transport::Http, Some("[b3multi]"), true).await;
}

/// The relay's failure modes: no `app.downstream` is a 503 problem, and a downstream that
/// refuses connections is a 502 problem, with the client span and the server span both
/// marked as errors in the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reports_a_missing_or_dead_downstream_as_a_problem() {
    let problem_of = |status: u16, content_type: &str, body: &str| {
        assert_eq!(content_type, "application/problem+json", "{body}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], status, "{body}");
    };
    let get = |url: String| async move {
        let res = client().get(url).send().await.expect("GET /relay");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type, res.text().await.unwrap_or_default())
    };

    let alone = spawn_hello(&[]).await;
    let (status, content_type, body) = get(alone.url("/relay")).await;
    assert_eq!(status, 503, "{body}");
    problem_of(503, &content_type, &body);

    let receiver = otlp::start(Transport::Grpc).await;
    let dead = format!("http://127.0.0.1:{}", otlp::closed_port());
    let a = spawn_hello(&spawn_env(
        "hello-a",
        &receiver,
        &[("MS__APP__DOWNSTREAM", dead.as_str())],
    ))
    .await;
    let (status, content_type, body) = get(a.url("/relay")).await;
    assert_eq!(status, 502, "{body}\nstdout:\n{}", a.stdout_text());
    problem_of(502, &content_type, &body);

    let (server, client_span) = receiver
        .wait_for(EXPORT_DEADLINE, "A's server and client spans", |spans| {
            let of = |kind: SpanKind| {
                spans
                    .iter()
                    .find(|s| s.kind() == kind)
                    .cloned()
                    .ok_or_else(|| format!("no {kind:?} span"))
            };
            Ok((of(SpanKind::Server)?, of(SpanKind::Client)?))
        })
        .await;
    assert_eq!(
        client_span.trace_id(),
        server.trace_id(),
        "{}",
        client_span.describe()
    );
    assert_eq!(
        client_span.parent_span_id(),
        server.span_id(),
        "{}",
        client_span.describe()
    );
    assert_eq!(
        client_span.status_code(),
        OtlpStatus::Error,
        "{}",
        client_span.describe()
    );
    assert_eq!(
        client_span.attr("error.type"),
        Some(Attr::Str("_OTHER".into())),
        "{}",
        client_span.describe()
    );
    assert_eq!(
        client_span.attr("http.response.status_code"),
        None,
        "no response: {}",
        client_span.describe()
    );
    assert_eq!(
        server.attr("http.response.status_code"),
        Some(Attr::Int(502)),
        "{}",
        server.describe()
    );
    assert_eq!(
        server.attr("error.type"),
        Some(Attr::Str("502".into())),
        "{}",
        server.describe()
    );
    assert_eq!(
        server.status_code(),
        OtlpStatus::Error,
        "{}",
        server.describe()
    );
}
