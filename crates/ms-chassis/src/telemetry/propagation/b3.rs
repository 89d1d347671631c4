//! Zipkin B3, as specified at <https://github.com/openzipkin/b3-propagation>.
//!
//! - Single header: `b3: {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}`, where the last
//!   two fields are optional, or only a sampling state (`b3: 0`, `b3: 1`, `b3: d`).
//! - Multi header: `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled`
//!   (`1`/`0`, and leniently `true`/`false`) and `X-B3-Flags: 1` (debug).
//!
//! Ids are lower-hex: a trace id of 16 or 32 characters (64-bit ids are left-padded to 128
//! bits), span and parent ids of 16. All-zero trace or span ids are invalid. Sampling state
//! `d` and `X-B3-Flags: 1` mean debug, which implies sampled. The parent span id is
//! validated but not used: OpenTelemetry derives the parent from the span id.
//!
//! Injection writes the trace id (16 characters when its high half is zero, 32 otherwise),
//! the span id and the sampling state (`d` / `X-B3-Flags: 1` for debug, which the spec says
//! replaces `X-B3-Sampled`). The parent span id is never written: an OpenTelemetry span
//! context does not carry it, and the spec makes it optional.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanId, TraceId};

use super::sampling::{Outgoing, Parsed, SamplingState, span_id_hex, trace_id_hex};

/// The single header.
pub(super) const B3: &str = "b3";
/// Multi header: the trace id.
pub(super) const TRACE_ID: &str = "x-b3-traceid";
/// Multi header: the span id.
pub(super) const SPAN_ID: &str = "x-b3-spanid";
/// Multi header: the parent span id.
pub(super) const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// Multi header: the sampling decision.
pub(super) const SAMPLED: &str = "x-b3-sampled";
/// Multi header: the debug flag.
pub(super) const FLAGS: &str = "x-b3-flags";
/// Every multi header.
pub(super) const MULTI_HEADERS: [&str; 5] = [TRACE_ID, SPAN_ID, PARENT_SPAN_ID, SAMPLED, FLAGS];

/// Optional whitespace around a header value.
fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A 16 or 32 character lower-hex, non-zero trace id.
fn parse_trace_id(s: &str) -> Option<TraceId> {
    if !(s.len() == 16 || s.len() == 32) || !is_lower_hex(s) {
        return None;
    }
    let v = u128::from_str_radix(s, 16).ok()?;
    (v != 0).then(|| TraceId::from(v))
}

/// A 16 character lower-hex id; `None` if malformed. Zero is returned as is.
fn parse_id64(s: &str) -> Option<u64> {
    if s.len() != 16 || !is_lower_hex(s) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A 16 character lower-hex, non-zero span id.
fn parse_span_id(s: &str) -> Option<SpanId> {
    parse_id64(s).filter(|v| *v != 0).map(SpanId::from)
}

/// The single-header sampling state: `0`, `1` or `d`.
fn parse_state(s: &str) -> Option<SamplingState> {
    match s {
        "0" => Some(SamplingState::Deny),
        "1" => Some(SamplingState::Accept),
        "d" => Some(SamplingState::Debug),
        _ => None,
    }
}

/// Parses a `b3` header value; `None` if it is malformed.
pub(super) fn parse_single(value: &str) -> Option<Parsed> {
    let mut parts = trim_ows(value).split('-');
    let first = parts.next()?;
    let Some(span) = parts.next() else {
        // Only a sampling state, such as the deny-only `b3: 0`.
        return parse_state(first).map(Parsed::StateOnly);
    };
    let trace_id = parse_trace_id(first)?;
    let span_id = parse_span_id(span)?;
    let state = match parts.next() {
        None => SamplingState::Defer,
        Some(s) => parse_state(s)?,
    };
    if let Some(parent) = parts.next() {
        parse_id64(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Parsed::Ids {
        trace_id,
        span_id,
        state,
    })
}

/// The `X-B3-*` values of a request.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MultiHeaders<'a> {
    pub(super) trace_id: Option<&'a str>,
    pub(super) span_id: Option<&'a str>,
    pub(super) parent_span_id: Option<&'a str>,
    pub(super) sampled: Option<&'a str>,
    pub(super) flags: Option<&'a str>,
}

/// Reads and parses the `X-B3-*` headers; `None` if absent or malformed.
pub(super) fn extract_multi(carrier: &dyn Extractor) -> Option<Parsed> {
    parse_multi(MultiHeaders {
        trace_id: carrier.get(TRACE_ID),
        span_id: carrier.get(SPAN_ID),
        parent_span_id: carrier.get(PARENT_SPAN_ID),
        sampled: carrier.get(SAMPLED),
        flags: carrier.get(FLAGS),
    })
}

/// Parses `X-B3-*` values; `None` if absent or malformed.
pub(super) fn parse_multi(h: MultiHeaders<'_>) -> Option<Parsed> {
    let debug = match h.flags.map(trim_ows) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return None,
    };
    let sampled = match h.sampled.map(trim_ows) {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => return None,
    };
    let state = match (debug, sampled) {
        (true, _) => SamplingState::Debug,
        (false, Some(true)) => SamplingState::Accept,
        (false, Some(false)) => SamplingState::Deny,
        (false, None) => SamplingState::Defer,
    };
    match (h.trace_id, h.span_id) {
        (None, None) => {
            // Only a sampling decision, such as a lone `X-B3-Sampled: 0`.
            if h.parent_span_id.is_some() || state == SamplingState::Defer {
                return None;
            }
            Some(Parsed::StateOnly(state))
        }
        (Some(trace_id), Some(span_id)) => {
            let trace_id = parse_trace_id(trim_ows(trace_id))?;
            let span_id = parse_span_id(trim_ows(span_id))?;
            if let Some(parent) = h.parent_span_id {
                parse_id64(trim_ows(parent))?;
            }
            Some(Parsed::Ids {
                trace_id,
                span_id,
                state,
            })
        }
        _ => None,
    }
}

/// The single-header character of a sampling state (none for `Defer`).
fn state_char(state: SamplingState) -> Option<&'static str> {
    match state {
        SamplingState::Defer => None,
        SamplingState::Deny => Some("0"),
        SamplingState::Accept => Some("1"),
        SamplingState::Debug => Some("d"),
    }
}

/// The state of a valid outgoing span context.
fn outgoing_state(sampled: bool, debug: bool) -> SamplingState {
    match (sampled, debug) {
        (true, true) => SamplingState::Debug,
        (true, false) => SamplingState::Accept,
        (false, _) => SamplingState::Deny,
    }
}

/// Writes the `b3` header.
pub(super) fn inject_single(out: Outgoing, injector: &mut dyn Injector) {
    let value = match out {
        Outgoing::Ids {
            trace_id,
            span_id,
            sampled,
            debug,
        } => {
            let state = state_char(outgoing_state(sampled, debug)).unwrap_or("0");
            format!(
                "{}-{}-{state}",
                trace_id_hex(trace_id),
                span_id_hex(span_id)
            )
        }
        Outgoing::StateOnly(state) => match state_char(state) {
            Some(c) => c.to_owned(),
            None => return,
        },
    };
    injector.set(B3, value);
}

/// Writes the `X-B3-*` headers.
pub(super) fn inject_multi(out: Outgoing, injector: &mut dyn Injector) {
    let state = match out {
        Outgoing::Ids {
            trace_id,
            span_id,
            sampled,
            debug,
        } => {
            injector.set(TRACE_ID, trace_id_hex(trace_id));
            injector.set(SPAN_ID, span_id_hex(span_id));
            outgoing_state(sampled, debug)
        }
        Outgoing::StateOnly(state) => state,
    };
    match state {
        SamplingState::Defer => {}
        // Debug implies accept, so `X-B3-Sampled` is not sent with it.
        SamplingState::Debug => injector.set(FLAGS, "1".to_owned()),
        SamplingState::Accept => injector.set(SAMPLED, "1".to_owned()),
        SamplingState::Deny => injector.set(SAMPLED, "0".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::HeaderMap;
    use opentelemetry::Context;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{TraceContextExt, TraceFlags};
    use proptest::prelude::*;

    use super::super::{Propagation, PropagationFormat, sampling_state};
    use super::*;
    use crate::telemetry::propagation::test_support::*;

    fn multi<'a>(pairs: &[(&str, &'a str)]) -> MultiHeaders<'a> {
        let mut h = MultiHeaders::default();
        for (k, v) in pairs {
            let v = Some(*v);
            match *k {
                TRACE_ID => h.trace_id = v,
                SPAN_ID => h.span_id = v,
                PARENT_SPAN_ID => h.parent_span_id = v,
                SAMPLED => h.sampled = v,
                FLAGS => h.flags = v,
                other => panic!("not a B3 header: {other}"),
            }
        }
        h
    }

    const T128: u128 = 0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7;
    const SPAN: u64 = 0xe457_b5a2_e4d8_6bd1;

    // --- Every example of the b3-propagation README. ---

    #[test]
    fn spec_multi_header_examples() {
        // `X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124`, `X-B3-SpanId: a2fb4a1d1a96d312`,
        // `X-B3-ParentSpanId: 0020000000000001`, `X-B3-Sampled: 1`.
        let h = multi(&[
            (TRACE_ID, "463ac35c9f6413ad48485a3953bb6124"),
            (SPAN_ID, "a2fb4a1d1a96d312"),
            (PARENT_SPAN_ID, "0020000000000001"),
            (SAMPLED, "1"),
        ]);
        assert_eq!(
            parse_multi(h),
            ids(
                0x463a_c35c_9f64_13ad_4848_5a39_53bb_6124,
                0xa2fb_4a1d_1a96_d312,
                SamplingState::Accept
            )
        );
        // The multi-header state of the single-header example.
        let h = multi(&[
            (TRACE_ID, "80f198ee56343ba864fe8b2a57d3eff7"),
            (PARENT_SPAN_ID, "05e3ac9a4f6e3b90"),
            (SPAN_ID, "e457b5a2e4d86bd1"),
            (SAMPLED, "1"),
        ]);
        assert_eq!(parse_multi(h), ids(T128, SPAN, SamplingState::Accept));
        // Deny is `X-B3-Sampled: 0`; debug is `X-B3-Flags: 1`.
        let h = multi(&[
            (TRACE_ID, "80f198ee56343ba864fe8b2a57d3eff7"),
            (SPAN_ID, "e457b5a2e4d86bd1"),
            (SAMPLED, "0"),
        ]);
        assert_eq!(parse_multi(h), ids(T128, SPAN, SamplingState::Deny));
        let h = multi(&[
            (TRACE_ID, "80f198ee56343ba864fe8b2a57d3eff7"),
            (SPAN_ID, "e457b5a2e4d86bd1"),
            (FLAGS, "1"),
        ]);
        assert_eq!(parse_multi(h), ids(T128, SPAN, SamplingState::Debug));
        // Absent sampled means defer.
        let h = multi(&[
            (TRACE_ID, "80f198ee56343ba864fe8b2a57d3eff7"),
            (SPAN_ID, "e457b5a2e4d86bd1"),
        ]);
        assert_eq!(parse_multi(h), ids(T128, SPAN, SamplingState::Defer));
        // "a lenient implementation may accept `true` or `false`".
        for (v, state) in [
            ("true", SamplingState::Accept),
            ("false", SamplingState::Deny),
        ] {
            let h = multi(&[
                (TRACE_ID, "463ac35c9f6413ad"),
                (SPAN_ID, "a2fb4a1d1a96d312"),
                (SAMPLED, v),
            ]);
            assert_eq!(
                parse_multi(h),
                ids(0x463a_c35c_9f64_13ad, 0xa2fb_4a1d_1a96_d312, state)
            );
        }
        // "While valid to propagate only a reject sampling decision (`X-B3-Sampled: 0`)".
        assert_eq!(
            parse_multi(multi(&[(SAMPLED, "0")])),
            Some(Parsed::StateOnly(SamplingState::Deny))
        );
    }

    #[test]
    fn spec_single_header_examples() {
        // `b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90`
        assert_eq!(
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
            ids(T128, SPAN, SamplingState::Accept)
        );
        // The older README revision's example with the fields the other way round.
        assert_eq!(
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1-e457b5a2e4d86bd1"),
            ids(T128, 0x05e3_ac9a_4f6e_3b90, SamplingState::Accept)
        );
        // TraceId and SpanId sections: `b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1`.
        assert_eq!(
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ids(T128, SPAN, SamplingState::Accept)
        );
        assert_eq!(
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1"),
            ids(T128, 0x05e3_ac9a_4f6e_3b90, SamplingState::Accept)
        );
        // Debug: `b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d`.
        assert_eq!(
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"),
            ids(T128, SPAN, SamplingState::Debug)
        );
        // Deny without ids: `b3: 0`; and the other sampling-only hints.
        assert_eq!(
            parse_single("0"),
            Some(Parsed::StateOnly(SamplingState::Deny))
        );
        assert_eq!(
            parse_single("1"),
            Some(Parsed::StateOnly(SamplingState::Accept))
        );
        assert_eq!(
            parse_single("d"),
            Some(Parsed::StateOnly(SamplingState::Debug))
        );
        // Brave's examples: a not yet sampled root, a sampled root, a debug child.
        assert_eq!(
            parse_single("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            ids(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                SamplingState::Defer
            )
        );
        assert_eq!(
            parse_single("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            ids(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                SamplingState::Accept
            )
        );
        assert_eq!(
            parse_single("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-5b4185666d50f68b"),
            ids(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                SamplingState::Debug
            )
        );
        // 64-bit trace id, left-padded.
        assert_eq!(
            parse_single("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0"),
            ids(0x64fe_8b2a_57d3_eff7, SPAN, SamplingState::Deny)
        );
    }

    #[test]
    fn single_header_examples_become_contexts() {
        let cx = extract(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id(), TraceId::from(T128));
        assert_eq!(sc.span_id(), SpanId::from(SPAN));
        assert_eq!(sampling_state(&cx), Some(SamplingState::Accept));

        let cx = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]);
        assert!(cx.span().span_context().is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Debug));

        let cx = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")]);
        assert!(cx.span().span_context().is_valid());
        assert!(!cx.span().span_context().is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Defer));
    }

    #[test]
    fn deny_only_is_an_invalid_unsampled_parent_with_a_marker() {
        for pairs in [&[("b3", "0")][..], &[("X-B3-Sampled", "0")][..]] {
            let cx = extract(pairs);
            assert!(cx.has_active_span());
            let sc = cx.span().span_context().clone();
            assert!(!sc.is_valid());
            assert!(!sc.is_sampled());
            assert_eq!(sampling_state(&cx), Some(SamplingState::Deny));
        }
        let cx = extract(&[("b3", "d")]);
        assert!(!cx.span().span_context().is_valid());
        assert!(cx.span().span_context().is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Debug));
    }

    #[test]
    fn multi_headers_are_case_insensitive_and_become_contexts() {
        let cx = extract(&[
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
            ("X-B3-ParentSpanId", "0020000000000001"),
            ("X-B3-Sampled", "1"),
        ]);
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id(),
            TraceId::from(0x463a_c35c_9f64_13ad_4848_5a39_53bb_6124)
        );
        assert_eq!(sc.span_id(), SpanId::from(0xa2fb_4a1d_1a96_d312));
        assert!(sc.is_sampled() && sc.is_remote());
    }

    #[test]
    fn single_header_takes_precedence_over_multi() {
        let cx = extract(&[
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
        ]);
        assert_eq!(cx.span().span_context().trace_id(), TraceId::from(T128));
        // A malformed single header falls back to valid multi headers.
        let cx = extract(&[
            ("b3", "nonsense"),
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
        ]);
        assert_eq!(
            cx.span().span_context().span_id(),
            SpanId::from(0xa2fb_4a1d_1a96_d312)
        );
    }

    #[test]
    fn repeated_multi_headers_first_value_wins() {
        let cx = extract(&[
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
        ]);
        assert_eq!(
            cx.span().span_context().trace_id(),
            TraceId::from(0x463a_c35c_9f64_13ad_4848_5a39_53bb_6124)
        );
    }

    #[test]
    fn malformed_single_headers_are_rejected() {
        let cases = [
            "",
            "-",
            "--",
            "2",
            "D",
            "true",
            // Trace id alone, or wrong lengths.
            "80f198ee56343ba864fe8b2a57d3eff7",
            "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7a-e457b5a2e4d86bd1",
            "80f198ee56343ba-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd11",
            // Not lower-hex.
            "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-E457B5A2E4D86BD1",
            "80f198ee56343ba864fe8b2a57d3effg-e457b5a2e4d86bd1",
            "+0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
            // All-zero ids.
            "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            "0000000000000000-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
            // Bad sampling state, bad parent, extra fields.
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-true",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1--05e3ac9a4f6e3b90",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
            // Non-ASCII.
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-é",
            "٨0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
        ];
        for case in cases {
            assert_eq!(parse_single(case), None, "{case:?}");
        }
    }

    #[test]
    fn malformed_multi_headers_are_rejected() {
        let t = (TRACE_ID, "463ac35c9f6413ad48485a3953bb6124");
        let s = (SPAN_ID, "a2fb4a1d1a96d312");
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![t],
            vec![s],
            vec![t, (SAMPLED, "1")],
            vec![(PARENT_SPAN_ID, "0020000000000001")],
            vec![(PARENT_SPAN_ID, "0020000000000001"), (SAMPLED, "1")],
            vec![t, s, (SAMPLED, "2")],
            vec![t, s, (SAMPLED, "yes")],
            vec![t, s, (FLAGS, "2")],
            vec![t, s, (PARENT_SPAN_ID, "00200000000001")],
            vec![(TRACE_ID, "00000000000000000000000000000000"), s],
            vec![t, (SPAN_ID, "0000000000000000")],
            vec![(TRACE_ID, "463AC35C9F6413AD48485A3953BB6124"), s],
            vec![(TRACE_ID, "463ac35c9f6413ad4"), s],
            vec![t, (SPAN_ID, "a2fb4a1d1a96d31")],
            vec![(SAMPLED, "é")],
        ];
        for case in cases {
            assert_eq!(parse_multi(multi(&case)), None, "{case:?}");
        }
    }

    #[test]
    fn hostile_headers_give_an_empty_context() {
        let long = "a".repeat(10 * 1024);
        let long_valid = format!(
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1{}",
            " ".repeat(600)
        );
        for (name, value) in [
            ("b3", long.as_str()),
            ("b3", long_valid.as_str()),
            ("x-b3-traceid", long.as_str()),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x"),
        ] {
            let cx = extract(&[(name, value)]);
            assert!(!cx.has_active_span(), "{name}");
            assert_eq!(sampling_state(&cx), None);
        }
        // Non-ASCII header bytes (obs-text) are ignored.
        assert!(ignores_bytes(
            "b3",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-\xff",
        ));
    }

    #[test]
    fn injection_writes_spec_shapes() {
        let p = Propagation::new(&[PropagationFormat::B3, PropagationFormat::B3Multi]);
        let mut out = HashMap::new();
        p.inject_context(&context(T128, SPAN, TraceFlags::SAMPLED), &mut out);
        assert_eq!(
            out["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
        );
        assert_eq!(out["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(out["x-b3-spanid"], "e457b5a2e4d86bd1");
        assert_eq!(out["x-b3-sampled"], "1");
        assert!(!out.contains_key("x-b3-flags"));
        assert!(!out.contains_key("traceparent"));

        // A 64-bit trace id stays 16 characters; unsampled is `0`.
        let mut out = HashMap::new();
        p.inject_context(
            &context(0x64fe_8b2a_57d3_eff7, SPAN, TraceFlags::NOT_SAMPLED),
            &mut out,
        );
        assert_eq!(out["b3"], "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
        assert_eq!(out["x-b3-traceid"], "64fe8b2a57d3eff7");
        assert_eq!(out["x-b3-sampled"], "0");

        // Debug is `d` and `X-B3-Flags: 1` without `X-B3-Sampled`.
        let cx = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]);
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(
            out["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"
        );
        assert_eq!(out["x-b3-flags"], "1");
        assert!(!out.contains_key("x-b3-sampled"));

        // Deny-only passes on as deny-only.
        let mut out = HashMap::new();
        p.inject_context(&extract(&[("b3", "0")]), &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["b3"], "0");
        assert_eq!(out["x-b3-sampled"], "0");

        // No span: nothing.
        let mut out = HashMap::new();
        p.inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn round_trips_through_header_map() {
        for format in [PropagationFormat::B3, PropagationFormat::B3Multi] {
            let p = Propagation::new(&[format]);
            for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
                for trace in [T128, 0x64fe_8b2a_57d3_eff7, 1, u128::MAX] {
                    let mut map = HeaderMap::new();
                    p.inject_headers(&context(trace, SPAN, flags), &mut map);
                    let sc = p.extract_headers(&map).span().span_context().clone();
                    assert_eq!(sc.trace_id(), TraceId::from(trace));
                    assert_eq!(sc.span_id(), SpanId::from(SPAN));
                    assert_eq!(sc.trace_flags(), flags);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn single_never_panics(s in any::<String>()) {
            let _ = parse_single(&s);
        }

        #[test]
        fn single_near_valid_never_panics(s in "[0-9a-fA-Fd-]{0,80}") {
            if let Some(Parsed::Ids { trace_id, span_id, .. }) = parse_single(&s) {
                prop_assert!(trace_id != TraceId::INVALID && span_id != SpanId::INVALID);
            }
        }

        #[test]
        fn multi_never_panics(
            t in proptest::option::of("[0-9a-f]{0,40}|\\PC{0,40}"),
            s in proptest::option::of("[0-9a-f]{0,20}|\\PC{0,20}"),
            p in proptest::option::of("[0-9a-f]{0,20}|\\PC{0,20}"),
            sampled in proptest::option::of("0|1|true|false|\\PC{0,5}"),
            flags in proptest::option::of("0|1|\\PC{0,5}"),
        ) {
            let _ = parse_multi(MultiHeaders {
                trace_id: t.as_deref(),
                span_id: s.as_deref(),
                parent_span_id: p.as_deref(),
                sampled: sampled.as_deref(),
                flags: flags.as_deref(),
            });
        }

        #[test]
        fn arbitrary_header_bytes_never_panic(
            name in prop::sample::select(vec!["b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid"]),
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            extract_raw(name, &bytes);
        }

        #[test]
        fn valid_ids_round_trip(
            trace in 1..=u128::MAX,
            span in 1..=u64::MAX,
            state in prop::sample::select(vec![SamplingState::Defer, SamplingState::Deny, SamplingState::Accept, SamplingState::Debug]),
            parent in proptest::option::of(any::<u64>()),
        ) {
            let mut value = format!("{:032x}-{:016x}", trace, span);
            if let Some(c) = state_char(state) {
                value.push('-');
                value.push_str(c);
                if let Some(p) = parent {
                    value.push_str(&format!("-{p:016x}"));
                }
            }
            prop_assert_eq!(parse_single(&value), ids(trace, span, state));

            let t = format!("{trace:032x}");
            let s = format!("{span:016x}");
            let h = MultiHeaders {
                trace_id: Some(&t),
                span_id: Some(&s),
                sampled: match state {
                    SamplingState::Accept => Some("1"),
                    SamplingState::Deny => Some("0"),
                    _ => None,
                },
                flags: (state == SamplingState::Debug).then_some("1"),
                parent_span_id: None,
            };
            prop_assert_eq!(parse_multi(h), ids(trace, span, state));
        }

        #[test]
        fn injected_contexts_round_trip(trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled in any::<bool>()) {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
            for format in [PropagationFormat::B3, PropagationFormat::B3Multi] {
                let p = Propagation::new(&[format]);
                let mut map = HeaderMap::new();
                p.inject_headers(&context(trace, span, flags), &mut map);
                let sc = p.extract_headers(&map).span().span_context().clone();
                prop_assert_eq!(sc.trace_id(), TraceId::from(trace));
                prop_assert_eq!(sc.span_id(), SpanId::from(span));
                prop_assert_eq!(sc.is_sampled(), sampled);
            }
        }
    }
}
