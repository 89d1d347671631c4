//! A user story: an operator points `hello` at an OpenTelemetry collector and opens a trace.
//! A real OTLP receiver, started by the test on 127.0.0.1 (tonic for gRPC, axum for
//! HTTP/protobuf), decodes what `hello` exports. For both transports:
//!
//! - the request's server span is named after the route template, is a SERVER span with
//!   the HTTP semantic-convention attributes, and continues the caller's `traceparent`;
//! - the `compose_greeting` span the handler opens with a plain `tracing` macro is its
//!   child in the same trace;
//! - the resource names the service, its version, the profile as the deployment
//!   environment, a per-process instance id and a custom attribute from config;
//! - a panicking handler gives a 500 span with `error.type` and an ERROR status, and a path
//!   that matches no route gives a span named just `GET`, with no `http.route`;
//! - SIGTERM flushes spans the batch processor still holds before the process exits;
//! - a dead collector (closed port, or one that accepts and never answers) neither fails
//!   nor stalls requests, nor keeps the process past its grace period.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::otlp::{
    self, Attr, ReceivedSpan, Receiver, Transport, closed_port, random_span_id, random_trace_id,
    traceparent,
};
use support::{Hello, client, eventually, spawn_hello};

/// How long spans may take to reach the receiver: the batch processor exports every 5 s,
/// and the machine is busy.
const EXPORT_DEADLINE: Duration = Duration::from_secs(30);
const USER_AGENT: &str = "otlp-export-test/1.0";

/// The spans of one trace, by trace id.
fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id() == trace_id).collect()
}

/// The one span of `trace_id` with `kind`, or an error naming what was found.
fn one_of_kind(
    spans: &[ReceivedSpan],
    trace_id: &str,
    kind: SpanKind,
    what: &str,
) -> Result<ReceivedSpan, String> {
    let found: Vec<_> = in_trace(spans, trace_id)
        .into_iter()
        .filter(|s| s.kind() == kind)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no {kind:?} span in trace {trace_id} ({what})")),
        many => Err(format!(
            "{} {kind:?} spans in trace {trace_id} ({what}), expected one",
            many.len()
        )),
    }
}

fn str_attr(v: &str) -> Option<Attr> {
    Some(Attr::Str(v.to_owned()))
}

/// `GET path` with a W3C `traceparent` and our user agent; returns status, content type
/// and body.
async fn get_traced(
    hello: &Hello,
    path: &str,
    trace_id: &str,
    parent: &str,
) -> (u16, String, String) {
    let res = client()
        .get(hello.url(path))
        .header("traceparent", traceparent(trace_id, parent))
        .header("user-agent", USER_AGENT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, res.text().await.unwrap_or_default())
}

/// What the exporting `hello` is expected to put on its resource.
struct ExpectedResource<'a> {
    service_name: &'a str,
    profile: &'a str,
}

/// The common story for both transports: `hello` exports to `receiver`, configured by
/// `envs`; spans, attributes, parentage and resource are checked as the module docs say.
async fn spans_attributes_and_resource(
    receiver: &Receiver,
    envs: &[(&str, &str)],
    expect: ExpectedResource<'_>,
) {
    let mut hello = spawn_hello(envs).await;

    // 1. A greeting that continues the caller's trace.
    let (trace, caller_span) = (random_trace_id(), random_span_id());
    let (status, _, body) = get_traced(&hello, "/hello/ada", &trace, &caller_span).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"message":"hello, ada"}"#);

    // 2. A panicking handler: isolated as a 500 problem+json.
    let panic_trace = random_trace_id();
    let (status, content_type, body) =
        get_traced(&hello, "/demo/panic", &panic_trace, &random_span_id()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");

    // 3. A path that matches no route.
    let miss_trace = random_trace_id();
    let (status, _, body) =
        get_traced(&hello, "/no/such/route", &miss_trace, &random_span_id()).await;
    assert_eq!(status, 404, "{body}");

    // 4. A method outside the HTTP standard, on a route that exists: 405.
    let brew_trace = random_trace_id();
    let res = client()
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            hello.url("/hello"),
        )
        .header("traceparent", traceparent(&brew_trace, &random_span_id()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("BREW /hello: {e}"));
    assert_eq!(res.status().as_u16(), 405);

    let (server, child, panicked, missed, brewed) = receiver
        .wait_for(EXPORT_DEADLINE, "the spans of the four requests", |spans| {
            let server = one_of_kind(spans, &trace, SpanKind::Server, "/hello/ada")?;
            let child = in_trace(spans, &trace)
                .into_iter()
                .find(|s| s.name() == "compose_greeting")
                .cloned()
                .ok_or_else(|| format!("no compose_greeting span in trace {trace}"))?;
            let panicked = one_of_kind(spans, &panic_trace, SpanKind::Server, "/demo/panic")?;
            let missed = one_of_kind(spans, &miss_trace, SpanKind::Server, "/no/such/route")?;
            let brewed = one_of_kind(spans, &brew_trace, SpanKind::Server, "/hello")?;
            Ok((server, child, panicked, missed, brewed))
        })
        .await;
    let all = otlp::describe_all(&receiver.spans());

    // The server span: named after the route template, with the HTTP semantic conventions.
    assert_eq!(server.name(), "GET /hello/{name}", "{}", server.describe());
    assert_eq!(server.kind(), SpanKind::Server, "{}", server.describe());
    let attrs = server.attrs();
    let expected = [
        ("http.request.method", str_attr("GET")),
        ("http.route", str_attr("/hello/{name}")),
        ("http.response.status_code", Some(Attr::Int(200))),
        ("url.path", str_attr("/hello/ada")),
        ("url.scheme", str_attr("http")),
        ("network.protocol.version", str_attr("1.1")),
        ("server.address", str_attr("127.0.0.1")),
        ("server.port", Some(Attr::Int(i64::from(hello.port)))),
        ("client.address", str_attr("127.0.0.1")),
        ("user_agent.original", str_attr(USER_AGENT)),
    ];
    for (key, value) in &expected {
        assert_eq!(
            attrs.get(*key),
            value.as_ref(),
            "attribute {key} of {}",
            server.describe()
        );
    }
    assert_eq!(
        attrs.get("error.type"),
        None,
        "a 200 is no error: {}",
        server.describe()
    );
    assert_ne!(
        server.status_code(),
        StatusCode::Error,
        "{}",
        server.describe()
    );
    assert!(
        server.span.start_time_unix_nano > 0
            && server.span.end_time_unix_nano >= server.span.start_time_unix_nano,
        "start/end times: {}",
        server.describe()
    );

    // It continues the caller's trace: same trace id, the caller's span as parent.
    assert_eq!(server.trace_id(), trace, "{}", server.describe());
    assert_eq!(
        server.parent_span_id(),
        caller_span,
        "{}",
        server.describe()
    );
    assert_ne!(
        server.span_id(),
        caller_span,
        "a new span, not the caller's: {}",
        server.describe()
    );

    // The handler's `tracing` span is its child, and ends within it.
    assert_eq!(child.trace_id(), trace, "{}", child.describe());
    assert_eq!(
        child.parent_span_id(),
        server.span_id(),
        "child {} of server {}",
        child.describe(),
        server.describe()
    );
    assert_eq!(child.kind(), SpanKind::Internal, "{}", child.describe());
    assert!(
        child.span.start_time_unix_nano >= server.span.start_time_unix_nano
            && child.span.end_time_unix_nano <= server.span.end_time_unix_nano,
        "the child must run within the server span: {} / {}",
        child.describe(),
        server.describe()
    );

    // The resource, on every span.
    for span in [&server, &child, &panicked, &missed] {
        assert_eq!(
            span.resource_str("service.name").as_deref(),
            Some(expect.service_name),
            "{}",
            span.describe()
        );
        assert_eq!(
            span.resource_str("service.version").as_deref(),
            Some("1.2.3"),
            "{}",
            span.describe()
        );
        assert_eq!(
            span.resource_str("deployment.environment.name").as_deref(),
            Some(expect.profile),
            "{}",
            span.describe()
        );
        assert_eq!(
            span.resource_str("team").as_deref(),
            Some("payments"),
            "{}",
            span.describe()
        );
        let instance = span.resource_str("service.instance.id").unwrap_or_default();
        assert!(
            !instance.trim().is_empty(),
            "service.instance.id: {:?}",
            span.resource_attrs()
        );
    }
    assert_eq!(
        server.resource_str("service.instance.id"),
        panicked.resource_str("service.instance.id"),
        "one process, one instance id"
    );

    // The panic: a 500 span with error.type and an ERROR status.
    assert_eq!(
        panicked.name(),
        "GET /demo/panic",
        "{}",
        panicked.describe()
    );
    let p = panicked.attrs();
    assert_eq!(
        p.get("http.route"),
        str_attr("/demo/panic").as_ref(),
        "{}",
        panicked.describe()
    );
    assert_eq!(
        p.get("http.response.status_code"),
        Some(&Attr::Int(500)),
        "{}",
        panicked.describe()
    );
    assert_eq!(
        p.get("error.type"),
        str_attr("500").as_ref(),
        "{}",
        panicked.describe()
    );
    assert_eq!(
        panicked.status_code(),
        StatusCode::Error,
        "{}",
        panicked.describe()
    );

    // No route: the span is named for the method alone, with no http.route.
    assert_eq!(missed.name(), "GET", "{}", missed.describe());
    let m = missed.attrs();
    assert_eq!(m.get("http.route"), None, "{}", missed.describe());
    assert_eq!(
        m.get("url.path"),
        str_attr("/no/such/route").as_ref(),
        "{}",
        missed.describe()
    );
    assert_eq!(
        m.get("http.response.status_code"),
        Some(&Attr::Int(404)),
        "{}",
        missed.describe()
    );
    assert_eq!(
        m.get("error.type"),
        None,
        "a 404 is not a server error: {}",
        missed.describe()
    );
    assert_ne!(
        missed.status_code(),
        StatusCode::Error,
        "{}",
        missed.describe()
    );

    // An unknown method: `HTTP` in the span name and `_OTHER` as the method attribute,
    // with the method sent kept in `http.request.method_original` (HTTP semantic
    // conventions), so that clients cannot multiply span names.
    assert_eq!(brewed.name(), "HTTP /hello", "{}", brewed.describe());
    let b = brewed.attrs();
    for (key, value) in [
        ("http.request.method", str_attr("_OTHER")),
        ("http.request.method_original", str_attr("BREW")),
        ("http.route", str_attr("/hello")),
        ("http.response.status_code", Some(Attr::Int(405))),
    ] {
        assert_eq!(
            b.get(key),
            value.as_ref(),
            "attribute {key} of {}",
            brewed.describe()
        );
    }

    assert!(
        receiver.rejected().is_empty(),
        "rejected exports: {:?}\n{all}",
        receiver.rejected()
    );

    hello.terminate(Duration::from_secs(45)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_has_route_named_server_spans_children_and_resource() {
    let receiver = otlp::start(Transport::Grpc).await;
    let envs = [
        ("MS_PROFILE", "dev"),
        ("MS__SERVICE__VERSION", "1.2.3"),
        ("MS__TRACING__EXPORTER", "otlp"),
        ("MS__TRACING__PROTOCOL", "grpc"),
        ("MS__TRACING__ENDPOINT", receiver.endpoint.as_str()),
        ("MS__TRACING__SAMPLER__TYPE", "always_on"),
        ("MS__TRACING__RESOURCE__TEAM", "payments"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
    ];
    spans_attributes_and_resource(
        &receiver,
        &envs,
        ExpectedResource {
            service_name: "hello",
            profile: "dev",
        },
    )
    .await;
}

/// The same over HTTP/protobuf, configured the standard OpenTelemetry way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_configured_by_otel_variables_has_the_same_spans() {
    let receiver = otlp::start(Transport::Http).await;
    let envs = [
        ("MS_PROFILE", "staging"),
        ("MS__SERVICE__VERSION", "1.2.3"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "hello-over-http"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ("MS__TRACING__RESOURCE__TEAM", "payments"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
    ];
    spans_attributes_and_resource(
        &receiver,
        &envs,
        ExpectedResource {
            service_name: "hello-over-http",
            profile: "staging",
        },
    )
    .await;
}

/// Requests answered, then SIGTERM at once: every span reaches the receiver before the
/// process exits. The batch processor's scheduled export is set to 10 minutes, so only the
/// shutdown flush can have delivered them; the test also checks that nothing had arrived
/// before the signal.
async fn sigterm_flushes_pending_spans(transport: Transport) {
    const REQUESTS: usize = 5;
    let receiver = otlp::start(transport).await;
    let mut hello = spawn_hello(&[
        ("MS__TRACING__EXPORTER", "otlp"),
        ("MS__TRACING__PROTOCOL", transport.protocol()),
        ("MS__TRACING__ENDPOINT", receiver.endpoint.as_str()),
        ("MS__TRACING__SAMPLER__TYPE", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
        ("MS__SERVER__SHUTDOWN__GRACE", "20s"),
    ])
    .await;
    let mut traces = Vec::new();
    for i in 0..REQUESTS {
        let trace = random_trace_id();
        let (status, _, body) = get_traced(
            &hello,
            &format!("/hello/flush{i}"),
            &trace,
            &random_span_id(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        traces.push(trace);
    }
    assert_eq!(
        receiver.export_count(),
        0,
        "nothing may be exported before shutdown with a 10-minute schedule, or the test proves nothing:\n{}",
        otlp::describe_all(&receiver.spans())
    );

    let signalled = Instant::now();
    hello.terminate(Duration::from_secs(45)).await;
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "shutdown took {took:?} with a 20 s grace"
    );

    // Checked at once: the receiver stores a batch before it answers the export, and the
    // process waited for that answer before exiting.
    let spans = receiver.spans();
    for trace in &traces {
        let server = in_trace(&spans, trace)
            .into_iter()
            .filter(|s| s.kind() == SpanKind::Server && s.name() == "GET /hello/{name}")
            .count();
        let child = in_trace(&spans, trace)
            .into_iter()
            .filter(|s| s.name() == "compose_greeting")
            .count();
        assert_eq!(
            (server, child),
            (1, 1),
            "trace {trace} must have its server and child span after exit\nspans:\n{}\nstdout:\n{}",
            otlp::describe_all(&spans),
            hello.stdout_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_pending_spans_over_grpc() {
    sigterm_flushes_pending_spans(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_pending_spans_over_http() {
    sigterm_flushes_pending_spans(Transport::Http).await;
}

/// The value of an unlabelled counter in a Prometheus text body.
fn counter(text: &str, name: &str) -> Result<f64, String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in /metrics:\n{text}"))
}

/// How the collector is dead.
#[derive(Clone, Copy, Debug)]
enum Dead {
    /// Nothing listens on its port: every export fails at once.
    ClosedPort,
    /// It accepts connections and never answers: every export waits for the exporter's
    /// 10 s timeout, holding the batch processor's thread.
    BlackHole,
}

/// The collector is dead. The batch processor (queue bounded at 10 spans) tries to export
/// every 100 ms throughout, yet 50 requests all succeed, within a generous bound for the
/// whole batch; the span counters in /metrics show the failures or drops; and SIGTERM
/// still ends the process cleanly within its grace period.
async fn dead_collector_never_fails_or_blocks_requests(transport: Transport, dead: Dead) {
    const REQUESTS: usize = 50;
    const GRACE: Duration = Duration::from_secs(10);
    let black_hole = match dead {
        Dead::BlackHole => Some(otlp::BlackHole::start().await),
        Dead::ClosedPort => None,
    };
    let endpoint = match &black_hole {
        Some(hole) => hole.endpoint.clone(),
        None => format!("http://127.0.0.1:{}", closed_port()),
    };
    let mut hello = spawn_hello(&[
        ("MS__TRACING__EXPORTER", "otlp"),
        ("MS__TRACING__PROTOCOL", transport.protocol()),
        ("MS__TRACING__ENDPOINT", endpoint.as_str()),
        ("MS__TRACING__SAMPLER__TYPE", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("MS__TRACING__QUEUE_SIZE", "10"),
        ("MS__SERVER__SHUTDOWN__DRAIN_DELAY", "0s"),
        ("MS__SERVER__SHUTDOWN__GRACE", "10s"),
    ])
    .await;
    let http = client();
    let started = Instant::now();
    for i in 0..REQUESTS {
        let res = http
            .get(hello.url(&format!("/hello/dead{i}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} with a dead collector ({dead:?}): {e}"));
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(
            res.text().await.unwrap(),
            format!(r#"{{"message":"hello, dead{i}"}}"#)
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "{REQUESTS} requests took {took:?} with a dead collector ({dead:?})"
    );
    // The exporter really was trying, and /metrics shows what became of the spans: with
    // a closed port every export fails at once; with a hung collector the batch processor
    // is stuck in one export, the small queue fills, and further spans are dropped.
    let url = hello.url("/metrics");
    let (failed, dropped, exported) = eventually(
        Duration::from_secs(20),
        "span counters in /metrics showing failed exports or drops",
        || {
            let http = http.clone();
            let url = url.clone();
            let accepted = black_hole.as_ref().map(otlp::BlackHole::accepted);
            async move {
                let text = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                let counters = (
                    counter(&text, "ms_chassis_trace_spans_export_failed_total")?,
                    counter(&text, "ms_chassis_trace_spans_dropped_total")?,
                    counter(&text, "ms_chassis_trace_spans_exported_total")?,
                );
                let evident = match accepted {
                    Some(connections) => connections > 0 && counters.1 > 0.0,
                    None => counters.0 > 0.0,
                };
                if evident {
                    Ok(counters)
                } else {
                    Err(format!(
                        "failed, dropped, exported = {counters:?}; black hole connections: {accepted:?}"
                    ))
                }
            }
        },
    )
    .await;
    assert_eq!(
        exported, 0.0,
        "nothing can have been exported (failed {failed}, dropped {dropped})"
    );

    let signalled = Instant::now();
    hello.terminate(GRACE + Duration::from_secs(20)).await;
    let took = signalled.elapsed();
    // The grace, plus slack for a busy machine to end a process.
    assert!(
        took < GRACE + Duration::from_secs(3),
        "shutdown took {took:?}, beyond the {GRACE:?} grace ({dead:?})\nstdout:\n{}",
        hello.stdout_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_grpc_collector_never_fails_or_blocks_requests() {
    dead_collector_never_fails_or_blocks_requests(Transport::Grpc, Dead::ClosedPort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_http_collector_never_fails_or_blocks_requests() {
    dead_collector_never_fails_or_blocks_requests(Transport::Http, Dead::ClosedPort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_grpc_collector_never_fails_or_blocks_requests() {
    dead_collector_never_fails_or_blocks_requests(Transport::Grpc, Dead::BlackHole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_http_collector_never_fails_or_blocks_requests() {
    dead_collector_never_fails_or_blocks_requests(Transport::Http, Dead::BlackHole).await;
}
