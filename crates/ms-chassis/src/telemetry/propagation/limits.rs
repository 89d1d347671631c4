//! The size limits on propagation headers, and the carrier that enforces them.
//!
//! Enforced in one place, in front of every parser (ours and the SDK's baggage parser), so
//! that no format can be made to read a hostile header of any length; and an ignored header
//! is logged here, by name and length, never by value.

use opentelemetry::propagation::Extractor;

use super::baggage::BAGGAGE;
use super::w3c::TRACESTATE;

/// Propagation headers longer than this many bytes are ignored, except `tracestate` and
/// `baggage`. It is also the most `tracestate` sends on.
pub const MAX_HEADER_LEN: usize = 512;

/// The longest `tracestate` read, in bytes (repeated headers joined); longer ones are
/// ignored. Longer than [`MAX_HEADER_LEN`], so that a valid list can be cut by whole
/// members as the W3C spec says, and the common 8 KiB header limit of proxies.
pub const MAX_TRACESTATE_HEADER_LEN: usize = 8192;

/// The W3C Baggage limit for the `baggage` header, in bytes; longer ones are ignored.
pub const MAX_BAGGAGE_HEADER_LEN: usize = 8192;

/// The size limit for a header.
pub(super) fn limit_for(key: &str) -> usize {
    if key.eq_ignore_ascii_case(BAGGAGE) {
        MAX_BAGGAGE_HEADER_LEN
    } else if key.eq_ignore_ascii_case(TRACESTATE) {
        MAX_TRACESTATE_HEADER_LEN
    } else {
        MAX_HEADER_LEN
    }
}

/// Hides values over the size limit, so no parser (ours or the SDK's) sees them.
pub(super) struct Bounded<'a>(pub(super) &'a dyn Extractor);

impl Extractor for Bounded<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).filter(|v| v.len() <= limit_for(key))
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

/// Logs (at debug) a propagation header that was present but unusable.
pub(super) fn note_ignored(raw: &dyn Extractor, name: &str) {
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

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::super::Propagation;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn oversized_tracestate_is_dropped_but_traceparent_kept() {
        // Valid members, but longer than anything read.
        let members: Vec<String> = (0..32)
            .map(|i| format!("k{i}={}", "v".repeat(255)))
            .collect();
        let state = members.join(",");
        assert!(state.len() > MAX_TRACESTATE_HEADER_LEN);
        let cx = extract(&[("traceparent", SPEC_TRACEPARENT), ("tracestate", &state)]);
        assert!(sc(&cx).is_valid());
        assert_eq!(sc(&cx).trace_state().header(), "");
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        assert!(!out.contains_key("tracestate"));
    }
}
