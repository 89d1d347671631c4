//! Helpers shared by the propagator tests.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::Propagation;
use super::sampling::{Parsed, SamplingState};

/// The `traceparent` example of the W3C Trace Context specification, and its ids.
pub(super) const SPEC_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
pub(super) const SPEC_TRACE: u128 = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c;
pub(super) const SPEC_SPAN: u64 = 0xb7ad_6b71_6920_3331;

/// The span context of `cx`'s span.
pub(super) fn sc(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

/// What a B3 or Jaeger parser returns for valid ids.
pub(super) fn ids(trace: u128, span: u64, state: SamplingState) -> Option<Parsed> {
    Some(Parsed::Ids {
        trace_id: TraceId::from(trace),
        span_id: SpanId::from(span),
        state,
    })
}

/// A header map from name/value pairs, repeated names appended.
pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

/// Extraction reads every format whatever is configured for injection.
pub(super) fn extract(pairs: &[(&str, &str)]) -> Context {
    Propagation::default().extract_headers(&headers(pairs))
}

/// Extracts one header of arbitrary bytes, as a hostile peer may send it: whatever they
/// are, this must not panic.
pub(super) fn extract_raw(name: &'static str, bytes: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(bytes) {
        let mut map = HeaderMap::new();
        map.insert(name, value);
        let cx = Propagation::default().extract_headers(&map);
        let _ = cx.span().span_context().is_valid();
    }
}

/// Whether one header of these bytes (valid header bytes, but not necessarily text) is
/// ignored, so the request starts a new trace.
pub(super) fn ignores_bytes(name: &'static str, bytes: &[u8]) -> bool {
    let mut map = HeaderMap::new();
    map.insert(name, HeaderValue::from_bytes(bytes).unwrap());
    !Propagation::default()
        .extract_headers(&map)
        .has_active_span()
}

/// A context whose remote parent has these ids and flags.
pub(super) fn context(trace: u128, span: u64, flags: TraceFlags) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        true,
        TraceState::default(),
    ))
}
