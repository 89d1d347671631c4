//! Trace-context propagation: W3C Trace Context and Baggage, B3 (single and multi header) and
//! Jaeger (`uber-trace-id` and `uberctx-*`).
//!
//! Why in-house: the opentelemetry-rust B3 and Jaeger propagators are deprecated and do not build
//! with opentelemetry 0.33. Each format is a small parser, so we own it, test it against the
//! examples in its specification and fuzz it with proptest. Owning them also lets one propagator
//! read every format while writing only the configured ones, with one size limit for all.
//!
//! # Extraction
//!
//! [`Propagation`] reads every supported format whatever `tracing.propagation` says, so a
//! service joins traces with W3C, Zipkin and Jaeger neighbours alike. The first format that
//! yields a valid trace id and span id wins, in this order: W3C `traceparent` (with
//! `tracestate`), B3 single `b3`, B3 multi `X-B3-*`, Jaeger `uber-trace-id`. W3C `baggage` and
//! Jaeger `uberctx-*` baggage are merged; `baggage` wins when both carry the same key.
//!
//! Malformed, oversized or hostile headers are ignored with a debug log (the header name and
//! length, never its value): the request starts a new root trace. Parsing never panics and
//! never fails the request.
//!
//! # W3C Trace Context
//!
//! `traceparent` follows the version rules: `ff` is invalid, `00` is exactly 55 characters,
//! a later version is read by the `00` rules on its first 55 characters when a `-` or the
//! end follows them, hex is lower case and all-zero ids are invalid. `tracestate` is read
//! only with a valid `traceparent`. Repeated `tracestate` headers are joined in order, and
//! the list must follow the current grammar (keys may hold `@` anywhere after the first
//! character and be 256 characters long) with at most 32 members; empty members are
//! ignored and a repeated key keeps its first value. An invalid `tracestate` is discarded
//! whole and never sent on. A valid one is forwarded unchanged on calls of the same trace;
//! entries this process sets on the span's `TraceState` go to the front. See `w3c.rs` and
//! `tracestate.rs` for why this does not use the SDK's propagator.
//!
//! # Injection
//!
//! Only the configured formats are written, in the configured order. [`inject_headers`] and
//! [`inject_current_headers`] write into an [`http::HeaderMap`], which is what both reqwest
//! (`request.headers_mut()`) and hyper (`Request::headers_mut`) expose. Values that are not
//! valid header values are skipped, never a panic.
//!
//! # Size limits
//!
//! A propagation header longer than [`MAX_HEADER_LEN`] (512) bytes is ignored as if absent:
//! `traceparent`, `b3`, `X-B3-*`, `uber-trace-id` and each `uberctx-*`. W3C `baggage` keeps
//! the W3C Baggage limit of [`MAX_BAGGAGE_HEADER_LEN`] (8192) bytes, because 512 bytes would
//! drop legitimate baggage. `tracestate` is read up to [`MAX_TRACESTATE_HEADER_LEN`] (8192)
//! bytes and sent at most 512: the W3C spec asks every vendor to propagate that much, and to
//! shorten a longer list by whole members, those over 128 characters first, then from the
//! right. At most 64 `uberctx-*` entries are read.
//!
//! # Sampling-only headers (`b3: 0`)
//!
//! B3 can carry a sampling decision with no ids: deny-only `b3: 0` (or `X-B3-Sampled: 0`
//! alone), and likewise `b3: 1` and `b3: d`. OpenTelemetry's `SpanContext` cannot say
//! "no ids, but don't sample", so extraction returns a context whose remote span context is
//! **invalid** (zero ids) with the sampled flag set from the decision, plus a
//! [`SamplingState`] marker readable with [`sampling_state`]:
//!
//! - The SDK's `Sampler::ParentBased` looks at `has_active_span()` first, so it sees this
//!   invalid parent and follows its flag: `b3: 0` drops the trace, `b3: 1` and `b3: d` sample
//!   it. The tracer never inherits the zero ids: the request gets a fresh trace id, so logs
//!   still carry ids.
//! - The spec-compliant `Sampler::parent_based(..)` (`ParentBasedSampler`) treats an invalid
//!   parent as no parent; a custom sampler can call [`sampling_state`] to honour the hint.
//!
//! Every B3 or Jaeger extraction records its [`SamplingState`] the same way, including
//! `Defer` (no decision) and `Debug`. On injection, `Debug` on a sampled context is written
//! as `b3: …-d`, `X-B3-Flags: 1` or Jaeger flags `03`; a context with no ids but a `Deny`,
//! `Accept` or `Debug` marker is written as `b3: 0|1|d` or `X-B3-Sampled`/`X-B3-Flags`.

mod b3;
mod jaeger;
#[cfg(test)]
mod test_support;
mod tracestate;
mod w3c;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::BaggagePropagator;
use serde::{Deserialize, Serialize};

/// Propagation headers longer than this many bytes are ignored, except `tracestate` and
/// `baggage`. It is also the most `tracestate` sends on.
pub const MAX_HEADER_LEN: usize = 512;

/// The longest `tracestate` read, in bytes (repeated headers joined); longer ones are
/// ignored. Longer than [`MAX_HEADER_LEN`], so that a valid list can be cut by whole
/// members as the W3C spec says, and the common 8 KiB header limit of proxies.
pub const MAX_TRACESTATE_HEADER_LEN: usize = 8192;

/// The W3C Baggage limit for the `baggage` header, in bytes; longer ones are ignored.
pub const MAX_BAGGAGE_HEADER_LEN: usize = 8192;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const BAGGAGE: &str = "baggage";

/// A wire format for trace context, as named in `tracing.propagation` (and in the
/// standard `OTEL_PROPAGATORS` variable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropagationFormat {
    /// `tracecontext`: W3C `traceparent` and `tracestate`.
    TraceContext,
    /// `baggage`: W3C `baggage`.
    Baggage,
    /// `b3`: the Zipkin B3 single header, `b3: {TraceId}-{SpanId}-{SamplingState}`.
    B3,
    /// `b3multi`: the Zipkin B3 multi headers, `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`
    /// (or `X-B3-Flags`).
    B3Multi,
    /// `jaeger`: `uber-trace-id: {trace-id}:{span-id}:0:{flags}` and `uberctx-{key}` baggage.
    Jaeger,
}

impl PropagationFormat {
    /// Every supported format.
    pub const ALL: [PropagationFormat; 5] = [
        PropagationFormat::TraceContext,
        PropagationFormat::Baggage,
        PropagationFormat::B3,
        PropagationFormat::B3Multi,
        PropagationFormat::Jaeger,
    ];

    /// The formats injected by default: W3C Trace Context and Baggage.
    pub const DEFAULT: [PropagationFormat; 2] =
        [PropagationFormat::TraceContext, PropagationFormat::Baggage];

    /// The config name: `tracecontext`, `baggage`, `b3`, `b3multi` or `jaeger`.
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationFormat::TraceContext => "tracecontext",
            PropagationFormat::Baggage => "baggage",
            PropagationFormat::B3 => "b3",
            PropagationFormat::B3Multi => "b3multi",
            PropagationFormat::Jaeger => "jaeger",
        }
    }

    /// The headers this format writes. Jaeger also writes one `uberctx-{key}` per baggage
    /// entry, which cannot be listed in advance.
    fn fields(self) -> &'static [&'static str] {
        match self {
            PropagationFormat::TraceContext => &[TRACEPARENT, TRACESTATE],
            PropagationFormat::Baggage => &[BAGGAGE],
            PropagationFormat::B3 => &[b3::B3],
            PropagationFormat::B3Multi => &[
                b3::TRACE_ID,
                b3::SPAN_ID,
                b3::PARENT_SPAN_ID,
                b3::SAMPLED,
                b3::FLAGS,
            ],
            PropagationFormat::Jaeger => &[jaeger::UBER_TRACE_ID],
        }
    }
}

impl fmt::Display for PropagationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a propagation format name that is not one of `tracecontext`, `baggage`,
/// `b3`, `b3multi` or `jaeger`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown propagation format `{0}`: expected tracecontext, baggage, b3, b3multi or jaeger")]
pub struct UnknownPropagationFormat(String);

impl FromStr for PropagationFormat {
    type Err = UnknownPropagationFormat;

    /// Parses a config name, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        PropagationFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownPropagationFormat(name.to_owned()))
    }
}

/// A sampling decision as B3 names it, recorded on contexts extracted from B3 or Jaeger
/// headers. Read it with [`sampling_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SamplingState {
    /// No decision was sent: the receiver decides. The span context is not sampled.
    Defer,
    /// Do not sample (`b3: 0`, `X-B3-Sampled: 0`, Jaeger flags without bit 1).
    Deny,
    /// Sample (`b3: 1`, `X-B3-Sampled: 1`, Jaeger flags bit 1).
    Accept,
    /// Sample, and ask the backend to keep the trace (`b3: d`, `X-B3-Flags: 1`, Jaeger
    /// flags bit 2). Implies [`SamplingState::Accept`].
    Debug,
}

impl SamplingState {
    fn trace_flags(self) -> TraceFlags {
        match self {
            SamplingState::Accept | SamplingState::Debug => TraceFlags::SAMPLED,
            SamplingState::Defer | SamplingState::Deny => TraceFlags::NOT_SAMPLED,
        }
    }
}

/// What an extraction found besides the span context, as one context value: replaced by
/// every extraction that finds ids, so neither part outlives the trace it came with.
#[derive(Debug)]
struct Extracted {
    /// The B3 or Jaeger sampling state behind [`sampling_state`]; `None` after W3C.
    sampling: Option<SamplingState>,
    /// The W3C `tracestate` as received, when valid.
    tracestate: Option<w3c::IncomingTraceState>,
}

/// The B3 or Jaeger sampling state extracted into `cx`, if its trace context came from
/// one of those formats. For a deny-only `b3: 0` this is `Some(Deny)` while the span
/// context is invalid; see the [module docs](self) for how samplers see it.
pub fn sampling_state(cx: &Context) -> Option<SamplingState> {
    cx.get::<Extracted>().and_then(|v| v.sampling)
}

/// What a B3 or Jaeger parser found in a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parsed {
    /// A trace id and span id, both non-zero, with the sampling state.
    Ids {
        trace_id: TraceId,
        span_id: SpanId,
        state: SamplingState,
    },
    /// A sampling decision with no ids, such as `b3: 0`. Never `Defer`.
    StateOnly(SamplingState),
}

impl Parsed {
    fn apply(self, cx: &Context) -> Context {
        let (trace_id, span_id, state) = match self {
            Parsed::Ids {
                trace_id,
                span_id,
                state,
            } => (trace_id, span_id, state),
            Parsed::StateOnly(state) => (TraceId::INVALID, SpanId::INVALID, state),
        };
        let sc = SpanContext::new(
            trace_id,
            span_id,
            state.trace_flags(),
            true,
            TraceState::default(),
        );
        cx.with_remote_span_context(sc).with_value(Extracted {
            sampling: Some(state),
            tracestate: None,
        })
    }
}

/// What B3 and Jaeger injection write for a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outgoing {
    /// A valid span context.
    Ids {
        trace_id: TraceId,
        span_id: SpanId,
        sampled: bool,
        debug: bool,
    },
    /// No valid ids, but a sampling decision to pass on (never `Defer`).
    StateOnly(SamplingState),
}

impl Outgoing {
    /// What to write for `cx`, whose extracted sampling state is `state`.
    fn of(cx: &Context, state: Option<SamplingState>) -> Option<Outgoing> {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let sampled = sc.is_sampled();
            Some(Outgoing::Ids {
                trace_id: sc.trace_id(),
                span_id: sc.span_id(),
                sampled,
                debug: sampled && state == Some(SamplingState::Debug),
            })
        } else {
            match state {
                Some(s @ (SamplingState::Deny | SamplingState::Accept | SamplingState::Debug)) => {
                    Some(Outgoing::StateOnly(s))
                }
                Some(SamplingState::Defer) | None => None,
            }
        }
    }
}

/// Lower-hex trace id: 16 characters when the high 64 bits are zero (a 64-bit id, as it
/// arrived), 32 otherwise.
fn trace_id_hex(id: TraceId) -> String {
    let v = u128::from_be_bytes(id.to_bytes());
    if v >> 64 == 0 {
        format!("{v:016x}")
    } else {
        format!("{v:032x}")
    }
}

/// Lower-hex span id, 16 characters.
fn span_id_hex(id: SpanId) -> String {
    format!("{:016x}", u64::from_be_bytes(id.to_bytes()))
}

/// The size limit for a header.
fn limit_for(key: &str) -> usize {
    if key.eq_ignore_ascii_case(BAGGAGE) {
        MAX_BAGGAGE_HEADER_LEN
    } else if key.eq_ignore_ascii_case(TRACESTATE) {
        MAX_TRACESTATE_HEADER_LEN
    } else {
        MAX_HEADER_LEN
    }
}

/// Hides values over the size limit, so no parser (ours or the SDK's) sees them.
struct Bounded<'a>(&'a dyn Extractor);

impl Extractor for Bounded<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).filter(|v| v.len() <= limit_for(key))
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

/// Logs (at debug) a propagation header that was present but unusable.
fn note_ignored(raw: &dyn Extractor, name: &str) {
    if let Some(value) = raw.get(name) {
        let len = value.len();
        if len > limit_for(name) {
            tracing::debug!(
                header = name,
                len,
                limit = limit_for(name),
                "ignoring an oversized trace propagation header"
            );
        } else {
            tracing::debug!(
                header = name,
                len,
                "ignoring a malformed trace propagation header"
            );
        }
    }
}

/// Writes W3C `baggage`, percent-encoding every value byte except `A-Z a-z 0-9 - . _ ~`.
///
/// Stricter than the SDK's `BaggagePropagator`, which leaves `%` and `+` bare: the W3C spec
/// requires `%` to be encoded, and the Python SDK decodes a bare `+` as a space. Entries
/// that would take the header past [`MAX_BAGGAGE_HEADER_LEN`] are left out.
fn inject_w3c_baggage(cx: &Context, injector: &mut dyn Injector) {
    let mut header = String::new();
    for (key, (value, metadata)) in cx.baggage() {
        let key = key.as_str();
        let token = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            continue;
        }
        let mut entry = format!("{key}=");
        for b in value.as_str().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                entry.push(char::from(b));
            } else {
                entry.push_str(&format!("%{b:02X}"));
            }
        }
        let metadata = metadata.as_str();
        if !metadata.is_empty() {
            entry.push(';');
            entry.push_str(metadata);
        }
        let sep = usize::from(!header.is_empty());
        if header.len() + sep + entry.len() > MAX_BAGGAGE_HEADER_LEN {
            continue;
        }
        if sep == 1 {
            header.push(',');
        }
        header.push_str(&entry);
    }
    if !header.is_empty() {
        injector.set(BAGGAGE, header);
    }
}

/// The process-wide propagation, set once by the chassis from `tracing.propagation`.
static GLOBAL: OnceLock<Propagation> = OnceLock::new();

/// Installs the process-wide propagation used by [`inject_headers`] and
/// [`inject_current_headers`]. The first call wins; the installed value is returned.
pub(crate) fn install(propagation: Propagation) -> &'static Propagation {
    GLOBAL.get_or_init(|| propagation)
}

/// The process-wide propagation: the configured formats, or W3C Trace Context and Baggage
/// when tracing was not set up.
pub fn global() -> &'static Propagation {
    GLOBAL.get_or_init(Propagation::default)
}

/// Writes `cx` into `headers` in the configured formats (see [`global`]). Use it for
/// outgoing calls, with a context such as
/// [`RequestContext::otel_context`](crate::telemetry::RequestContext::otel_context):
///
/// ```
/// use ms_chassis::telemetry::propagation::inject_headers;
/// let mut headers = http::HeaderMap::new();
/// inject_headers(&opentelemetry::Context::current(), &mut headers);
/// ```
pub fn inject_headers(cx: &Context, headers: &mut HeaderMap) {
    global().inject_headers(cx, headers);
}

/// Writes the current OpenTelemetry context into `headers` in the configured formats.
/// Inside a request handler this is the request's server span (or a child span opened
/// with `tracing` macros).
pub fn inject_current_headers(headers: &mut HeaderMap) {
    global().inject_current_headers(headers);
}

/// Every fixed header name a supported format reads the trace identity or baggage from
/// (Jaeger baggage adds `uberctx-*` headers, see [`reads_header`]).
const PROPAGATION_HEADERS: [&str; 9] = [
    TRACEPARENT,
    TRACESTATE,
    BAGGAGE,
    b3::B3,
    b3::TRACE_ID,
    b3::SPAN_ID,
    b3::SAMPLED,
    b3::FLAGS,
    jaeger::UBER_TRACE_ID,
];

/// Whether a supported format reads the header `name` (lower case).
fn reads_header(name: &str) -> bool {
    PROPAGATION_HEADERS.contains(&name) || name.starts_with(jaeger::BAGGAGE_PREFIX)
}

/// Whether `name` (lower case) is a header of a supported propagation format: trace
/// context is written by the propagators, never copied from one request to another.
pub(crate) fn is_propagation_header(name: &str) -> bool {
    name == b3::PARENT_SPAN_ID || reads_header(name)
}

/// Whether any header a supported format reads is present. One pass over the request's
/// header names, comparing strings: looking each format's names up in the map instead
/// hashes nine names per request, and most requests carry none of them.
fn carries_propagation(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| reads_header(k.as_str()))
}

/// A propagator that extracts every supported format and injects the configured ones.
///
/// It is an OpenTelemetry [`TextMapPropagator`], so it also works with any
/// [`Extractor`]/[`Injector`] carrier, and with `opentelemetry::global::set_text_map_propagator`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagation {
    formats: Vec<PropagationFormat>,
    fields: Vec<String>,
}

impl Default for Propagation {
    /// W3C Trace Context and Baggage.
    fn default() -> Self {
        Propagation::new(&PropagationFormat::DEFAULT)
    }
}

impl Propagation {
    /// A propagator injecting `formats` (duplicates are ignored, order is kept). Extraction
    /// always accepts every format. With no formats, nothing is injected.
    pub fn new(formats: &[PropagationFormat]) -> Self {
        let mut unique: Vec<PropagationFormat> = Vec::with_capacity(formats.len());
        for f in formats {
            if !unique.contains(f) {
                unique.push(*f);
            }
        }
        let fields = unique
            .iter()
            .flat_map(|f| f.fields().iter().map(|s| (*s).to_owned()))
            .collect();
        Propagation {
            formats: unique,
            fields,
        }
    }

    /// The formats written on injection.
    pub fn formats(&self) -> &[PropagationFormat] {
        &self.formats
    }

    /// Writes `cx` into `headers` in the configured formats, replacing headers of the same
    /// name. Values that are not valid header values are skipped.
    pub fn inject_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_into(cx, &mut HeaderInjector(headers));
    }

    /// Writes the current OpenTelemetry context into `headers` in the configured formats.
    pub fn inject_current_headers(&self, headers: &mut HeaderMap) {
        Context::map_current(|cx| self.inject_headers(cx, headers));
    }

    /// Reads the trace context and baggage of an incoming request, in any supported format,
    /// into a fresh [`Context`]. Without usable headers the context has no span, and a span
    /// started with it as parent is a new root.
    pub fn extract_headers(&self, headers: &HeaderMap) -> Context {
        self.extract_headers_with_context(&Context::new(), headers)
    }

    /// Like [`extract_headers`](Self::extract_headers), on top of `cx`.
    pub fn extract_headers_with_context(&self, cx: &Context, headers: &HeaderMap) -> Context {
        // Most requests carry no trace context: skip the extractors entirely then. This runs
        // on every request, so it only looks at header names.
        if !carries_propagation(headers) {
            return cx.clone();
        }
        self.extract_from(cx, &HeaderExtractor::new(headers), Some(headers))
    }

    /// Extraction from any carrier; `headers` is the map behind it, if it is one, so that a
    /// `tracestate` can be forwarded as the very header value it came in.
    fn extract_from(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        headers: Option<&HeaderMap>,
    ) -> Context {
        let carrier = Bounded(extractor);
        let mut out = self.extract_identity(extractor, &carrier, headers, cx);

        // Baggage: Jaeger `uberctx-*` first, then W3C `baggage` over it.
        let jaeger_items = jaeger::extract_baggage(&carrier);
        let w3c_present = carrier.get(BAGGAGE).is_some();
        if extractor.get(BAGGAGE).is_some() && !w3c_present {
            note_ignored(extractor, BAGGAGE);
        }
        if w3c_present || !jaeger_items.is_empty() {
            let mut baggage = Baggage::new();
            for (key, value) in jaeger_items {
                let _ = baggage.insert(key, value);
            }
            if w3c_present {
                let w3c = BaggagePropagator::new().extract_with_context(&Context::new(), &carrier);
                for (key, (value, metadata)) in w3c.baggage() {
                    let _ =
                        baggage.insert_with_metadata(key.clone(), value.clone(), metadata.clone());
                }
            }
            out = out.with_baggage(baggage);
        }
        out
    }

    /// Writes `cx` in the configured formats.
    fn inject_into(&self, cx: &Context, injector: &mut dyn ValueInjector) {
        // One look-up serves every format.
        let extracted = cx.get::<Extracted>();
        let outgoing = Outgoing::of(cx, extracted.and_then(|e| e.sampling));
        for format in &self.formats {
            match format {
                PropagationFormat::TraceContext => {
                    w3c::inject(cx, extracted.and_then(|e| e.tracestate.as_ref()), injector);
                }
                PropagationFormat::Baggage => inject_w3c_baggage(cx, injector),
                PropagationFormat::B3 => {
                    if let Some(out) = outgoing {
                        b3::inject_single(out, injector);
                    }
                }
                PropagationFormat::B3Multi => {
                    if let Some(out) = outgoing {
                        b3::inject_multi(out, injector);
                    }
                }
                PropagationFormat::Jaeger => {
                    if let Some(out) = outgoing {
                        jaeger::inject(out, injector);
                    }
                    jaeger::inject_baggage(cx, injector);
                }
            }
        }
    }

    /// The trace identity found in `carrier`, in order of preference.
    fn extract_identity(
        &self,
        raw: &dyn Extractor,
        carrier: &Bounded<'_>,
        headers: Option<&HeaderMap>,
        cx: &Context,
    ) -> Context {
        // W3C: `tracestate` is read only with a valid `traceparent`. One look-up per header.
        if let Some(raw_traceparent) = raw.get(TRACEPARENT) {
            if raw_traceparent.len() <= MAX_HEADER_LEN {
                let raw_tracestate = raw.get(TRACESTATE);
                let tracestate = raw_tracestate.filter(|v| v.len() <= MAX_TRACESTATE_HEADER_LEN);
                if raw_tracestate.is_some() && tracestate.is_none() {
                    note_ignored(raw, TRACESTATE);
                }
                let received = headers.filter(|_| tracestate.is_some()).and_then(|h| {
                    let mut values = h.get_all(TRACESTATE).iter();
                    values.next().filter(|_| values.next().is_none())
                });
                if let Some((sc, tracestate)) = w3c::extract(raw_traceparent, tracestate, received)
                {
                    return cx.with_remote_span_context(sc).with_value(Extracted {
                        sampling: None,
                        tracestate,
                    });
                }
            }
            note_ignored(raw, TRACEPARENT);
        }

        let mut state_only = None;
        let mut consider = |parsed: Option<Parsed>, names: &[&str]| match parsed {
            Some(ids @ Parsed::Ids { .. }) => Some(ids),
            Some(state @ Parsed::StateOnly(_)) => {
                state_only.get_or_insert(state);
                None
            }
            None => {
                for name in names {
                    note_ignored(raw, name);
                }
                None
            }
        };

        if raw.get(b3::B3).is_some() {
            let parsed = carrier.get(b3::B3).and_then(b3::parse_single);
            if let Some(ids) = consider(parsed, &[b3::B3]) {
                return ids.apply(cx);
            }
        }
        if b3::MULTI_HEADERS.iter().any(|h| raw.get(h).is_some())
            && let Some(ids) = consider(b3::extract_multi(carrier), &b3::MULTI_HEADERS)
        {
            return ids.apply(cx);
        }
        if raw.get(jaeger::UBER_TRACE_ID).is_some() {
            let parsed = carrier.get(jaeger::UBER_TRACE_ID).and_then(jaeger::parse);
            if let Some(ids) = consider(parsed, &[jaeger::UBER_TRACE_ID]) {
                return ids.apply(cx);
            }
        }
        match state_only {
            Some(state) => state.apply(cx),
            None => cx.clone(),
        }
    }
}

impl TextMapPropagator for Propagation {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject_into(cx, &mut AnyInjector(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract_from(cx, extractor, None)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// An [`Injector`] that also takes a ready header value, which an [`http::HeaderMap`] keeps
/// without a copy (a forwarded `tracestate`).
trait ValueInjector: Injector {
    /// Sets `key` to `value`, replacing any value it had.
    fn set_value(&mut self, key: &'static str, value: HeaderValue);
}

/// Any carrier: a value is set as a string.
struct AnyInjector<'a>(&'a mut dyn Injector);

impl Injector for AnyInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set(key, value);
    }
}

impl ValueInjector for AnyInjector<'_> {
    fn set_value(&mut self, key: &'static str, value: HeaderValue) {
        if let Ok(value) = value.to_str() {
            self.0.set(key, value.to_owned());
        }
    }
}

/// Writes propagation headers into an [`http::HeaderMap`], replacing any of the same name.
///
/// A key that is not a valid header name, or a value that is not a valid header value, is
/// skipped (with a debug log); an empty value removes the header.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            tracing::debug!(
                len = key.len(),
                "skipping an invalid propagation header name"
            );
            return;
        };
        if value.is_empty() {
            self.0.remove(&name);
            return;
        }
        // Visible ASCII only: `http` would accept obs-text bytes, which peers may reject.
        if !value.is_ascii() {
            tracing::debug!(header = %name, "skipping a non-ASCII propagation header value");
            return;
        }
        // From the string's own buffer, without a copy.
        match HeaderValue::try_from(value) {
            Ok(v) => {
                self.0.insert(name, v);
            }
            Err(_) => {
                tracing::debug!(header = %name, "skipping an invalid propagation header value");
            }
        }
    }
}

impl ValueInjector for HeaderInjector<'_> {
    fn set_value(&mut self, key: &'static str, value: HeaderValue) {
        self.0.insert(key, value);
    }
}

/// Reads propagation headers from an [`http::HeaderMap`].
///
/// Values that are not visible ASCII are treated as absent. A repeated `traceparent` or
/// `uber-trace-id` is treated as absent (as W3C requires: the combined value is invalid).
/// Repeated `tracestate` and `baggage` are joined with `,`, as HTTP list headers. For other
/// repeated headers (`b3`, `X-B3-*`, `uberctx-*`) the first value wins, as B3 specifies.
#[derive(Debug)]
pub struct HeaderExtractor<'a> {
    headers: &'a HeaderMap,
    /// Joined values of repeated list headers; `None` when unusable (non-ASCII or too long).
    joined: Vec<(&'static str, Option<String>)>,
}

impl<'a> HeaderExtractor<'a> {
    /// Wraps `headers`.
    pub fn new(headers: &'a HeaderMap) -> Self {
        let mut joined = Vec::new();
        for name in [TRACESTATE, BAGGAGE] {
            let mut values = headers.get_all(name).iter();
            let (Some(first), Some(_)) = (values.next(), values.next()) else {
                continue;
            };
            let limit = limit_for(name);
            let mut out = String::new();
            let mut ok = true;
            for v in std::iter::once(first).chain(headers.get_all(name).iter().skip(1)) {
                match v.to_str() {
                    Ok(s) if out.len() + 1 + s.len() <= limit => {
                        if !out.is_empty() {
                            out.push(',');
                        }
                        out.push_str(s);
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            joined.push((name, ok.then_some(out)));
        }
        HeaderExtractor { headers, joined }
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some((_, v)) = self
            .joined
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            return v.as_deref();
        }
        let mut values = self.headers.get_all(key).iter();
        let first = values.next()?;
        let single_only = key.eq_ignore_ascii_case(TRACEPARENT)
            || key.eq_ignore_ascii_case(jaeger::UBER_TRACE_ID);
        if single_only && values.next().is_some() {
            return None;
        }
        first.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry::{KeyValue, StringValue};
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    use proptest::prelude::*;

    use super::test_support::*;
    use super::*;

    const TRACEPARENT_EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const W3C_TRACE: u128 = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c;
    const W3C_SPAN: u64 = 0xb7ad_6b71_6920_3331;

    fn sc(cx: &Context) -> SpanContext {
        cx.span().span_context().clone()
    }

    #[test]
    fn requests_without_trace_headers_take_the_fast_path() {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert!(!carries_propagation(&h));
        for name in [
            "traceparent",
            "b3",
            "x-b3-sampled",
            "uber-trace-id",
            "uberctx-k",
            "baggage",
        ] {
            let mut with = h.clone();
            with.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            assert!(carries_propagation(&with), "{name}");
        }
    }

    #[test]
    fn config_names() {
        for (format, name) in [
            (PropagationFormat::TraceContext, "tracecontext"),
            (PropagationFormat::Baggage, "baggage"),
            (PropagationFormat::B3, "b3"),
            (PropagationFormat::B3Multi, "b3multi"),
            (PropagationFormat::Jaeger, "jaeger"),
        ] {
            assert_eq!(
                serde_json::to_string(&format).unwrap(),
                format!("\"{name}\"")
            );
            let back: PropagationFormat = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(back, format);
            assert_eq!(format.to_string(), name);
            assert_eq!(name.parse::<PropagationFormat>(), Ok(format));
            assert_eq!(
                format!(" {} ", name.to_uppercase()).parse::<PropagationFormat>(),
                Ok(format)
            );
        }
        assert!(serde_json::from_str::<PropagationFormat>("\"zipkin\"").is_err());
        assert!(serde_json::from_str::<PropagationFormat>("\"B3\"").is_err());
        let err = "xray".parse::<PropagationFormat>().unwrap_err();
        assert!(err.to_string().contains("xray"));
    }

    #[test]
    fn new_keeps_order_and_drops_duplicates() {
        let p = Propagation::new(&[
            PropagationFormat::B3,
            PropagationFormat::TraceContext,
            PropagationFormat::B3,
        ]);
        assert_eq!(
            p.formats(),
            &[PropagationFormat::B3, PropagationFormat::TraceContext]
        );
        assert_eq!(
            p.fields().collect::<Vec<_>>(),
            vec!["b3", "traceparent", "tracestate"]
        );
        assert_eq!(
            Propagation::default().formats(),
            &PropagationFormat::DEFAULT
        );
        let all = Propagation::new(&PropagationFormat::ALL);
        assert_eq!(all.fields().count(), 10);
    }

    #[test]
    fn w3c_spec_example() {
        let cx = extract(&[
            ("traceparent", TRACEPARENT_EXAMPLE),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        let sc = sc(&cx);
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id(), TraceId::from(W3C_TRACE));
        assert_eq!(sc.span_id(), SpanId::from(W3C_SPAN));
        assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(sampling_state(&cx), None);
    }

    #[test]
    fn extraction_order_of_preference() {
        let all = [
            ("traceparent", TRACEPARENT_EXAMPLE),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("uber-trace-id", "abc:def:0:1"),
        ];
        let expect = [
            W3C_TRACE,
            0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7,
            0x463a_c35c_9f64_13ad_4848_5a39_53bb_6124,
            0x463a_c35c_9f64_13ad_4848_5a39_53bb_6124,
            0xabc,
        ];
        // Drop the preferred formats one by one.
        for (skip, trace) in [0, 1, 2, 4]
            .into_iter()
            .zip([expect[0], expect[1], expect[2], expect[4]])
        {
            let cx = extract(&all[skip..]);
            assert_eq!(sc(&cx).trace_id(), TraceId::from(trace), "skip {skip}");
        }
        // Extraction ignores the configured formats.
        let cx = Propagation::new(&[]).extract_headers(&headers(&all[4..]));
        assert_eq!(sc(&cx).trace_id(), TraceId::from(0xabc));
    }

    #[test]
    fn malformed_preferred_format_falls_through() {
        let cx = extract(&[
            (
                "traceparent",
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            ),
            ("b3", "nonsense"),
            ("uber-trace-id", "abc:def:0:1"),
        ]);
        assert_eq!(sc(&cx).trace_id(), TraceId::from(0xabc));
    }

    #[test]
    fn ids_beat_a_sampling_only_hint() {
        let cx = extract(&[("b3", "0"), ("uber-trace-id", "abc:def:0:1")]);
        assert!(sc(&cx).is_valid() && sc(&cx).is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Accept));
    }

    #[test]
    fn hostile_w3c_headers_start_a_new_trace() {
        let long = format!("{TRACEPARENT_EXAMPLE}{}", "-0".repeat(5 * 1024));
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![(
                "traceparent",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )],
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-0000000000000000-01",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            )],
            vec![(
                "traceparent",
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            )],
            vec![("traceparent", &long)],
            vec![
                ("traceparent", TRACEPARENT_EXAMPLE),
                ("traceparent", TRACEPARENT_EXAMPLE),
            ],
            vec![("traceparent", "")],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            )],
            vec![(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            )],
            vec![(
                "traceparent",
                "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )],
            vec![(
                "traceparent",
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            )],
        ];
        for case in cases {
            let cx = extract(&case);
            assert!(!cx.has_active_span(), "{case:?}");
        }
        let mut map = HeaderMap::new();
        map.insert(
            "traceparent",
            HeaderValue::from_bytes(
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-\xc3\xa9",
            )
            .unwrap(),
        );
        assert!(
            !Propagation::default()
                .extract_headers(&map)
                .has_active_span()
        );
    }

    #[test]
    fn future_versions_may_carry_more_fields() {
        for value in [
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds",
        ] {
            let cx = extract(&[("traceparent", value)]);
            assert_eq!(sc(&cx).trace_id(), TraceId::from(W3C_TRACE), "{value}");
        }
    }

    #[test]
    fn oversized_tracestate_is_dropped_but_traceparent_kept() {
        // Valid members, but longer than anything read.
        let members: Vec<String> = (0..32)
            .map(|i| format!("k{i}={}", "v".repeat(255)))
            .collect();
        let state = members.join(",");
        assert!(state.len() > MAX_TRACESTATE_HEADER_LEN);
        let cx = extract(&[("traceparent", TRACEPARENT_EXAMPLE), ("tracestate", &state)]);
        assert!(sc(&cx).is_valid());
        assert_eq!(sc(&cx).trace_state().header(), "");
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        assert!(!out.contains_key("tracestate"));
    }

    #[test]
    fn repeated_list_headers_are_joined() {
        let cx = extract(&[
            ("traceparent", TRACEPARENT_EXAMPLE),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
            ("baggage", "k1=v1"),
            ("baggage", "k2=v2"),
        ]);
        assert_eq!(sc(&cx).trace_state().get("a"), Some("1"));
        assert_eq!(sc(&cx).trace_state().get("b"), Some("2"));
        assert_eq!(cx.baggage().len(), 2);
    }

    #[test]
    fn baggage_formats_are_merged_and_w3c_wins() {
        let cx = extract(&[
            ("baggage", "shared=w3c,only_w3c=1"),
            ("uberctx-shared", "jaeger"),
            ("uberctx-only-jaeger", "2"),
        ]);
        let b = cx.baggage();
        assert_eq!(b.len(), 3);
        assert_eq!(b.get("shared"), Some(&StringValue::from("w3c")));
        assert_eq!(b.get("only_w3c"), Some(&StringValue::from("1")));
        assert_eq!(b.get("only-jaeger"), Some(&StringValue::from("2")));
        // W3C baggage keeps its own (larger) limit.
        let big = format!("k={}", "v".repeat(4000));
        assert_eq!(extract(&[("baggage", &big)]).baggage().len(), 1);
        let huge = format!("k={}", "v".repeat(10 * 1024));
        assert!(extract(&[("baggage", &huge)]).baggage().is_empty());
    }

    #[test]
    fn injection_writes_only_configured_formats() {
        let cx = context(W3C_TRACE, W3C_SPAN, TraceFlags::SAMPLED)
            .with_baggage([KeyValue::new("k", "v")]);

        let mut map = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut map);
        assert_eq!(map["traceparent"], TRACEPARENT_EXAMPLE);
        assert_eq!(map["baggage"], "k=v");
        assert!(
            !map.contains_key("tracestate"),
            "empty tracestate is not sent"
        );
        assert_eq!(map.len(), 2, "{map:?}");

        let mut map = HeaderMap::new();
        Propagation::new(&[PropagationFormat::B3]).inject_headers(&cx, &mut map);
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(
            map["b3"],
            "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"
        );

        let mut map = HeaderMap::new();
        Propagation::new(&PropagationFormat::ALL).inject_headers(&cx, &mut map);
        for name in [
            "traceparent",
            "baggage",
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-sampled",
            "uber-trace-id",
            "uberctx-k",
        ] {
            assert!(map.contains_key(name), "{name} missing from {map:?}");
        }

        let mut map = HeaderMap::new();
        Propagation::new(&[]).inject_headers(&cx, &mut map);
        assert!(map.is_empty());
    }

    #[test]
    fn injection_replaces_stale_headers() {
        let mut map = headers(&[("traceparent", "stale"), ("tracestate", "stale=1")]);
        Propagation::default()
            .inject_headers(&context(W3C_TRACE, W3C_SPAN, TraceFlags::SAMPLED), &mut map);
        assert_eq!(map["traceparent"], TRACEPARENT_EXAMPLE);
        assert!(!map.contains_key("tracestate"));
    }

    #[test]
    fn header_injector_skips_invalid_names_and_values() {
        let mut map = HeaderMap::new();
        let mut inj = HeaderInjector(&mut map);
        inj.set("good", "value".into());
        inj.set("bad name", "value".into());
        inj.set("bad-value", "line\nbreak".into());
        inj.set("non-ascii", "é".into());
        inj.set("", "value".into());
        assert_eq!(map.len(), 1);
        assert_eq!(map["good"], "value");
    }

    #[test]
    fn round_trip_every_format() {
        for format in [
            PropagationFormat::TraceContext,
            PropagationFormat::B3,
            PropagationFormat::B3Multi,
            PropagationFormat::Jaeger,
        ] {
            let p = Propagation::new(&[format]);
            for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
                let mut map = HeaderMap::new();
                p.inject_headers(&context(W3C_TRACE, W3C_SPAN, flags), &mut map);
                let back = sc(&p.extract_headers(&map));
                assert_eq!(back.trace_id(), TraceId::from(W3C_TRACE), "{format}");
                assert_eq!(back.span_id(), SpanId::from(W3C_SPAN), "{format}");
                assert_eq!(back.trace_flags(), flags, "{format}");
            }
        }
    }

    #[test]
    fn works_with_any_carrier() {
        let mut carrier = HashMap::new();
        carrier.insert("b3".to_owned(), "0".to_owned());
        let cx = Propagation::default().extract_with_context(&Context::new(), &carrier);
        assert_eq!(sampling_state(&cx), Some(SamplingState::Deny));
        // A later W3C extraction on top clears the B3 marker.
        carrier.clear();
        carrier.insert("traceparent".to_owned(), TRACEPARENT_EXAMPLE.to_owned());
        let cx = Propagation::default().extract_with_context(&cx, &carrier);
        assert_eq!(sampling_state(&cx), None);
        assert!(sc(&cx).is_valid());
        // Nothing to extract keeps the incoming context.
        let cx2 =
            Propagation::default().extract_with_context(&cx, &HashMap::<String, String>::new());
        assert_eq!(sc(&cx2), sc(&cx));
    }

    #[test]
    fn samplers_respect_sampling_only_headers() {
        let sample = |sampler: Sampler, cx: &Context| {
            let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
            let span = provider.tracer("test").start_with_context("server", cx);
            let sc = span.span_context().clone();
            assert!(sc.is_valid(), "a fresh trace has ids even when dropped");
            assert_ne!(sc.trace_id(), TraceId::INVALID);
            sc.is_sampled()
        };
        let parent_on = || Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let parent_off = || Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
        // Deny-only stops a sampler that would otherwise sample.
        assert!(!sample(parent_on(), &extract(&[("b3", "0")])));
        assert!(!sample(parent_on(), &extract(&[("x-b3-sampled", "0")])));
        // Accept- and debug-only sample where the root sampler would not.
        assert!(sample(parent_off(), &extract(&[("b3", "1")])));
        assert!(sample(parent_off(), &extract(&[("b3", "d")])));
        // No headers: the root sampler decides.
        assert!(sample(parent_on(), &extract(&[])));
        assert!(!sample(parent_off(), &extract(&[])));
        // Ids with deny keep the trace id and are not sampled.
        let cx = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]);
        assert!(!sample(parent_on(), &cx));
    }

    #[test]
    fn global_inject_defaults_to_w3c() {
        let cx = context(W3C_TRACE, W3C_SPAN, TraceFlags::SAMPLED);
        let mut map = HeaderMap::new();
        inject_headers(&cx, &mut map);
        assert_eq!(map["traceparent"], TRACEPARENT_EXAMPLE);
        let _guard = cx.attach();
        let mut map = HeaderMap::new();
        inject_current_headers(&mut map);
        assert_eq!(map["traceparent"], TRACEPARENT_EXAMPLE);
    }

    const NAMES: [&str; 12] = [
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
        "uber-trace-id",
        "uberctx-k",
        "uberctx-other",
    ];

    proptest! {
        #[test]
        fn arbitrary_header_maps_never_panic(
            entries in proptest::collection::vec(
                (prop::sample::select(NAMES.to_vec()), proptest::collection::vec(any::<u8>(), 0..600)),
                0..8,
            ),
        ) {
            let mut map = HeaderMap::new();
            for (name, bytes) in entries {
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    map.append(name, value);
                }
            }
            let p = Propagation::new(&PropagationFormat::ALL);
            let cx = p.extract_headers(&map);
            // Whatever came in can be written out again without panicking.
            let mut out = HeaderMap::new();
            p.inject_headers(&cx, &mut out);
            if sc(&cx).is_valid() {
                prop_assert!(out.contains_key("traceparent"));
            }
        }

        #[test]
        fn arbitrary_traceparent_never_panics(s in "[0-9a-fA-F-]{0,70}|\\PC{0,70}") {
            if let Ok(value) = HeaderValue::from_str(&s) {
                let mut map = HeaderMap::new();
                map.insert("traceparent", value);
                let _ = Propagation::default().extract_headers(&map);
            }
        }

        #[test]
        fn w3c_round_trip(trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled in any::<bool>()) {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
            let p = Propagation::default();
            let mut map = HeaderMap::new();
            p.inject_headers(&context(trace, span, flags), &mut map);
            let back = sc(&p.extract_headers(&map));
            prop_assert_eq!(back.trace_id(), TraceId::from(trace));
            prop_assert_eq!(back.span_id(), SpanId::from(span));
            prop_assert_eq!(back.is_sampled(), sampled);
        }
    }
}
