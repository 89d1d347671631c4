//! Interop with a real peer, at process level: a client written with the Python OpenTelemetry
//! SDK starts a span and calls the real `hello` binary over HTTP with the headers its
//! propagator injects (W3C `traceparent`, B3 single `b3`, B3 multi `X-B3-*`, Jaeger
//! `uber-trace-id`). `hello`'s server span must continue that trace: its JSON log lines for
//! the request carry `trace_id` = the Python trace id and `parent_span_id` = the Python span
//! id.
//!
//! The Python packages are required: when they are missing the test fails with the
//! `pip install` command (scripts/test.sh installs them). Nothing is skipped.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{Hello, eventually, spawn_hello};
use tokio::process::Command;

/// The command that installs the Python peers.
const PIP_INSTALL: &str = "python3 -m pip install opentelemetry-sdk opentelemetry-propagator-b3 \
                           opentelemetry-propagator-jaeger";

/// How long one Python client run may take on a busy 2-core machine (normally < 1 s).
const PYTHON_DEADLINE: Duration = Duration::from_secs(90);

/// How long hello may take to write a request's log lines after answering it.
const LOG_DEADLINE: Duration = Duration::from_secs(15);

/// The exit code the client uses when an OpenTelemetry module does not import.
const IMPORT_ERROR_EXIT: i32 = 3;

/// The Python client: `python3 -c CLIENT URL FORMAT REQUEST_ID`. It starts a sampled CLIENT
/// span with the SDK, injects it with the format's propagator, sends `GET URL` with urllib
/// (proxies off) and `x-request-id: REQUEST_ID`, and prints the span's ids, the injected
/// headers and the response as JSON.
const CLIENT: &str = r#"
import json
import sys
import urllib.request

try:
    from opentelemetry import trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.jaeger import JaegerPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as e:
    sys.stderr.write("cannot import the Python OpenTelemetry SDK: %s\n" % e)
    sys.exit(3)

url, fmt, request_id = sys.argv[1], sys.argv[2], sys.argv[3]
if fmt == "tracecontext":
    prop = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
else:
    prop = {"b3": B3SingleFormat, "b3multi": B3MultiFormat, "jaeger": JaegerPropagator}[fmt]()

provider = TracerProvider(sampler=ALWAYS_ON)
tracer = provider.get_tracer("python-interop-client")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with tracer.start_as_current_span("GET /hello/{name}", kind=trace.SpanKind.CLIENT) as span:
    headers = {}
    prop.inject(headers)
    sent = dict(headers)
    headers["x-request-id"] = request_id
    with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        status = resp.status
        body = resp.read().decode("utf-8")
    sc = span.get_span_context()
provider.shutdown()
json.dump(
    {
        "trace_id": trace.format_trace_id(sc.trace_id),
        "span_id": trace.format_span_id(sc.span_id),
        "sampled": sc.trace_flags.sampled,
        "headers": sent,
        "status": status,
        "body": body,
    },
    sys.stdout,
)
"#;

fn python() -> PathBuf {
    require_tool("python3", "apt-get install -y python3")
}

/// The path of a peer binary, or a panic naming the command that installs it (as
/// `ms-chassis`'s test support does; hello's support module has no such helper).
fn require_tool(bin: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{bin}` is required by this test but is not on PATH; install it with: {install}"
            )
        })
}

/// Runs the Python client against `url` with `format`'s headers and returns its JSON report.
async fn python_client(url: &str, format: &str, request_id: &str) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg("-c")
        .arg(CLIENT)
        .arg(url)
        .arg(format)
        .arg(request_id);
    // The SDK reads OTEL_* variables (OTEL_SDK_DISABLED would turn it into a no-op).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn python3");
    // kill_on_drop: if the deadline passes, dropping the future kills the child.
    let output = tokio::time::timeout(PYTHON_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("the Python client ({format}) did not exit within {PYTHON_DEADLINE:?}")
        })
        .expect("collect the Python client's output");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(IMPORT_ERROR_EXIT) {
        panic!(
            "the Python OpenTelemetry SDK is required by this test; install it with: \
             {PIP_INSTALL}\n{err}"
        );
    }
    assert!(
        output.status.success(),
        "the Python client ({format}) failed ({})\nstdout:\n{out}\nstderr:\n{err}",
        output.status
    );
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("the Python client printed no JSON ({e}):\n{out}\n{err}"))
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hello's JSON line with `message` and `request_id`, once it has been written.
async fn log_line(hello: &Hello, message: &str, request_id: &str) -> Value {
    eventually(
        LOG_DEADLINE,
        &format!("hello's {message:?} line for request {request_id}"),
        || async {
            hello
                .stdout_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == message && v["request_id"] == request_id)
                .ok_or_else(|| format!("stdout so far:\n{}", hello.stdout_text()))
        },
    )
    .await
}

/// The Python client calls `GET /hello/py` with `format`'s headers; hello's handler line and
/// access line for that request must carry the Python trace id, and the Python span as the
/// parent of hello's server span.
async fn python_trace_is_continued(hello: &Hello, format: &str, expect_headers: &[&str]) {
    let request_id = format!("python-interop-{format}-{}", std::process::id());
    let py = python_client(&hello.url("/hello/py"), format, &request_id).await;

    // The client did what we asked: a sampled span, these headers, a 200 from hello.
    let trace_id = py["trace_id"].as_str().expect("trace_id string").to_owned();
    let span_id = py["span_id"].as_str().expect("span_id string").to_owned();
    assert!(is_lower_hex(&trace_id, 32), "{py}");
    assert!(is_lower_hex(&span_id, 16), "{py}");
    assert_eq!(py["sampled"], true, "{py}");
    for name in expect_headers {
        assert!(
            py["headers"].get(*name).is_some_and(Value::is_string),
            "Python's {format} propagator did not send {name}: {py}"
        );
    }
    assert_eq!(py["status"], 200, "{py}");
    let body: Value = serde_json::from_str(py["body"].as_str().expect("body string"))
        .unwrap_or_else(|e| panic!("hello's body is not JSON ({e}): {py}"));
    assert_eq!(body["message"], "hello, py", "{py}");

    let context = format!(
        "Python sent {} (trace {trace_id}, span {span_id})",
        py["headers"]
    );
    for message in ["greeting someone by name", "request completed"] {
        let line = log_line(hello, message, &request_id).await;
        assert_eq!(
            line["trace_id"].as_str(),
            Some(trace_id.as_str()),
            "{format}: hello's {message:?} line does not continue the Python trace; \
             {context}\nline: {line}"
        );
        assert_eq!(
            line["parent_span_id"].as_str(),
            Some(span_id.as_str()),
            "{format}: hello's {message:?} line does not name the Python span as parent; \
             {context}\nline: {line}"
        );
        let own = line["span_id"].as_str().unwrap_or_default();
        assert!(
            is_lower_hex(own, 16) && own != span_id && own != "0000000000000000",
            "{format}: hello's {message:?} line needs its own server span id; {context}\n\
             line: {line}"
        );
    }
}

#[tokio::test]
async fn python_client_trace_is_continued_by_hello() {
    let hello = spawn_hello(&[("MS__LOGGING__ACCESS", "true")]).await;
    python_trace_is_continued(&hello, "tracecontext", &["traceparent"]).await;
    python_trace_is_continued(&hello, "b3", &["b3"]).await;
    python_trace_is_continued(&hello, "b3multi", &["x-b3-traceid", "x-b3-spanid"]).await;
    python_trace_is_continued(&hello, "jaeger", &["uber-trace-id"]).await;
    // hello is killed when `hello` drops.
}
