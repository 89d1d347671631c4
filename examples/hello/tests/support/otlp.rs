//! A real OTLP trace receiver for the tests, in both transports the chassis exports over:
//! gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, served by tonic) and
//! HTTP/protobuf (`POST /v1/traces`, served by axum). Both decode the OTLP protobuf wire
//! format with the `opentelemetry-proto` types, keep every export request, and answer the
//! way a collector does. Each listens on 127.0.0.1 on a port the OS picks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as AnyValueMsg, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use prost::Message as _;
use tokio::task::JoinHandle;

use super::eventually;

/// The OTLP transport a [`Receiver`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// gRPC (`tracing.protocol: grpc`).
    Grpc,
    /// HTTP/protobuf (`tracing.protocol: http`), `POST /v1/traces`.
    Http,
}

impl Transport {
    /// The `tracing.protocol` value.
    pub fn protocol(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// What the receiver has been sent.
#[derive(Default)]
struct Store {
    requests: Vec<ExportTraceServiceRequest>,
    /// HTTP only: the `Content-Type` of each export that was not `application/x-protobuf`,
    /// or whose body did not decode.
    rejected: Vec<String>,
}

type Shared = Arc<Mutex<Store>>;

/// A running OTLP receiver. Dropping it stops the server.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`: the value for `MS__TRACING__ENDPOINT` (for HTTP the exporter
    /// appends `/v1/traces`).
    pub endpoint: String,
    /// The transport it speaks.
    pub transport: Transport,
    store: Shared,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct GrpcReceiver(Shared);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().requests.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// `POST /v1/traces` as the OTLP/HTTP spec describes it: a protobuf
/// `ExportTraceServiceRequest` in, a protobuf `ExportTraceServiceResponse` out.
async fn http_export(
    axum::extract::State(store): axum::extract::State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    if content_type != "application/x-protobuf" {
        store.lock().unwrap().rejected.push(content_type);
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, protobuf, Vec::new());
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            store.lock().unwrap().requests.push(req);
            let res = ExportTraceServiceResponse {
                partial_success: None,
            };
            (StatusCode::OK, protobuf, res.encode_to_vec())
        }
        Err(e) => {
            store
                .lock()
                .unwrap()
                .rejected
                .push(format!("undecodable body ({e})"));
            (StatusCode::BAD_REQUEST, protobuf, Vec::new())
        }
    }
}

/// Starts a receiver for `transport` on 127.0.0.1, on a port the OS picks.
pub async fn start(transport: Transport) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the OTLP receiver on 127.0.0.1");
    let addr = listener.local_addr().expect("receiver address");
    let store: Shared = Arc::default();
    let task = match transport {
        Transport::Grpc => {
            let service = TraceServiceServer::new(GrpcReceiver(store.clone()));
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await
                    .expect("the gRPC OTLP receiver failed");
            })
        }
        Transport::Http => {
            let app = axum::Router::new()
                .route("/v1/traces", axum::routing::post(http_export))
                .with_state(store.clone());
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .await
                    .expect("the HTTP OTLP receiver failed");
            })
        }
    };
    Receiver {
        endpoint: format!("http://{addr}"),
        transport,
        store,
        task,
    }
}

/// A span as received, with the resource it was exported under.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The span itself.
    pub span: Span,
    /// Its resource's attributes.
    pub resource: Vec<KeyValue>,
}

/// A flattened attribute value, for easy comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `string_value`.
    Str(String),
    /// `int_value`.
    Int(i64),
    /// `bool_value`.
    Bool(bool),
    /// `double_value`.
    Double(f64),
    /// Anything else (arrays, maps, bytes), as its debug text.
    Other(String),
}

fn flatten(v: &Option<AnyValueMsg>) -> Attr {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => Attr::Str(s.clone()),
        Some(AnyValue::IntValue(i)) => Attr::Int(*i),
        Some(AnyValue::BoolValue(b)) => Attr::Bool(*b),
        Some(AnyValue::DoubleValue(d)) => Attr::Double(*d),
        other => Attr::Other(format!("{other:?}")),
    }
}

fn attrs_of(kvs: &[KeyValue]) -> BTreeMap<String, Attr> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), flatten(&kv.value)))
        .collect()
}

/// Lower-hex of an id as it arrived (empty for an empty id).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl ReceivedSpan {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id in lower hex (32 characters).
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id in lower hex (16 characters).
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id in lower hex; empty for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The span kind.
    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// The status code (Unset when there is no status).
    pub fn status_code(&self) -> OtlpStatusCode {
        self.span
            .status
            .as_ref()
            .and_then(|s| OtlpStatusCode::try_from(s.code).ok())
            .unwrap_or(OtlpStatusCode::Unset)
    }

    /// The span's attributes.
    pub fn attrs(&self) -> BTreeMap<String, Attr> {
        attrs_of(&self.span.attributes)
    }

    /// One span attribute.
    pub fn attr(&self, key: &str) -> Option<Attr> {
        self.attrs().remove(key)
    }

    /// The resource's attributes.
    pub fn resource_attrs(&self) -> BTreeMap<String, Attr> {
        attrs_of(&self.resource)
    }

    /// One resource attribute as a string, if it is one.
    pub fn resource_str(&self, key: &str) -> Option<String> {
        match self.resource_attrs().remove(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// `name kind trace/span<-parent attrs`, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{:?} {:?} {}/{} <- {:?} status={:?} attrs={:?} service.name={:?}",
            self.name(),
            self.kind(),
            self.trace_id(),
            self.span_id(),
            self.parent_span_id(),
            self.status_code(),
            self.attrs(),
            self.resource_str("service.name"),
        )
    }
}

/// Every span in `spans`, one per line, for failure messages.
pub fn describe_all(spans: &[ReceivedSpan]) -> String {
    if spans.is_empty() {
        return "(no spans received)".to_owned();
    }
    spans
        .iter()
        .map(ReceivedSpan::describe)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Receiver {
    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let store = self.store.lock().unwrap();
        let mut out = Vec::new();
        for req in &store.requests {
            for rs in &req.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push(ReceivedSpan {
                            span: span.clone(),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// How many export requests arrived.
    pub fn export_count(&self) -> usize {
        self.store.lock().unwrap().requests.len()
    }

    /// HTTP exports refused for a wrong content type or an undecodable body.
    pub fn rejected(&self) -> Vec<String> {
        self.store.lock().unwrap().rejected.clone()
    }

    /// Polls the received spans until `check` returns `Ok`, or panics after `deadline`
    /// with `what`, the last error and every span received.
    pub async fn wait_for<T>(
        &self,
        deadline: Duration,
        what: &str,
        check: impl Fn(&[ReceivedSpan]) -> Result<T, String>,
    ) -> T {
        eventually(deadline, what, || {
            let spans = self.spans();
            let result = check(&spans).map_err(|e| {
                format!(
                    "{e}\nrejected exports: {:?}\nspans received:\n{}",
                    self.rejected(),
                    describe_all(&spans)
                )
            });
            async move { result }
        })
        .await
    }
}

/// A loopback port with nothing listening on it: bound by the OS, then released.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    l.local_addr().expect("probe address").port()
}

/// 64 random bits from the standard library's randomly keyed hasher, never zero.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() | 1
}

/// A fresh W3C trace id: 32 lower-hex characters, not all zero.
pub fn random_trace_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// A fresh W3C span id: 16 lower-hex characters, not all zero.
pub fn random_span_id() -> String {
    format!("{:016x}", random_u64())
}

/// A sampled W3C `traceparent` for `trace_id` and `span_id`.
pub fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// A collector that accepts connections and never answers (a firewall that drops, a hung
/// process): every export waits for the exporter's own timeout. Dropping it closes the
/// listener and every connection it holds.
pub struct BlackHole {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    accepted: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl BlackHole {
    /// Starts one on 127.0.0.1, on a port the OS picks.
    pub async fn start() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the black hole");
        let addr = listener.local_addr().expect("black hole address");
        let accepted: Arc<Mutex<usize>> = Arc::default();
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                held.push(conn);
            }
        });
        BlackHole {
            endpoint: format!("http://{addr}"),
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
