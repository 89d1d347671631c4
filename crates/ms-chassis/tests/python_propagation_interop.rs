//! Interop with a real peer: the Python OpenTelemetry SDK (PyPI `opentelemetry-sdk`,
//! `opentelemetry-propagator-b3`, `opentelemetry-propagator-jaeger`), in both directions, for
//! W3C Trace Context + Baggage, B3 single, B3 multi and Jaeger.
//!
//! - Python → Rust: a Python script starts a span with the SDK's `TracerProvider` (sampled and
//!   not), injects it with the Python propagator for the format, and prints the headers and the
//!   ids it used. We extract them with our [`Propagation`] and compare.
//! - Rust → Python: we inject span contexts with random ids using our [`Propagation`] for one
//!   format, hand the headers to a Python script on stdin, and compare the ids, sampled flag,
//!   `tracestate` and baggage that the Python propagator extracts.
//!
//! The Python packages are required: when they are missing the test fails with the
//! `pip install` command (scripts/test.sh installs them). Nothing is skipped.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use ms_chassis::telemetry::propagation::{
    Propagation, PropagationFormat, SamplingState, sampling_state,
};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use serde_json::{Value, json};

/// The command that installs the Python peers.
const PIP_INSTALL: &str = "python3 -m pip install opentelemetry-sdk opentelemetry-propagator-b3 \
                           opentelemetry-propagator-jaeger";

/// How long one Python run may take on a busy 2-core machine (it normally takes < 1 s).
const PYTHON_DEADLINE: Duration = Duration::from_secs(90);

/// The exit code the script uses when an OpenTelemetry module does not import.
const IMPORT_ERROR_EXIT: i32 = 3;

/// The Python peer, run with `python3 -c PEER {inject|extract} {format}`. It reads a JSON list
/// of cases on stdin and prints a JSON list of results, one per case.
///
/// - `inject`: a case is `{"sampled": bool, "baggage": {..}, "remote_parent": {"trace_id",
///   "span_id", "tracestate": {..}}}` (all but `sampled` optional). The script starts a parent
///   span and a child span with a `TracerProvider` whose sampler is `ALWAYS_ON` or
///   `ALWAYS_OFF`, injects the child with the format's propagator, and prints the headers and
///   the child's ids.
/// - `extract`: a case is `{"headers": {..}}`. The script extracts with the format's propagator
///   and prints the ids, flags, `tracestate` and baggage it found.
const PEER: &str = r#"
import json
import sys

try:
    from opentelemetry import baggage, context, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.jaeger import JaegerPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as e:
    sys.stderr.write("cannot import the Python OpenTelemetry SDK: %s\n" % e)
    sys.exit(3)


def propagator(fmt):
    if fmt == "tracecontext":
        return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    return {"b3": B3SingleFormat, "b3multi": B3MultiFormat, "jaeger": JaegerPropagator}[fmt]()


def describe(sc):
    return {
        "valid": sc.is_valid,
        "remote": sc.is_remote,
        "trace_id": trace.format_trace_id(sc.trace_id),
        "span_id": trace.format_span_id(sc.span_id),
        "sampled": sc.trace_flags.sampled,
        "tracestate": sc.trace_state.to_header(),
    }


def inject(prop, case):
    provider = TracerProvider(sampler=ALWAYS_ON if case["sampled"] else ALWAYS_OFF)
    tracer = provider.get_tracer("ms-chassis-interop")
    ctx = context.Context()
    for key, value in case.get("baggage", {}).items():
        ctx = baggage.set_baggage(key, value, ctx)
    parent = case.get("remote_parent")
    if parent is not None:
        remote = trace.SpanContext(
            trace_id=int(parent["trace_id"], 16),
            span_id=int(parent["span_id"], 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(1 if case["sampled"] else 0),
            trace_state=trace.TraceState(list(parent.get("tracestate", {}).items())),
        )
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote), ctx)
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("client-parent"):
            with tracer.start_as_current_span("client-call") as span:
                headers = {}
                prop.inject(headers)
                sc = span.get_span_context()
    finally:
        context.detach(token)
        provider.shutdown()
    out = describe(sc)
    out["headers"] = headers
    return out


def extract(prop, case):
    ctx = prop.extract(case["headers"])
    out = describe(trace.get_current_span(ctx).get_span_context())
    out["baggage"] = {k: str(v) for k, v in baggage.get_all(ctx).items()}
    return out


mode, fmt = sys.argv[1], sys.argv[2]
prop = propagator(fmt)
cases = json.load(sys.stdin)
run = inject if mode == "inject" else extract
json.dump([run(prop, case) for case in cases], sys.stdout)
"#;

/// Kills and reaps the child when dropped, including on panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = from.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs the Python peer in `mode` for `format` with `cases` on stdin and returns its results,
/// one per case. Panics with the install command when the SDK does not import.
fn run_peer(mode: &str, format: &str, cases: &[Value]) -> Vec<Value> {
    let python = support::require_tool("python3", "apt-get install -y python3");
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(PEER).arg(mode).arg(format);
    // The SDK reads OTEL_* variables (OTEL_SDK_DISABLED would turn it into a no-op).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("spawn python3"));
    let stdout = read_all(child.0.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.0.stderr.take().expect("stderr is piped"));
    {
        let mut stdin = child.0.stdin.take().expect("stdin is piped");
        let input = serde_json::to_vec(cases).expect("cases serialize");
        stdin
            .write_all(&input)
            .expect("write the cases to python's stdin");
        // Dropping stdin closes it, so the script sees end of input.
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("query python's status") {
            break status;
        }
        assert!(
            start.elapsed() < PYTHON_DEADLINE,
            "the Python peer ({mode} {format}) did not exit within {PYTHON_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = stdout.join().expect("stdout reader");
    let err = stderr.join().expect("stderr reader");
    if status.code() == Some(IMPORT_ERROR_EXIT) {
        panic!(
            "the Python OpenTelemetry SDK is required by this test; install it with: \
             {PIP_INSTALL}\n{err}"
        );
    }
    assert!(
        status.success(),
        "the Python peer ({mode} {format}) failed ({status})\nstdout:\n{out}\nstderr:\n{err}"
    );
    let results: Vec<Value> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("the Python peer printed no JSON list ({e}):\n{out}\n{err}"));
    assert_eq!(
        results.len(),
        cases.len(),
        "one result per case: {results:?}"
    );
    results
}

fn random_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

fn random_span_id() -> SpanId {
    RandomIdGenerator::default().new_span_id()
}

/// A random trace id whose high 64 bits are zero: a 64-bit B3 or Jaeger trace id.
fn random_64_bit_trace_id() -> TraceId {
    TraceId::from(u128::from(u64::from_be_bytes(random_span_id().to_bytes())))
}

fn trace_id_of(v: &Value, what: &str) -> TraceId {
    let hex = v[what]
        .as_str()
        .unwrap_or_else(|| panic!("no {what} in {v}"));
    TraceId::from_hex(hex).unwrap_or_else(|e| panic!("{what} {hex:?} is not hex: {e:?}"))
}

fn span_id_of(v: &Value, what: &str) -> SpanId {
    let hex = v[what]
        .as_str()
        .unwrap_or_else(|| panic!("no {what} in {v}"));
    SpanId::from_hex(hex).unwrap_or_else(|e| panic!("{what} {hex:?} is not hex: {e:?}"))
}

fn bool_of(v: &Value, what: &str) -> bool {
    v[what]
        .as_bool()
        .unwrap_or_else(|| panic!("no boolean {what} in {v}"))
}

/// The headers a Python result carries, as an `http::HeaderMap`.
fn header_map(v: &Value) -> HeaderMap {
    let obj = v["headers"]
        .as_object()
        .unwrap_or_else(|| panic!("no headers object in {v}"));
    let mut map = HeaderMap::new();
    for (name, value) in obj {
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("header {name} is not a string in {v}"));
        map.append(
            HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("Python wrote an invalid header name {name:?}: {e}")),
            HeaderValue::from_str(value).unwrap_or_else(|e| {
                panic!("Python wrote an invalid value for {name}: {value:?}: {e}")
            }),
        );
    }
    map
}

/// A header map as a JSON object of name → value (each name appears once when injecting).
fn headers_json(map: &HeaderMap) -> Value {
    let mut obj = serde_json::Map::new();
    for name in map.keys() {
        let values: Vec<&str> = map
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("injected headers are visible ASCII"))
            .collect();
        assert_eq!(
            values.len(),
            1,
            "{name} was injected more than once: {map:?}"
        );
        obj.insert(name.as_str().to_owned(), Value::from(values[0]));
    }
    Value::Object(obj)
}

fn baggage_of(cx: &Context) -> BTreeMap<String, String> {
    cx.baggage()
        .iter()
        .map(|(k, (v, _))| (k.as_str().to_owned(), v.as_str().to_owned()))
        .collect()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The header names each format writes for a span without baggage.
fn identity_headers(format: PropagationFormat) -> &'static [&'static str] {
    match format {
        PropagationFormat::TraceContext => &["traceparent"],
        PropagationFormat::Baggage => &[],
        PropagationFormat::B3 => &["b3"],
        PropagationFormat::B3Multi => &["x-b3-traceid", "x-b3-spanid"],
        PropagationFormat::Jaeger => &["uber-trace-id"],
    }
}

/// Baggage values both SDKs encode and decode alike: a dotted key, non-ASCII text and a
/// slash, and the W3C delimiters `,`, `;` and `=` (which both sides percent-encode).
fn portable_baggage() -> BTreeMap<String, String> {
    [
        ("user.id", "u-42"),
        ("tenant", "zürich/eu-1"),
        ("tags", "a,b;c=d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Python → Rust
// ---------------------------------------------------------------------------------------------

/// A remote parent for a Python span: trace id, span id and `tracestate` entries.
type RemoteParent = (TraceId, SpanId, Vec<(String, String)>);

/// What a Python → Rust case asks for, and what we then expect.
struct PyCase {
    sampled: bool,
    baggage: BTreeMap<String, String>,
    /// A remote parent (trace id, span id, tracestate entries) the Python span continues.
    remote_parent: Option<RemoteParent>,
}

impl PyCase {
    fn to_json(&self) -> Value {
        let mut case = json!({ "sampled": self.sampled, "baggage": self.baggage });
        if let Some((trace, span, state)) = &self.remote_parent {
            let state: serde_json::Map<String, Value> = state
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            case["remote_parent"] = json!({
                "trace_id": trace.to_string(),
                "span_id": span.to_string(),
                "tracestate": state,
            });
        }
        case
    }
}

/// Python injects each case in `format`; our propagator must extract the same ids, sampled
/// flag, `tracestate` and baggage.
fn python_to_rust(format: PropagationFormat, cases: &[PyCase]) {
    let input: Vec<Value> = cases.iter().map(PyCase::to_json).collect();
    let results = run_peer("inject", format.as_str(), &input);
    let ours = Propagation::new(&[format]);
    for (case, py) in cases.iter().zip(&results) {
        let headers = header_map(py);
        for name in identity_headers(format) {
            assert!(
                headers.contains_key(*name),
                "Python's {format} propagator did not write {name}: {py}"
            );
        }
        let py_trace = trace_id_of(py, "trace_id");
        let py_span = span_id_of(py, "span_id");
        assert!(bool_of(py, "valid"), "Python made an invalid span: {py}");
        assert_eq!(
            bool_of(py, "sampled"),
            case.sampled,
            "Python's sampler did not do as asked: {py}"
        );
        if let Some((trace, _, _)) = &case.remote_parent {
            assert_eq!(
                py_trace, *trace,
                "Python's span did not continue its parent: {py}"
            );
        }

        let cx = ours.extract_headers(&headers);
        let span = cx.span();
        let sc = span.span_context();
        let ctx = format!("{format}, Python headers {}", py["headers"]);
        assert!(sc.is_valid(), "no valid span context from {ctx}");
        assert!(sc.is_remote(), "extracted context is not remote: {ctx}");
        assert_eq!(sc.trace_id(), py_trace, "trace id from {ctx}");
        assert_eq!(sc.span_id(), py_span, "span id from {ctx}");
        assert_eq!(sc.is_sampled(), case.sampled, "sampled flag from {ctx}");
        assert_eq!(baggage_of(&cx), case.baggage, "baggage from {ctx}");

        match format {
            PropagationFormat::TraceContext | PropagationFormat::Baggage => {
                let py_state = py["tracestate"].as_str().expect("tracestate string");
                assert_eq!(sc.trace_state().header(), py_state, "tracestate from {ctx}");
                if let Some((_, _, entries)) = &case.remote_parent {
                    for (k, v) in entries {
                        assert_eq!(sc.trace_state().get(k), Some(v.as_str()), "{k} in {ctx}");
                    }
                }
                assert_eq!(sampling_state(&cx), None, "no B3 marker after W3C: {ctx}");
            }
            PropagationFormat::B3 | PropagationFormat::B3Multi | PropagationFormat::Jaeger => {
                let state = sampling_state(&cx);
                if case.sampled {
                    // Python's Jaeger propagator sets the debug bit (flags 03) on every
                    // sampled span, which we read as Debug; B3 sends a plain accept.
                    assert!(
                        matches!(state, Some(SamplingState::Accept | SamplingState::Debug)),
                        "sampling state {state:?} from {ctx}"
                    );
                } else {
                    assert_eq!(
                        state,
                        Some(SamplingState::Deny),
                        "sampling state from {ctx}"
                    );
                }
            }
        }
    }
}

/// Sampled and unsampled spans with fresh 128-bit trace ids, and a sampled span continuing a
/// remote parent with a 64-bit trace id.
fn python_cases(baggage: &BTreeMap<String, String>) -> Vec<PyCase> {
    vec![
        PyCase {
            sampled: true,
            baggage: baggage.clone(),
            remote_parent: None,
        },
        PyCase {
            sampled: false,
            baggage: baggage.clone(),
            remote_parent: None,
        },
        PyCase {
            sampled: true,
            baggage: BTreeMap::new(),
            remote_parent: Some((random_64_bit_trace_id(), random_span_id(), Vec::new())),
        },
    ]
}

#[test]
fn python_w3c_tracecontext_and_baggage_are_extracted() {
    let mut cases = python_cases(&portable_baggage());
    // A remote parent carrying `tracestate`, which the Python span inherits and sends on.
    for sampled in [true, false] {
        cases.push(PyCase {
            sampled,
            baggage: portable_baggage(),
            remote_parent: Some((
                random_trace_id(),
                random_span_id(),
                vec![
                    ("congo".to_owned(), "t61rcWkgMzE".to_owned()),
                    ("rojo".to_owned(), "00f067aa0ba902b7".to_owned()),
                ],
            )),
        });
    }
    python_to_rust(PropagationFormat::TraceContext, &cases);
}

#[test]
fn python_b3_single_header_is_extracted() {
    python_to_rust(PropagationFormat::B3, &python_cases(&BTreeMap::new()));
}

#[test]
fn python_b3_multi_headers_are_extracted() {
    python_to_rust(PropagationFormat::B3Multi, &python_cases(&BTreeMap::new()));
}

#[test]
fn python_jaeger_uber_trace_id_and_uberctx_baggage_are_extracted() {
    let mut cases = python_cases(&portable_baggage());
    // An unsampled span that continues a remote parent inherits the parent's flags (00), so
    // Python sends `...:00`. (An unsampled *root* span is in the next test.)
    cases[1].remote_parent = Some((random_trace_id(), random_span_id(), Vec::new()));
    python_to_rust(PropagationFormat::Jaeger, &cases);
}

/// Python 1.45 sets the W3C Trace Context Level 2 "random trace id" flag (0x02) on every
/// root span it creates, and its Jaeger propagator copies the trace flags into
/// `uber-trace-id` as they are, where 0x02 is the Jaeger *debug* bit. An unsampled Python
/// root span therefore goes out as `{trace}:{span}:0000000000000000:02`. Python's own
/// extractor (like the OpenTelemetry Go one) reads only bit 0x01: not sampled. We must agree,
/// or an unsampled Python trace becomes sampled (and debug) in our service.
#[test]
fn python_jaeger_unsampled_root_span_stays_unsampled() {
    python_to_rust(
        PropagationFormat::Jaeger,
        &[PyCase {
            sampled: false,
            baggage: portable_baggage(),
            remote_parent: None,
        }],
    );
}

// ---------------------------------------------------------------------------------------------
// Rust → Python
// ---------------------------------------------------------------------------------------------

/// A context we inject, and what Python must find in it.
struct RustCase {
    cx: Context,
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    baggage: BTreeMap<String, String>,
    tracestate: String,
}

fn rust_case(
    trace_id: TraceId,
    sampled: bool,
    baggage: &BTreeMap<String, String>,
    tracestate: &str,
) -> RustCase {
    let span_id = random_span_id();
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    let state: TraceState = tracestate.parse().expect("valid tracestate");
    let sc = SpanContext::new(trace_id, span_id, flags, true, state);
    let cx = Context::new().with_remote_span_context(sc).with_baggage(
        baggage
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    RustCase {
        cx,
        trace_id,
        span_id,
        sampled,
        baggage: baggage.clone(),
        tracestate: tracestate.to_owned(),
    }
}

/// A sampled context whose B3/Jaeger sampling state is Debug, made the only public way: by
/// extracting `header: value` with our propagator.
fn debug_case(header: &str, value: String, trace_id: TraceId, span_id: SpanId) -> RustCase {
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_bytes(header.as_bytes()).expect("header name"),
        HeaderValue::from_str(&value).expect("header value"),
    );
    let cx = Propagation::default().extract_headers(&map);
    assert_eq!(sampling_state(&cx), Some(SamplingState::Debug), "{value}");
    RustCase {
        cx,
        trace_id,
        span_id,
        sampled: true,
        baggage: BTreeMap::new(),
        tracestate: String::new(),
    }
}

/// Sampled and unsampled random contexts (with `baggage`), and a sampled one with a 64-bit
/// trace id.
fn rust_cases(baggage: &BTreeMap<String, String>) -> Vec<RustCase> {
    vec![
        rust_case(random_trace_id(), true, baggage, ""),
        rust_case(random_trace_id(), false, baggage, ""),
        rust_case(random_64_bit_trace_id(), true, &BTreeMap::new(), ""),
    ]
}

/// We inject each case with a propagator configured for `formats`; Python's propagator for
/// `python_format` must extract the same ids, sampled flag, `tracestate` and baggage.
fn rust_to_python(formats: &[PropagationFormat], python_format: &str, cases: &[RustCase]) {
    let ours = Propagation::new(formats);
    let mut input = Vec::new();
    for case in cases {
        let mut map = HeaderMap::new();
        ours.inject_headers(&case.cx, &mut map);
        for name in formats.iter().flat_map(|f| identity_headers(*f)) {
            assert!(map.contains_key(*name), "we did not write {name}: {map:?}");
        }
        input.push(json!({ "headers": headers_json(&map) }));
    }
    let results = run_peer("extract", python_format, &input);
    for ((case, sent), py) in cases.iter().zip(&input).zip(&results) {
        let ctx = format!(
            "{python_format}: our headers {} gave Python {py}",
            sent["headers"]
        );
        assert!(bool_of(py, "valid"), "Python found no valid span: {ctx}");
        assert!(bool_of(py, "remote"), "Python's span is not remote: {ctx}");
        assert_eq!(
            trace_id_of(py, "trace_id"),
            case.trace_id,
            "trace id, {ctx}"
        );
        assert_eq!(span_id_of(py, "span_id"), case.span_id, "span id, {ctx}");
        assert_eq!(bool_of(py, "sampled"), case.sampled, "sampled, {ctx}");
        assert_eq!(
            py["tracestate"].as_str(),
            Some(case.tracestate.as_str()),
            "tracestate, {ctx}"
        );
        assert_eq!(string_map(&py["baggage"]), case.baggage, "baggage, {ctx}");
    }
}

#[test]
fn our_w3c_tracecontext_and_baggage_are_extracted_by_python() {
    let mut cases = rust_cases(&portable_baggage());
    cases.push(rust_case(
        random_trace_id(),
        true,
        &portable_baggage(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    ));
    cases.push(rust_case(
        random_trace_id(),
        false,
        &BTreeMap::new(),
        "vendor@tenant=opaque-value",
    ));
    rust_to_python(
        &[PropagationFormat::TraceContext, PropagationFormat::Baggage],
        "tracecontext",
        &cases,
    );
}

#[test]
fn our_b3_single_header_is_extracted_by_python() {
    let mut cases = rust_cases(&BTreeMap::new());
    let (trace, span) = (random_trace_id(), random_span_id());
    cases.push(debug_case("b3", format!("{trace}-{span}-d"), trace, span));
    rust_to_python(&[PropagationFormat::B3], "b3", &cases);
}

#[test]
fn our_b3_multi_headers_are_extracted_by_python() {
    let mut cases = rust_cases(&BTreeMap::new());
    let (trace, span) = (random_trace_id(), random_span_id());
    cases.push(debug_case("b3", format!("{trace}-{span}-d"), trace, span));
    // What Python has to read: `X-B3-Sampled` for accept and deny, and `X-B3-Flags: 1`
    // alone (debug implies sampled) for the debug case.
    let ours = Propagation::new(&[PropagationFormat::B3Multi]);
    for (case, (sampled, flags)) in cases.iter().zip([
        (Some("1"), None),
        (Some("0"), None),
        (Some("1"), None),
        (None, Some("1")),
    ]) {
        let mut map = HeaderMap::new();
        ours.inject_headers(&case.cx, &mut map);
        let get = |name: &str| map.get(name).map(|v| v.to_str().expect("ASCII"));
        assert_eq!(get("x-b3-sampled"), sampled, "{map:?}");
        assert_eq!(get("x-b3-flags"), flags, "{map:?}");
    }
    rust_to_python(&[PropagationFormat::B3Multi], "b3multi", &cases);
}

#[test]
fn our_jaeger_uber_trace_id_and_uberctx_baggage_are_extracted_by_python() {
    let mut cases = rust_cases(&portable_baggage());
    let (trace, span) = (random_trace_id(), random_span_id());
    // Debug goes out as flags `03`; Python reads the sampled bit.
    cases.push(debug_case(
        "uber-trace-id",
        format!("{trace}:{span}:0:3"),
        trace,
        span,
    ));
    rust_to_python(&[PropagationFormat::Jaeger], "jaeger", &cases);
}

// ---------------------------------------------------------------------------------------------
// Baggage values that need escaping: a space, a plus, a percent sign and something that looks
// like an escape. Both SDKs must hand the application the value the sender set.
// ---------------------------------------------------------------------------------------------

fn escaped_baggage() -> BTreeMap<String, String> {
    [
        ("space", "acme corp"),
        ("plus", "a+b"),
        ("percent", "100%"),
        ("escape", "%41"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Python's `W3CBaggagePropagator` encodes with `quote_plus`, so a space goes out as a
/// bare `+`, which W3C Baggage defines as a literal plus; we follow the spec and read
/// `acme+corp` (Go and JavaScript peers send `%20`). Every other value, including a real
/// `+` (Python sends `%2B`) and `%`, must arrive intact.
#[test]
fn python_w3c_baggage_with_plus_and_percent_is_extracted() {
    let mut baggage = escaped_baggage();
    baggage.remove("space");
    python_to_rust(
        PropagationFormat::TraceContext,
        &[PyCase {
            sampled: true,
            baggage,
            remote_parent: None,
        }],
    );
}

#[test]
fn our_w3c_baggage_with_space_plus_and_percent_is_extracted_by_python() {
    rust_to_python(
        &[PropagationFormat::TraceContext, PropagationFormat::Baggage],
        "tracecontext",
        &[rust_case(random_trace_id(), true, &escaped_baggage(), "")],
    );
}

#[test]
fn python_jaeger_baggage_with_space_plus_and_percent_is_extracted() {
    python_to_rust(
        PropagationFormat::Jaeger,
        &[PyCase {
            sampled: true,
            baggage: escaped_baggage(),
            remote_parent: None,
        }],
    );
}

#[test]
fn our_jaeger_baggage_with_space_plus_and_percent_is_extracted_by_python() {
    rust_to_python(
        &[PropagationFormat::Jaeger],
        "jaeger",
        &[rust_case(random_trace_id(), true, &escaped_baggage(), "")],
    );
}
