//! The OTLP exporter: a request's sampled server span goes from a compact record on the
//! request to protobuf bytes without becoming an SDK span; every other span (the user's
//! `tracing` spans, client spans) comes from the SDK through [`QueueProcessor`] into the
//! same bounded queue, and goes out in the same export requests.
//!
//! Why: through the SDK's pipeline a sampled span cost about 6.7 µs of service CPU, and
//! callgrind put nearly half of it in allocation (bench/README.md, "Span CPU accounting"):
//! the span was built three times, as an SDK span, as `SpanData` and as
//! `opentelemetry-proto` messages, with an owned copy of every value each time. Here the
//! record ([`ServerSpan`]: ids, times, static strings, the route's shared template and one
//! `String` for the copied values) is pushed into a mutex-guarded `Vec` that the exporter
//! thread swaps out whole, and encoded with prost's wire primitives straight from the
//! record. That encoder is hand-written because prost's generated messages need an owned
//! `String` or `Vec` per field, the very copies we avoid; the field numbers are
//! `opentelemetry-proto`'s, and a test decodes the output with its types. SDK spans use
//! `opentelemetry-proto`'s own transform. gRPC goes through tonic (with a pass-through
//! codec for the encoded bytes), HTTP/protobuf through reqwest, both on the exporter's own
//! thread and single-threaded runtime, so that no export work and no dead collector ever
//! reaches the request workers. `OTEL_BSP_SCHEDULE_DELAY` and
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` keep their meaning.
//!
//! A consequence: attributes that code sets on the server span through the OpenTelemetry
//! context (`Context::current().span().set_attribute`) are not recorded with this exporter,
//! since the server span is not an SDK span; spans opened with `tracing` are unaffected.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::MatchedPath;
use bytes::{BufMut, Bytes};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceState};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use prost::Message as _;
use prost::encoding::{WireType, encoded_len_varint, key_len};

use super::export_queue::SpanCounters;

/// The server span of one sampled request: what the OTLP span needs, nothing more.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    /// All zero for a root span.
    pub(crate) parent_span_id: [u8; 8],
    pub(crate) parent_is_remote: bool,
    pub(crate) trace_flags: u8,
    pub(crate) trace_state: TraceState,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    /// The span name's method (`GET`, or `HTTP` for an unknown one).
    pub(crate) span_method: &'static str,
    /// `http.request.method` (`_OTHER` for an unknown one).
    pub(crate) method: &'static str,
    pub(crate) route: Option<MatchedPath>,
    pub(crate) scheme: &'static str,
    pub(crate) protocol_version: Option<&'static str>,
    pub(crate) server_port: Option<u16>,
    /// The copied values, one after another; `ends` marks where each stops.
    pub(crate) text: String,
    pub(crate) ends: [u32; TEXT_FIELDS],
    /// The response status, set at the end; 0 until then.
    pub(crate) status: u16,
    /// Its three digits, for `error.type`.
    status_digits: [u8; 3],
}

/// The copied values of a [`ServerSpan`], in the order they sit in its `text`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TextField {
    /// `url.path`.
    Path = 0,
    /// `url.scheme` when it is not `http` or `https` (then `scheme` is empty).
    OtherScheme,
    /// `http.request.method_original`, for an unknown method.
    MethodOriginal,
    /// `server.address`.
    ServerAddress,
    /// `client.address`.
    ClientAddress,
    /// `user_agent.original`.
    UserAgent,
}

pub(crate) const TEXT_FIELDS: usize = 6;

impl ServerSpan {
    /// A record with its ids and start time, no values yet.
    pub(crate) fn new(sc: &SpanContext, parent: &SpanContext, text_capacity: usize) -> Self {
        Self {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            parent_span_id: if parent.is_valid() {
                parent.span_id().to_bytes()
            } else {
                [0; 8]
            },
            parent_is_remote: parent.is_valid() && parent.is_remote(),
            trace_flags: sc.trace_flags().to_u8(),
            trace_state: sc.trace_state().clone(),
            start_ns: now_ns(),
            end_ns: 0,
            span_method: "",
            method: "",
            route: None,
            scheme: "http",
            protocol_version: None,
            server_port: None,
            text: String::with_capacity(text_capacity),
            ends: [0; TEXT_FIELDS],
            status: 0,
            status_digits: [b'0'; 3],
        }
    }

    /// Appends `field`'s value; fields must be set in order, each at most once.
    pub(crate) fn set(&mut self, field: TextField, value: &str) {
        self.text.push_str(value);
        self.mark(field);
    }

    /// Appends an IP address as `field`'s value, IPv4 without the formatting machinery.
    pub(crate) fn set_ip(&mut self, field: TextField, ip: std::net::IpAddr) {
        match ip {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.text.push('.');
                    }
                    if octet >= 100 {
                        self.text.push(char::from(b'0' + octet / 100));
                    }
                    if octet >= 10 {
                        self.text.push(char::from(b'0' + octet / 10 % 10));
                    }
                    self.text.push(char::from(b'0' + octet % 10));
                }
            }
            std::net::IpAddr::V6(v6) => {
                let _ = write!(self.text, "{v6}");
            }
        }
        self.mark(field);
    }

    fn mark(&mut self, field: TextField) {
        let end = self.text.len() as u32;
        for e in &mut self.ends[field as usize..] {
            *e = end;
        }
    }

    fn text(&self, field: TextField) -> Option<&str> {
        let i = field as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        // An empty value is only ever an unset one: a path, an address or a user agent is
        // never empty when set (the path is at least `/`).
        (end > start).then(|| &self.text[start..end])
    }

    /// Ends the span with the response status.
    pub(crate) fn finish(&mut self, status: u16) {
        self.end_ns = now_ns().max(self.start_ns);
        self.status = status;
        let s = status.min(999);
        self.status_digits = [
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
        ];
    }

    /// The attributes, as the HTTP semantic conventions name them (see `otel::server_span`).
    fn attributes(&self) -> [(&'static str, Option<Value<'_>>); ATTRIBUTES] {
        let text = |f| self.text(f).map(Value::Str);
        let scheme = if self.scheme.is_empty() {
            text(TextField::OtherScheme)
        } else {
            Some(Value::Str(self.scheme))
        };
        let error_type = (500..600)
            .contains(&self.status)
            .then(|| {
                std::str::from_utf8(&self.status_digits)
                    .ok()
                    .map(Value::Str)
            })
            .flatten();
        [
            (
                "http.route",
                self.route.as_ref().map(|r| Value::Str(r.as_str())),
            ),
            (
                "http.request.method_original",
                text(TextField::MethodOriginal),
            ),
            ("http.request.method", Some(Value::Str(self.method))),
            ("url.path", text(TextField::Path)),
            ("url.scheme", scheme),
            (
                "network.protocol.version",
                self.protocol_version.map(Value::Str),
            ),
            ("server.address", text(TextField::ServerAddress)),
            (
                "server.port",
                self.server_port.map(|p| Value::Int(i64::from(p))),
            ),
            ("client.address", text(TextField::ClientAddress)),
            ("user_agent.original", text(TextField::UserAgent)),
            (
                "http.response.status_code",
                Some(Value::Int(i64::from(self.status))),
            ),
            ("error.type", error_type),
        ]
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

const ATTRIBUTES: usize = 12;

/// An attribute value of a server span.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Str(&'a str),
    Int(i64),
}

// Field numbers of opentelemetry/proto/trace/v1/trace.proto and common.proto.
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_VALUE_STRING: u32 = 1;
const ANY_VALUE_INT: u32 = 3;
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const RESOURCE_SPANS_SCHEMA_URL: u32 = 3;
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
const REQUEST_RESOURCE_SPANS: u32 = 1;
const SPAN_KIND_SERVER: u64 = 2;
const STATUS_CODE_ERROR: u64 = 2;
/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`.
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const FLAGS_IS_REMOTE: u32 = 0x200;

fn len_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

// Writers for a `Vec<u8>` that prost's generic `encode_key` and `encode_varint` (for any
// `BufMut`) do not inline to: nearly every varint here is one byte.
#[inline]
fn put_varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn put_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

#[inline]
fn put_len_field(tag: u32, len: usize, buf: &mut Vec<u8>) {
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(len as u64, buf);
}

#[inline]
fn put_bytes(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    put_len_field(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

fn any_value_len(v: Value<'_>) -> usize {
    match v {
        Value::Str(s) => len_field_len(ANY_VALUE_STRING, s.len()),
        Value::Int(i) => key_len(ANY_VALUE_INT) + encoded_len_varint(i as u64),
    }
}

fn key_value_len(k: &str, v: Value<'_>) -> usize {
    len_field_len(KEY_VALUE_KEY, k.len()) + len_field_len(KEY_VALUE_VALUE, any_value_len(v))
}

/// The span's status message: the reason phrase of a server error, as before.
fn status_message(status: u16) -> Option<&'static str> {
    let s = http::StatusCode::from_u16(status).ok()?;
    s.is_server_error()
        .then(|| s.canonical_reason().unwrap_or("server error"))
}

fn status_len(status: u16) -> usize {
    match status_message(status) {
        Some(m) => len_field_len(STATUS_MESSAGE, m.len()) + key_len(STATUS_CODE) + 1,
        None => 0,
    }
}

/// Writes `s` as an OTLP `Span` message, with its tag and length, as field
/// `ScopeSpans.spans`. The attributes are gathered once, their lengths computed once.
fn put_span(s: &ServerSpan, buf: &mut Vec<u8>) {
    let trace_state = if s.trace_state == TraceState::NONE {
        String::new()
    } else {
        s.trace_state.header()
    };
    let attrs = s.attributes();
    let mut kv_lens = [0usize; ATTRIBUTES];
    let name_len = s.span_method.len() + s.route.as_ref().map_or(0, |r| 1 + r.as_str().len());
    let mut len = len_field_len(SPAN_TRACE_ID, 16) + len_field_len(SPAN_SPAN_ID, 8);
    if !trace_state.is_empty() {
        len += len_field_len(SPAN_TRACE_STATE, trace_state.len());
    }
    let has_parent = s.parent_span_id != [0; 8];
    if has_parent {
        len += len_field_len(SPAN_PARENT_SPAN_ID, 8);
    }
    len += len_field_len(SPAN_NAME, name_len);
    len += key_len(SPAN_KIND) + 1;
    len += 2 * (key_len(SPAN_START) + 8);
    for ((k, v), kv_len) in attrs.iter().zip(kv_lens.iter_mut()) {
        if let Some(v) = v {
            *kv_len = key_value_len(k, *v);
            len += len_field_len(SPAN_ATTRIBUTES, *kv_len);
        }
    }
    let status_len = status_len(s.status);
    len += len_field_len(SPAN_STATUS, status_len);
    len += key_len(SPAN_FLAGS) + 4;

    buf.reserve(len + 4);
    put_len_field(SCOPE_SPANS_SPANS, len, buf);
    let start = buf.len();
    put_bytes(SPAN_TRACE_ID, &s.trace_id, buf);
    put_bytes(SPAN_SPAN_ID, &s.span_id, buf);
    if !trace_state.is_empty() {
        put_bytes(SPAN_TRACE_STATE, trace_state.as_bytes(), buf);
    }
    if has_parent {
        put_bytes(SPAN_PARENT_SPAN_ID, &s.parent_span_id, buf);
    }
    put_len_field(SPAN_NAME, name_len, buf);
    buf.put_slice(s.span_method.as_bytes());
    if let Some(r) = &s.route {
        buf.put_u8(b' ');
        buf.put_slice(r.as_str().as_bytes());
    }
    put_key(SPAN_KIND, WireType::Varint, buf);
    put_varint(SPAN_KIND_SERVER, buf);
    put_key(SPAN_START, WireType::SixtyFourBit, buf);
    buf.put_u64_le(s.start_ns);
    put_key(SPAN_END, WireType::SixtyFourBit, buf);
    buf.put_u64_le(s.end_ns);
    for ((k, v), kv_len) in attrs.iter().zip(kv_lens) {
        let Some(v) = v else { continue };
        put_len_field(SPAN_ATTRIBUTES, kv_len, buf);
        put_bytes(KEY_VALUE_KEY, k.as_bytes(), buf);
        put_len_field(KEY_VALUE_VALUE, any_value_len(*v), buf);
        match *v {
            Value::Str(s) => put_bytes(ANY_VALUE_STRING, s.as_bytes(), buf),
            Value::Int(i) => {
                put_key(ANY_VALUE_INT, WireType::Varint, buf);
                put_varint(i as u64, buf);
            }
        }
    }
    put_len_field(SPAN_STATUS, status_len, buf);
    if let Some(m) = status_message(s.status) {
        put_bytes(STATUS_MESSAGE, m.as_bytes(), buf);
        put_key(STATUS_CODE, WireType::Varint, buf);
        put_varint(STATUS_CODE_ERROR, buf);
    }
    let mut flags = u32::from(s.trace_flags) | FLAGS_HAS_IS_REMOTE;
    if s.parent_is_remote {
        flags |= FLAGS_IS_REMOTE;
    }
    put_key(SPAN_FLAGS, WireType::ThirtyTwoBit, buf);
    buf.put_u32_le(flags);
    debug_assert_eq!(buf.len() - start, len, "span length");
}

/// What every export request repeats: the resource and the server spans' scope, encoded
/// once.
#[derive(Debug)]
struct Preamble {
    resource: ResourceAttributesWithSchema,
    /// `Resource` message bytes.
    resource_bytes: Vec<u8>,
    /// `InstrumentationScope` message bytes of the chassis's tracer.
    scope_bytes: Vec<u8>,
}

impl Preamble {
    fn new(resource: &Resource) -> Self {
        let resource = ResourceAttributesWithSchema::from(resource);
        let resource_bytes = ProtoResource {
            attributes: resource.attributes.0.clone(),
            dropped_attributes_count: 0,
            entity_refs: vec![],
        }
        .encode_to_vec();
        let scope_bytes = InstrumentationScope {
            name: super::otel::TRACER_NAME.into(),
            ..Default::default()
        }
        .encode_to_vec();
        Self {
            resource,
            resource_bytes,
            scope_bytes,
        }
    }
}

/// Encodes one `ExportTraceServiceRequest`: the server spans as one `ResourceSpans`, then
/// the SDK's spans grouped by `opentelemetry-proto`.
///
/// The server spans are written into `scratch` first, so that the enclosing messages'
/// lengths are known without a second pass over them.
fn encode_request(
    p: &Preamble,
    servers: &[ServerSpan],
    sdk: Vec<SpanData>,
    scratch: &mut Vec<u8>,
    buf: &mut Vec<u8>,
) {
    if !servers.is_empty() {
        scratch.clear();
        for s in servers {
            put_span(s, scratch);
        }
        let spans_len = scratch.len();
        let scope_spans_len = len_field_len(SCOPE_SPANS_SCOPE, p.scope_bytes.len()) + spans_len;
        let schema = p.resource.schema_url.as_deref().unwrap_or("");
        let mut resource_spans_len = len_field_len(RESOURCE_SPANS_RESOURCE, p.resource_bytes.len())
            + len_field_len(RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len);
        if !schema.is_empty() {
            resource_spans_len += len_field_len(RESOURCE_SPANS_SCHEMA_URL, schema.len());
        }
        buf.reserve(len_field_len(REQUEST_RESOURCE_SPANS, resource_spans_len) + 64);
        put_len_field(REQUEST_RESOURCE_SPANS, resource_spans_len, buf);
        put_bytes(RESOURCE_SPANS_RESOURCE, &p.resource_bytes, buf);
        put_len_field(RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len, buf);
        put_bytes(SCOPE_SPANS_SCOPE, &p.scope_bytes, buf);
        buf.put_slice(scratch);
        if !schema.is_empty() {
            put_bytes(RESOURCE_SPANS_SCHEMA_URL, schema.as_bytes(), buf);
        }
    }
    if !sdk.is_empty() {
        for rs in group_spans_by_resource_and_scope(sdk, &p.resource) {
            prost::encoding::message::encode(REQUEST_RESOURCE_SPANS, &rs, buf);
        }
    }
}

/// Spans waiting for the exporter.
#[derive(Debug, Default)]
struct Pending {
    servers: Vec<ServerSpan>,
    sdk: Vec<SpanData>,
    /// Flushes waiting for everything queued before them to be exported.
    flushes: Vec<std::sync::mpsc::Sender<()>>,
}

impl Pending {
    fn len(&self) -> usize {
        self.servers.len() + self.sdk.len()
    }
}

/// The bounded queue between the request path and the exporter thread.
#[derive(Debug)]
pub(crate) struct Queue {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
    limit: usize,
    batch: usize,
    counters: SpanCounters,
}

impl Queue {
    fn push(&self, add: impl FnOnce(&mut Pending)) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let n = p.len();
        if n >= self.limit {
            drop(p);
            self.counters.dropped.inc();
            return;
        }
        add(&mut p);
        drop(p);
        if n + 1 == self.batch {
            self.wake.notify_one();
        }
    }

    /// Queues a finished server span, or drops and counts it if the queue is full.
    pub(crate) fn push_server(&self, span: ServerSpan) {
        self.push(|p| p.servers.push(span));
    }

    fn push_sdk(&self, span: SpanData) {
        self.push(|p| p.sdk.push(span));
    }

    /// Waits until everything queued so far has been exported (or failed), at most
    /// `timeout`. Blocks: not for the async runtime.
    fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let (tx, rx) = std::sync::mpsc::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flushes
            .push(tx);
        self.wake.notify_one();
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

/// Hands the SDK's spans (user and client spans) to the exporter's queue.
#[derive(Debug)]
pub(crate) struct QueueProcessor(pub(crate) Arc<Queue>);

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push_sdk(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.flush(Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.flush(timeout)
    }
}

/// Where and how the exporter sends.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    /// OTLP/gRPC to `endpoint` (`http://host:4317`), with `headers` as metadata.
    Grpc {
        endpoint: String,
        headers: http::HeaderMap,
    },
    /// OTLP/HTTP protobuf to `url` (`http://host:4318/v1/traces`).
    Http {
        url: String,
        headers: http::HeaderMap,
    },
}

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

fn env_ms(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Starts the exporter thread and returns its queue.
pub(crate) fn start(
    transport: Transport,
    resource: &Resource,
    limit: usize,
    counters: SpanCounters,
) -> std::io::Result<Arc<Queue>> {
    let batch = (env_ms("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) as usize).clamp(1, limit.max(1));
    let delay = Duration::from_millis(env_ms("OTEL_BSP_SCHEDULE_DELAY", 5000));
    let queue = Arc::new(Queue {
        pending: Mutex::new(Pending::default()),
        wake: tokio::sync::Notify::new(),
        limit,
        batch,
        counters,
    });
    let preamble = Preamble::new(resource);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let q = queue.clone();
    std::thread::Builder::new()
        .name("ms-chassis-otlp".into())
        .spawn(move || runtime.block_on(export_loop(q, preamble, transport, delay)))?;
    Ok(queue)
}

/// A sender of encoded export requests.
enum Sender {
    Grpc(
        tonic::client::Grpc<tonic::transport::Channel>,
        tonic::metadata::MetadataMap,
    ),
    Http(reqwest::Client, String, http::HeaderMap),
}

impl Sender {
    fn new(t: Transport) -> Result<Self, String> {
        match t {
            Transport::Grpc { endpoint, headers } => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint)
                    .map_err(|e| e.to_string())?
                    .timeout(EXPORT_TIMEOUT)
                    .connect_lazy();
                Ok(Self::Grpc(
                    tonic::client::Grpc::new(channel),
                    tonic::metadata::MetadataMap::from_headers(headers),
                ))
            }
            Transport::Http { url, headers } => {
                let client = reqwest::Client::builder()
                    .timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Self::Http(client, url, headers))
            }
        }
    }

    async fn send(&mut self, body: Bytes) -> Result<(), String> {
        match self {
            Self::Grpc(grpc, metadata) => {
                grpc.ready().await.map_err(|e| e.to_string())?;
                let mut req = tonic::Request::new(body);
                *req.metadata_mut() = metadata.clone();
                grpc.unary::<_, (), _>(
                    req,
                    http::uri::PathAndQuery::from_static(
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    ),
                    RawCodec,
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string())
            }
            Self::Http(client, url, headers) => {
                let res = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    // Without the URL: `tracing.endpoint` may carry a password.
                    .map_err(|e| e.without_url().to_string())?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("the collector answered {}", res.status()))
                }
            }
        }
    }
}

async fn export_loop(q: Arc<Queue>, p: Preamble, transport: Transport, delay: Duration) {
    let mut sender = match Sender::new(transport) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the OTLP exporter; spans are dropped");
            None
        }
    };
    let mut taken = Pending::default();
    let mut scratch = Vec::new();
    loop {
        tokio::select! {
            () = q.wake.notified() => {}
            () = tokio::time::sleep(delay) => {}
        }
        {
            let mut pending = q.pending.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *pending, &mut taken);
        }
        while !taken.servers.is_empty() || !taken.sdk.is_empty() {
            // At most one batch per request, server spans first.
            let n = taken.servers.len().min(q.batch);
            let servers: Vec<ServerSpan> = taken.servers.drain(..n).collect();
            let m = taken.sdk.len().min(q.batch - n);
            let sdk: Vec<SpanData> = taken.sdk.drain(..m).collect();
            let count = (n + m) as u64;
            let mut buf = Vec::new();
            encode_request(&p, &servers, sdk, &mut scratch, &mut buf);
            let result = match &mut sender {
                Some(s) => tokio::time::timeout(EXPORT_TIMEOUT, s.send(buf.into()))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into())),
                None => Err("no exporter".into()),
            };
            match result {
                Ok(()) => q.counters.exported.inc_by(count),
                Err(e) => {
                    q.counters.failed.inc_by(count);
                    tracing::debug!(error = %e, spans = count, "span export failed");
                }
            }
        }
        for f in taken.flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// A gRPC codec that sends bytes already encoded and ignores the (empty) answer.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf as _;
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

    use super::*;

    fn record(parent: bool, status: u16) -> ServerSpan {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        );
        let parent_sc = if parent {
            SpanContext::new(
                sc.trace_id(),
                SpanId::from_hex("a3ce929d0e0e4736").unwrap(),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )
        } else {
            SpanContext::empty_context()
        };
        let mut s = ServerSpan::new(&sc, &parent_sc, 64);
        s.span_method = "GET";
        s.method = "GET";
        s.protocol_version = Some("1.1");
        s.server_port = Some(8080);
        s.set(TextField::Path, "/books/7");
        s.set(TextField::ServerAddress, "127.0.0.1");
        s.set_ip(
            TextField::ClientAddress,
            std::net::Ipv4Addr::new(10, 0, 100, 7).into(),
        );
        s.set(TextField::UserAgent, "test/1.0");
        s.finish(status);
        s
    }

    fn decode(servers: &[ServerSpan]) -> ExportTraceServiceRequest {
        let resource = Resource::builder_empty()
            .with_service_name("books")
            .with_attribute(opentelemetry::KeyValue::new("service.version", "1.2.3"))
            .build();
        let mut buf = Vec::new();
        encode_request(
            &Preamble::new(&resource),
            servers,
            Vec::new(),
            &mut Vec::new(),
            &mut buf,
        );
        ExportTraceServiceRequest::decode(buf.as_slice()).expect("valid OTLP protobuf")
    }

    fn attr(
        span: &opentelemetry_proto::tonic::trace::v1::Span,
        key: &str,
    ) -> Option<any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    #[test]
    fn a_server_span_decodes_as_otlp_with_its_ids_attributes_and_resource() {
        let req = decode(&[record(true, 200), record(false, 503)]);
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
            && kv.value.clone().unwrap().value
                == Some(any_value::Value::StringValue("books".into()))));
        assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "ms-chassis");
        let spans = &rs.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let ok = &spans[0];
        assert_eq!(hex(&ok.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&ok.span_id), "00f067aa0ba902b7");
        assert_eq!(hex(&ok.parent_span_id), "a3ce929d0e0e4736");
        assert_eq!(ok.trace_state, "vendor=v1");
        assert_eq!(ok.name, "GET");
        assert_eq!(ok.kind, SpanKind::Server as i32);
        assert_eq!(ok.flags, 0x301, "sampled, with a remote parent");
        assert!(ok.start_time_unix_nano > 0 && ok.end_time_unix_nano >= ok.start_time_unix_nano);
        let s = |v: &str| Some(any_value::Value::StringValue(v.into()));
        assert_eq!(attr(ok, "url.path"), s("/books/7"));
        assert_eq!(attr(ok, "url.scheme"), s("http"));
        assert_eq!(attr(ok, "http.request.method"), s("GET"));
        assert_eq!(attr(ok, "client.address"), s("10.0.100.7"));
        assert_eq!(attr(ok, "server.address"), s("127.0.0.1"));
        assert_eq!(attr(ok, "user_agent.original"), s("test/1.0"));
        assert_eq!(attr(ok, "network.protocol.version"), s("1.1"));
        assert_eq!(
            attr(ok, "server.port"),
            Some(any_value::Value::IntValue(8080))
        );
        assert_eq!(
            attr(ok, "http.response.status_code"),
            Some(any_value::Value::IntValue(200))
        );
        assert_eq!(attr(ok, "http.route"), None);
        assert_eq!(attr(ok, "error.type"), None);
        assert_eq!(ok.status.as_ref().unwrap().code, StatusCode::Unset as i32);

        let failed = &spans[1];
        assert!(failed.parent_span_id.is_empty(), "a root span");
        assert_eq!(failed.flags, 0x101);
        assert_eq!(attr(failed, "error.type"), s("503"));
        let status = failed.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "Service Unavailable");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn spans_beyond_the_bound_are_dropped_and_counted() {
        let counters = SpanCounters::unregistered();
        let q = Queue {
            pending: Mutex::new(Pending::default()),
            wake: tokio::sync::Notify::new(),
            limit: 3,
            batch: 2,
            counters: counters.clone(),
        };
        for _ in 0..10 {
            q.push_server(record(false, 200));
        }
        assert_eq!(q.pending.lock().unwrap().len(), 3);
        assert_eq!(counters.dropped.get(), 7);
    }
}
