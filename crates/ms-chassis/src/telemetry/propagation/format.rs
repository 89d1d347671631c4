//! The propagation formats by their config names (`tracing.propagation`, the names of the
//! standard `OTEL_PROPAGATORS` variable), and the header names each format uses.
//!
//! The header names sit beside the formats because three questions are answered from one
//! list: what a propagator writes (`TextMapPropagator::fields`), whether a request carries
//! trace context at all (the fast path that skips every parser), and which headers a client
//! must never copy from one request onto another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::baggage::BAGGAGE;
use super::w3c::{TRACEPARENT, TRACESTATE};
use super::{b3, jaeger};

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
    pub(super) fn fields(self) -> &'static [&'static str] {
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

/// Whether a supported format reads the header `name` (lower case): the fixed names a
/// format reads the trace identity or baggage from, and Jaeger's `uberctx-*` baggage. A
/// `match`, which compiles to a switch on the length: this runs for every header of every
/// request.
pub(super) fn reads_header(name: &str) -> bool {
    matches!(
        name,
        TRACEPARENT
            | TRACESTATE
            | BAGGAGE
            | b3::B3
            | b3::TRACE_ID
            | b3::SPAN_ID
            | b3::SAMPLED
            | b3::FLAGS
            | jaeger::UBER_TRACE_ID
    ) || name.starts_with(jaeger::BAGGAGE_PREFIX)
}

/// Whether `name` (lower case) is a header of a supported propagation format: trace
/// context is written by the propagators, never copied from one request to another.
pub(crate) fn is_propagation_header(name: &str) -> bool {
    name == b3::PARENT_SPAN_ID || reads_header(name)
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn carries_propagation(headers: &HeaderMap) -> bool {
        super::super::IncomingHeaders::scan(headers).carries_trace
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
    fn the_scan_finds_the_first_request_id_and_trace_headers_in_one_pass() {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.append("x-request-id", HeaderValue::from_static("first"));
        h.append("x-request-id", HeaderValue::from_static("second"));
        let scan = super::super::IncomingHeaders::scan(&h);
        assert_eq!(scan.request_id.unwrap(), "first");
        assert!(!scan.carries_trace);
        h.insert("tracestate", HeaderValue::from_static("a=b"));
        let scan = super::super::IncomingHeaders::scan(&h);
        assert!(scan.carries_trace);
        assert_eq!(scan.request_id.unwrap(), "first");
        assert!(
            super::super::IncomingHeaders::scan(&HeaderMap::new())
                .request_id
                .is_none()
        );
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
}
