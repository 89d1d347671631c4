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

// The propagator (this file) asks each format in turn. Each format parses and writes its
// own headers (`w3c` with `tracestate`, `baggage`, `b3`, `jaeger`); `format` names the
// formats and their headers, `sampling` holds the decision B3 and Jaeger share, `limits`
// bounds every header before a parser sees it, and `carrier` adapts `http::HeaderMap`.
mod b3;
mod baggage;
mod carrier;
mod format;
mod jaeger;
mod limits;
mod sampling;
/// What the server stack needs from a request's header names, found in one pass over
/// them: the `x-request-id` value, and whether any trace format's header is there. A map
/// look-up of `x-request-id` hashes the name, which costs more than comparing every name of
/// a typical request, and the trace check walks the names anyway.
pub(crate) struct IncomingHeaders<'a> {
    headers: &'a HeaderMap,
    /// The first `x-request-id` value, as sent.
    pub(crate) request_id: Option<&'a http::HeaderValue>,
    carries_trace: bool,
}

impl<'a> IncomingHeaders<'a> {
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut request_id = None;
        let mut carries_trace = false;
        for (name, value) in headers {
            let name = name.as_str();
            if name == crate::telemetry::X_REQUEST_ID.as_str() {
                request_id.get_or_insert(value);
            } else if !carries_trace {
                carries_trace = reads_header(name);
            }
        }
        Self {
            headers,
            request_id,
            carries_trace,
        }
    }
}

#[cfg(test)]
mod test_support;
mod tracestate;
mod w3c;

use std::sync::OnceLock;

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;

use carrier::{AnyInjector, ValueInjector};
use format::reads_header;
use limits::{Bounded, note_ignored};
use sampling::{Outgoing, Parsed};
use w3c::{TRACEPARENT, TRACESTATE};

pub use carrier::{HeaderExtractor, HeaderInjector};
pub(crate) use format::is_propagation_header;
pub use format::{PropagationFormat, UnknownPropagationFormat};
pub use limits::{MAX_BAGGAGE_HEADER_LEN, MAX_HEADER_LEN, MAX_TRACESTATE_HEADER_LEN};
pub use sampling::{SamplingState, sampling_state};

/// What an extraction found besides the span context, as one context value: replaced by
/// every extraction that finds ids, so neither part outlives the trace it came with.
#[derive(Debug)]
struct Extracted {
    /// The B3 or Jaeger sampling state behind [`sampling_state`]; `None` after W3C.
    sampling: Option<SamplingState>,
    /// The W3C `tracestate` as received, when valid.
    tracestate: Option<w3c::IncomingTraceState>,
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
        if !headers.keys().any(|k| reads_header(k.as_str())) {
            return cx.clone();
        }
        self.extract_from(cx, &HeaderExtractor::new(headers), Some(headers))
    }

    /// The server's extraction, when [`IncomingHeaders`] has already looked at the names.
    pub(crate) fn extract_incoming(&self, incoming: &IncomingHeaders<'_>) -> Context {
        if !incoming.carries_trace {
            return Context::new();
        }
        let headers = incoming.headers;
        self.extract_from(
            &Context::new(),
            &HeaderExtractor::new(headers),
            Some(headers),
        )
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
        let out = self.extract_identity(extractor, &carrier, headers, cx);

        baggage::extract(extractor, &carrier, out)
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
                PropagationFormat::Baggage => baggage::inject(cx, injector),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::HeaderValue;
    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
    use proptest::prelude::*;

    use super::test_support::*;
    use super::*;

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
    fn extraction_order_of_preference() {
        let all = [
            ("traceparent", SPEC_TRACEPARENT),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("uber-trace-id", "abc:def:0:1"),
        ];
        let expect = [
            SPEC_TRACE,
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
    fn injection_writes_only_configured_formats() {
        let cx = context(SPEC_TRACE, SPEC_SPAN, TraceFlags::SAMPLED)
            .with_baggage([KeyValue::new("k", "v")]);

        let mut map = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut map);
        assert_eq!(map["traceparent"], SPEC_TRACEPARENT);
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
                p.inject_headers(&context(SPEC_TRACE, SPEC_SPAN, flags), &mut map);
                let back = sc(&p.extract_headers(&map));
                assert_eq!(back.trace_id(), TraceId::from(SPEC_TRACE), "{format}");
                assert_eq!(back.span_id(), SpanId::from(SPEC_SPAN), "{format}");
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
        carrier.insert("traceparent".to_owned(), SPEC_TRACEPARENT.to_owned());
        let cx = Propagation::default().extract_with_context(&cx, &carrier);
        assert_eq!(sampling_state(&cx), None);
        assert!(sc(&cx).is_valid());
        // Nothing to extract keeps the incoming context.
        let cx2 =
            Propagation::default().extract_with_context(&cx, &HashMap::<String, String>::new());
        assert_eq!(sc(&cx2), sc(&cx));
    }

    #[test]
    fn global_inject_defaults_to_w3c() {
        let cx = context(SPEC_TRACE, SPEC_SPAN, TraceFlags::SAMPLED);
        let mut map = HeaderMap::new();
        inject_headers(&cx, &mut map);
        assert_eq!(map["traceparent"], SPEC_TRACEPARENT);
        let _guard = cx.attach();
        let mut map = HeaderMap::new();
        inject_current_headers(&mut map);
        assert_eq!(map["traceparent"], SPEC_TRACEPARENT);
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

    }
}
