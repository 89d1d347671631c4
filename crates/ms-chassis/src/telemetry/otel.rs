//! OpenTelemetry tracing: the tracer provider built from `tracing:` config, the server span
//! of each request, and the flush at shutdown.
//!
//! The server span is not a `tracing` span bridged by `tracing-opentelemetry`: most
//! requests are not sampled, and an unsampled server span costs a pair of random ids, where
//! a bridged span costs a `tracing` span per request. With the OTLP exporter, a sampled
//! server span is not an SDK span either but a compact record on the request
//! ([`otlp::ServerSpan`]), encoded as OTLP straight from it (see `otlp` for why); with the
//! stdout exporter it is an SDK span. Either way the span's context is attached to the
//! request's future, so spans that handler code opens with plain `tracing` macros (bridged
//! by `tracing-opentelemetry`) become its children, and log lines carry its ids even when
//! it is not sampled.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use opentelemetry::trace::{
    Link, SpanContext, SpanKind, Status, TraceContextExt, TraceId, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::IdGenerator as _;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingResult, SdkTracer, SdkTracerProvider,
    ShouldSample,
};

use super::Settings;
use super::config::{OtlpProtocol, SamplerKind, SamplerSection, TraceExporter, TracingSection};
use super::propagation::{self, Propagation, SamplingState};
use super::stdout_exporter::StdoutExporter;
use super::{export_queue, otlp, presampled};
use crate::config::{ConfigError, Invalid};

/// The process-wide tracing state. One per process, like the log subscriber.
pub(crate) struct Otel {
    pub(crate) tracer: SdkTracer,
    pub(crate) propagation: &'static Propagation,
    provider: SdkTracerProvider,
    /// The sampling rule in force, shared with the provider's sampler.
    sampling: Arc<RwLock<SamplingRule>>,
    /// The provider's sampler, for spans the chassis starts without the SDK.
    sampler: ChassisSampler,
    /// The rule's decision for a span without a parent, as a bound on the trace id (see
    /// [`SamplingRule::root_bound`]): the server span of a request that carried no trace
    /// context is decided from it without the lock and the sampler's calls.
    root_bound: AtomicU64,
    /// Whether spans go anywhere (`tracing.exporter` is not `none`).
    exporting: bool,
    /// The OTLP exporter's queue, which takes sampled server spans as records.
    otlp: Option<Arc<otlp::Queue>>,
}

/// The instrumentation scope of the chassis's own spans.
pub(crate) const TRACER_NAME: &str = "ms-chassis";

static OTEL: OnceLock<Otel> = OnceLock::new();

/// The tracing state, if [`init`] has run.
pub(crate) fn get() -> Option<&'static Otel> {
    OTEL.get()
}

/// Parent-based sampling that also understands B3's "defer" (ids sent, no decision): the
/// caller left the decision to us, so it is taken as for a new root trace, keeping the
/// caller's trace id. A deny (`b3: 0`) or accept arrives as an unsampled or sampled parent,
/// which the parent-based sampler follows.
///
/// The rule sits behind a lock so that a config reload can change `tracing.sampler` while
/// the provider runs; a read of an uncontended lock per new span is the whole cost.
#[derive(Debug, Clone)]
struct ChassisSampler {
    rule: Arc<RwLock<SamplingRule>>,
}

/// The samplers that `tracing.sampler` stands for.
#[derive(Debug, Clone)]
struct SamplingRule {
    root: Sampler,
    parent_based: Option<Sampler>,
}

impl SamplingRule {
    fn new(s: &SamplerSection, profile: Option<&str>) -> Self {
        let ratio = s
            .ratio
            .unwrap_or(if profile == Some("dev") { 1.0 } else { 0.1 });
        let (root, parent_based) = match s.kind {
            SamplerKind::ParentRatio => (Sampler::TraceIdRatioBased(ratio), true),
            SamplerKind::Ratio => (Sampler::TraceIdRatioBased(ratio), false),
            SamplerKind::ParentAlwaysOn => (Sampler::AlwaysOn, true),
            SamplerKind::ParentAlwaysOff => (Sampler::AlwaysOff, true),
            SamplerKind::AlwaysOn => (Sampler::AlwaysOn, false),
            SamplerKind::AlwaysOff => (Sampler::AlwaysOff, false),
        };
        Self {
            parent_based: parent_based.then(|| Sampler::ParentBased(Box::new(root.clone()))),
            root,
        }
    }

    /// What the rule decides for a span without a parent, as a bound: sampled when the
    /// low 63 bits of the trace id's last eight bytes (big-endian) are below it. Without a
    /// parent every rule defers to its root sampler, and this is that sampler's arithmetic
    /// (`opentelemetry_sdk`'s `sample_based_on_probability`); `u64::MAX` samples all.
    fn root_bound(&self) -> u64 {
        match self.root {
            Sampler::AlwaysOn => u64::MAX,
            Sampler::TraceIdRatioBased(p) if p >= 1.0 => u64::MAX,
            Sampler::TraceIdRatioBased(p) => (p.max(0.0) * (1u64 << 63) as f64) as u64,
            _ => 0,
        }
    }
}

impl ShouldSample for ChassisSampler {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(decided) = presampled::take_decision() {
            return decided;
        }
        let rule = self
            .rule
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deferred = parent.and_then(propagation::sampling_state) == Some(SamplingState::Defer);
        match &rule.parent_based {
            Some(p) if !deferred => {
                p.should_sample(parent, trace_id, name, kind, attributes, links)
            }
            _ => {
                let mut r = rule
                    .root
                    .should_sample(None, trace_id, name, kind, attributes, links);
                if let Some(cx) = parent.filter(|c| c.has_active_span()) {
                    r.trace_state = cx.span().span_context().trace_state().clone();
                }
                r
            }
        }
    }
}

/// Makes `tracing.sampler` the sampling rule from now on (a config reload).
pub(crate) fn set_sampler(s: &SamplerSection, profile: Option<&str>) {
    if let Some(o) = OTEL.get() {
        let rule = SamplingRule::new(s, profile);
        o.root_bound.store(rule.root_bound(), Ordering::Relaxed);
        *o.sampling
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rule;
    }
}

/// Builds the tracer provider once per process; later calls keep the first.
pub(crate) fn init(cfg: &Settings<'_>) -> Result<&'static Otel, ConfigError> {
    if let Some(o) = OTEL.get() {
        return Ok(o);
    }
    let (t, profile) = (cfg.tracing, cfg.profile);
    let rule = SamplingRule::new(&t.sampler, profile);
    let root_bound = AtomicU64::new(rule.root_bound());
    let sampling = Arc::new(RwLock::new(rule));
    let sampler = ChassisSampler {
        rule: sampling.clone(),
    };
    let mut resource = Resource::builder()
        .with_service_name(cfg.service_name.to_owned())
        .with_attribute(KeyValue::new(
            "service.version",
            cfg.service_version.to_owned(),
        ))
        .with_attribute(KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ));
    if let Some(p) = profile {
        resource =
            resource.with_attribute(KeyValue::new("deployment.environment.name", p.to_owned()));
    }
    resource = resource.with_attributes(
        t.resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let counters = export_queue::SpanCounters::register();
    let resource = resource.build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler.clone())
        .with_id_generator(presampled::PresampledIds::default())
        .with_resource(resource.clone());
    if t.exporter == TraceExporter::Stdout {
        let processor =
            export_queue::bounded(StdoutExporter, t.queue_size, counters.clone(), |e| {
                BatchSpanProcessor::builder(e)
                    .with_batch_config(
                        BatchConfigBuilder::default()
                            .with_max_queue_size(t.queue_size + 1)
                            .build(),
                    )
                    .build()
            });
        builder = builder.with_span_processor(processor);
    }
    let mut queue = None;
    if t.exporter == TraceExporter::Otlp {
        let q =
            otlp::start(build_transport(t)?, &resource, t.queue_size, counters).map_err(|e| {
                ConfigError::from(Invalid::new(
                    "tracing",
                    format!("cannot start the OTLP exporter: {e}"),
                ))
            })?;
        builder = builder.with_span_processor(otlp::QueueProcessor(q.clone()));
        queue = Some(q);
    }
    let provider = builder.build();
    let tracer = provider.tracer(TRACER_NAME);
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = Otel {
        tracer,
        propagation: propagation::install(Propagation::new(&t.propagation)),
        provider,
        sampling,
        sampler,
        root_bound,
        exporting: t.exporter != TraceExporter::None,
        otlp: queue,
    };
    Ok(OTEL.get_or_init(|| otel))
}

fn build_transport(t: &TracingSection) -> Result<otlp::Transport, ConfigError> {
    let fail = |e: &dyn std::fmt::Display| {
        ConfigError::from(Invalid::new(
            "tracing",
            format!("cannot build the OTLP exporter: {e}"),
        ))
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &t.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| fail(&format!("invalid header name {k:?} in tracing.headers")))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| fail(&format!("invalid value for {k:?} in tracing.headers")))?;
        headers.insert(name, value);
    }
    Ok(match t.protocol {
        OtlpProtocol::Grpc => {
            let endpoint = t
                .endpoint
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:4317".into());
            http::Uri::try_from(endpoint.as_str()).map_err(|e| fail(&e))?;
            otlp::Transport::Grpc { endpoint, headers }
        }
        OtlpProtocol::Http => {
            let base = t
                .endpoint
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:4318".into());
            let url = format!("{}/v1/traces", base.trim_end_matches('/'));
            reqwest::Url::parse(&url).map_err(|e| fail(&e))?;
            otlp::Transport::Http { url, headers }
        }
    })
}

/// Exports the spans still queued, waiting at most `timeout`. A flush rather than a
/// shutdown, because the provider is process-wide and may outlive this service (tests run
/// several in one process). The SDK's flush blocks for up to its own fixed 5 s, so it runs
/// on a detached thread: unlike `spawn_blocking`, that never holds the process open past
/// the grace period when the collector hangs.
pub(crate) async fn flush(timeout: Duration) {
    let Some(o) = OTEL.get() else { return };
    let provider = o.provider.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ms-chassis-trace-flush".into())
        .spawn(move || {
            let _ = tx.send(provider.force_flush());
        });
    if spawned.is_err() {
        tracing::warn!("could not start the trace flush; pending spans dropped");
        return;
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(()))) => tracing::debug!("trace exporter flushed"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "trace export failed during shutdown"),
        _ => tracing::warn!("trace exporter did not flush in time; pending spans dropped"),
    }
}

/// Starts a span of the chassis (a request's server span, a client call's span) as a child
/// of `parent`, and returns the context holding it.
///
/// The sampler decides first. A span that is not sampled, or not exported anywhere, is
/// only its ids and that decision (which callees still need), without the SDK's span, its
/// attributes or its allocations. A sampled one is built by the SDK with the decision
/// already taken and, for a new trace, the trace id it was taken on (see `presampled`).
pub(crate) fn start_span(
    o: &Otel,
    name: Cow<'static, str>,
    kind: SpanKind,
    parent: &Context,
) -> Context {
    start_span_with(o, name, kind, parent, false).0
}

/// [`start_span`], or with `record` a sampled span's context and (with the OTLP exporter)
/// an empty record for it instead of the SDK's span.
fn start_span_with(
    o: &Otel,
    name: Cow<'static, str>,
    kind: SpanKind,
    parent: &Context,
    record: bool,
) -> (Context, Option<otlp::ServerSpan>) {
    let ids = opentelemetry_sdk::trace::RandomIdGenerator::default();
    let parent_span = parent.span();
    let parent_sc = parent_span.span_context();
    let (trace_id, flags) = if parent_sc.is_valid() {
        (parent_sc.trace_id(), parent_sc.trace_flags())
    } else {
        (
            ids.new_trace_id(),
            opentelemetry::trace::TraceFlags::default(),
        )
    };
    let decision = if parent.has_active_span() {
        o.sampler
            .should_sample(Some(parent), trace_id, &name, &kind, &[], &[])
    } else {
        // No parent: the rule's root sampler decides, as `ChassisSampler` would ask it to.
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or_default());
        let sampled = (low >> 1) < o.root_bound.load(Ordering::Relaxed);
        SamplingResult {
            decision: if sampled {
                opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
            } else {
                opentelemetry_sdk::trace::SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: Default::default(),
        }
    };
    let sampled = decision.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample;
    if record && sampled && o.otlp.is_some() {
        let sc = SpanContext::new(
            trace_id,
            ids.new_span_id(),
            flags.with_sampled(true),
            false,
            decision.trace_state,
        );
        let rec = otlp::ServerSpan::new(&sc, parent_sc, 0);
        return (parent.with_remote_span_context(sc), Some(rec));
    }
    if o.exporting && decision.decision != opentelemetry_sdk::trace::SamplingDecision::Drop {
        let new_trace = (!parent_sc.is_valid()).then_some(trace_id);
        let span = presampled::with_decision(decision, new_trace, || {
            o.tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(&o.tracer, parent)
        });
        return (parent.with_span(span), None);
    }
    let sc = SpanContext::new(
        trace_id,
        ids.new_span_id(),
        flags.with_sampled(sampled),
        false,
        decision.trace_state,
    );
    // Despite its name, this only puts a non-recording span with `sc` in the context;
    // `sc` says it is local.
    (parent.with_remote_span_context(sc), None)
}

/// Starts the server span of a request as a child of the extracted remote context. With
/// the matched route template the span is named `GET /books/{id}` and carries `http.route`.
///
/// With the OTLP exporter a sampled span comes back as a record, for
/// [`end_server_span`]; otherwise the span is in the context.
pub(crate) fn server_span(
    o: &Otel,
    parent: &Context,
    req: &axum::http::Request<axum::body::Body>,
    peer: Option<std::net::SocketAddr>,
    route: Option<&axum::extract::MatchedPath>,
) -> (Context, Option<otlp::ServerSpan>) {
    let method = crate::metrics::method_label(req.method());
    let (cx, record) = start_span_with(
        o,
        Cow::Borrowed(span_method(req.method())),
        SpanKind::Server,
        parent,
        true,
    );
    if let Some(mut rec) = record {
        fill_record(&mut rec, method, req, peer, route);
        return (cx, Some(rec));
    }
    let span = cx.span();
    if span.is_recording() {
        // Static strings where the value allows: a sampled request allocates only for the
        // values it must copy.
        let scheme: Cow<'static, str> = match req.uri().scheme_str() {
            None | Some("http") => "http".into(),
            Some("https") => "https".into(),
            Some(other) => other.to_owned().into(),
        };
        let mut attrs = Vec::with_capacity(12);
        if let Some(route) = route {
            span.update_name(format!("{} {}", span_method(req.method()), route.as_str()));
            attrs.push(KeyValue::new("http.route", route.as_str().to_owned()));
        }
        if method == "_OTHER" {
            attrs.push(KeyValue::new(
                "http.request.method_original",
                req.method().as_str().to_owned(),
            ));
        }
        attrs.extend([
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.path", req.uri().path().to_owned()),
            KeyValue::new("url.scheme", scheme.clone()),
        ]);
        if let Some(version) = protocol_version(req.version()) {
            attrs.push(KeyValue::new("network.protocol.version", version));
        }
        // HTTP/2 carries the authority in the URI (`:authority`), HTTP/1.1 in `Host`.
        if let Some((host, port)) = authority(req).and_then(|a| host_and_port(a, &scheme)) {
            attrs.push(KeyValue::new("server.address", host.to_owned()));
            if let Some(port) = port {
                attrs.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        if let Some(peer) = peer {
            attrs.push(KeyValue::new("client.address", peer.ip().to_string()));
        }
        if let Some(ua) = user_agent(req) {
            attrs.push(KeyValue::new("user_agent.original", ua.to_owned()));
        }
        span.set_attributes(attrs);
    }
    (cx, None)
}

/// The request's authority: HTTP/2 carries it in the URI (`:authority`), HTTP/1.1 in `Host`.
fn authority(req: &axum::http::Request<axum::body::Body>) -> Option<&[u8]> {
    req.headers()
        .get(axum::http::header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()))
}

fn user_agent(req: &axum::http::Request<axum::body::Body>) -> Option<&str> {
    req.headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
}

/// The server span's attributes, into its record: the same as `server_span` gives an SDK
/// span, with the copied values in the record's one `String`.
fn fill_record(
    rec: &mut otlp::ServerSpan,
    method: &'static str,
    req: &axum::http::Request<axum::body::Body>,
    peer: Option<std::net::SocketAddr>,
    route: Option<&axum::extract::MatchedPath>,
) {
    use otlp::TextField;
    let path = req.uri().path();
    let authority = authority(req);
    let ua = user_agent(req);
    // The path, the authority, the user agent and an IP address: one allocation.
    rec.text
        .reserve(path.len() + authority.map_or(0, <[u8]>::len) + ua.map_or(0, str::len) + 48);
    rec.span_method = span_method(req.method());
    rec.method = method;
    rec.route = route.cloned();
    rec.set(TextField::Path, path);
    let scheme = req.uri().scheme_str().unwrap_or("http");
    match scheme {
        "http" => rec.scheme = "http",
        "https" => rec.scheme = "https",
        other => {
            rec.scheme = "";
            rec.set(TextField::OtherScheme, other);
        }
    }
    if method == "_OTHER" {
        rec.set(TextField::MethodOriginal, req.method().as_str());
    }
    rec.protocol_version = protocol_version(req.version());
    if let Some((host, port)) = authority.and_then(|a| host_and_port(a, scheme)) {
        rec.set(TextField::ServerAddress, host);
        rec.server_port = port;
    }
    if let Some(peer) = peer {
        rec.set_ip(TextField::ClientAddress, peer.ip());
    }
    if let Some(ua) = ua {
        rec.set(TextField::UserAgent, ua);
    }
}

/// `server.address` and `server.port` from a `Host` header or an HTTP/2 `:authority`, as
/// the HTTP semantic conventions ask: an IPv6 literal without its brackets, and the
/// scheme's default port when none is named. `None` for what is not a valid authority, or
/// carries userinfo (a client has no business sending it there).
fn host_and_port<'a>(input: &'a [u8], scheme: &str) -> Option<(&'a str, Option<u16>)> {
    simple_host_and_port(input, scheme).unwrap_or_else(|| parsed_host_and_port(input, scheme))
}

/// [`host_and_port`] without parsing an `Authority` (which copies it) for the common
/// shape, a name or IPv4 address and a numeric port: `Some` of the answer for that shape,
/// `None` for anything else. A property test checks that the two agree.
fn simple_host_and_port<'a>(
    input: &'a [u8],
    scheme: &str,
) -> Option<Option<(&'a str, Option<u16>)>> {
    let (host, port) = match input.iter().position(|&b| b == b':') {
        Some(i) => (&input[..i], Some(&input[i + 1..])),
        None => (input, None),
    };
    let name_char = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-';
    if host.is_empty() || !host.iter().all(name_char) {
        return None;
    }
    let port = match port {
        None => match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        },
        Some(p) if (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit) => {
            // At most 99999: `parse` fails beyond u16, and then so does the full parse.
            let n: u32 = p.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
            Some(u16::try_from(n).ok()?)
        }
        Some(_) => return None,
    };
    let host = std::str::from_utf8(host).ok()?;
    Some(Some((host, port)))
}

fn parsed_host_and_port<'a>(input: &'a [u8], scheme: &str) -> Option<(&'a str, Option<u16>)> {
    let authority = axum::http::uri::Authority::try_from(input).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    // `Authority` accepts any port text and then has no port: refuse what is not a number.
    let port = match &authority.as_str()[host.len()..] {
        "" | ":" => match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        },
        p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    // The same bytes as `input` (a valid authority is ASCII), borrowed from it.
    let host = std::str::from_utf8(&input[..host.len()]).ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// `network.protocol.version` for an HTTP version.
fn protocol_version(v: axum::http::Version) -> Option<&'static str> {
    use axum::http::Version;
    match v {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// The span name's method, as the HTTP semantic conventions ask: a known method as it is,
/// anything else `HTTP` (a client can send any token as a method, and span names must
/// stay few).
pub(crate) fn span_method(m: &axum::http::Method) -> &'static str {
    match crate::metrics::method_label(m) {
        "_OTHER" => "HTTP",
        known => known,
    }
}

/// The trace id of `cx`'s span, if it is sampled (for metric exemplars).
pub(crate) fn sampled_trace_id(cx: &Context) -> Option<TraceId> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_sampled().then(|| sc.trace_id())
}

/// Ends the server span with the response status: the record, if [`server_span`] gave one
/// (it goes to the exporter's queue), else the span in `cx`.
pub(crate) fn end_server_span(
    cx: &Context,
    record: Option<otlp::ServerSpan>,
    status: axum::http::StatusCode,
) {
    if let Some(mut rec) = record {
        rec.finish(status.as_u16());
        if let Some(q) = OTEL.get().and_then(|o| o.otlp.as_ref()) {
            q.push_server(rec);
        }
        return;
    }
    let span = cx.span();
    if span.is_recording() {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
            span.set_status(Status::error(
                status.canonical_reason().unwrap_or("server error"),
            ));
        }
        // Only here: `end` reads the wall clock even for a span that records nothing.
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::{host_and_port, parsed_host_and_port, simple_host_and_port, span_method};

    #[test]
    fn the_root_bound_decides_as_the_sdk_samplers_do() {
        use super::{SamplerKind, SamplerSection, SamplingRule};
        use opentelemetry::trace::{SpanKind, TraceId};
        use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};
        let kinds = [
            SamplerKind::ParentRatio,
            SamplerKind::Ratio,
            SamplerKind::ParentAlwaysOn,
            SamplerKind::ParentAlwaysOff,
            SamplerKind::AlwaysOn,
            SamplerKind::AlwaysOff,
        ];
        let mut sampled = 0;
        for kind in kinds {
            for ratio in [0.0, 1e-9, 0.1, 0.5, 0.999, 1.0, 7.0, -1.0] {
                let rule = SamplingRule::new(
                    &SamplerSection {
                        kind,
                        ratio: Some(ratio),
                    },
                    None,
                );
                let bound = rule.root_bound();
                for n in 0..2_000u128 {
                    let id = TraceId::from(fastrand::u128(..) | n);
                    let low = u64::from_be_bytes(id.to_bytes()[8..].try_into().unwrap());
                    let ours = (low >> 1) < bound;
                    let sdk = rule
                        .parent_based
                        .as_ref()
                        .unwrap_or(&rule.root)
                        .should_sample(None, id, "GET", &SpanKind::Server, &[], &[])
                        .decision
                        == SamplingDecision::RecordAndSample;
                    assert_eq!(ours, sdk, "{kind:?} {ratio} {id}");
                    sampled += usize::from(ours);
                }
            }
        }
        assert!(sampled > 0);
    }

    #[test]
    fn span_names_use_known_methods_and_http_for_the_rest() {
        use axum::http::Method;
        assert_eq!(span_method(&Method::GET), "GET");
        assert_eq!(span_method(&Method::PATCH), "PATCH");
        assert_eq!(span_method(&Method::TRACE), "TRACE");
        assert_eq!(span_method(&Method::from_bytes(b"BREW").unwrap()), "HTTP");
        assert_eq!(span_method(&Method::from_bytes(b"get").unwrap()), "HTTP");
    }

    proptest::proptest! {
        /// `Host` comes from the network: any bytes are an answer or `None`, never a panic.
        #[test]
        fn any_host_header_is_read_without_panicking(
            h in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            s in "[a-z\\[\\]:.@0-9]{0,40}",
        ) {
            let _ = host_and_port(&h, "http");
            // The fast path agrees with the full parse wherever it answers.
            for scheme in ["http", "https", "ftp"] {
                if let Some(fast) = simple_host_and_port(&h, scheme) {
                    proptest::prop_assert_eq!(fast, parsed_host_and_port(&h, scheme));
                }
            }
            for scheme in ["http", "https"] {
                if let Some(fast) = simple_host_and_port(s.as_bytes(), scheme) {
                    proptest::prop_assert_eq!(fast, parsed_host_and_port(s.as_bytes(), scheme));
                }
            }
            if let Some((host, _)) = host_and_port(s.as_bytes(), "https") {
                proptest::prop_assert!(!host.contains('@'));
            }
        }
    }

    proptest::proptest! {
        /// The common shapes, which the fast path answers: the same answer as the parse.
        #[test]
        fn the_fast_host_path_agrees_with_the_authority_parse(
            s in "[a-zA-Z0-9.-]{1,12}(:[0-9]{0,6})?",
        ) {
            for scheme in ["http", "https", "ftp"] {
                let fast = simple_host_and_port(s.as_bytes(), scheme);
                proptest::prop_assert_eq!(
                    fast.unwrap_or_else(|| parsed_host_and_port(s.as_bytes(), scheme)),
                    parsed_host_and_port(s.as_bytes(), scheme)
                );
            }
        }
    }

    #[test]
    fn server_address_and_port_come_from_the_host_header() {
        fn hp<'a>(h: &'a str, scheme: &str) -> Option<(&'a str, Option<u16>)> {
            host_and_port(h.as_bytes(), scheme)
        }
        let some = |h: &'static str, p| Some((h, p));
        assert_eq!(hp("127.0.0.1:8080", "http"), some("127.0.0.1", Some(8080)));
        assert_eq!(hp("books.example", "http"), some("books.example", Some(80)));
        assert_eq!(
            hp("books.example", "https"),
            some("books.example", Some(443))
        );
        assert_eq!(hp("[::1]:9000", "http"), some("::1", Some(9000)));
        assert_eq!(hp("[::1]", "http"), some("::1", Some(80)));
        assert_eq!(
            hp("h:", "http"),
            some("h", Some(80)),
            "an empty port is the default"
        );
        assert_eq!(hp("h", "ftp"), some("h", None));
        for bad in ["", "a b", "h:port", "user:pw@h:80", "h:99999", "/path"] {
            assert_eq!(hp(bad, "http"), None, "{bad:?}");
        }
    }
}
