//! W3C Trace Context: `traceparent` and `tracestate`, read and written by the specification.
//!
//! Why not the SDK's `TraceContextPropagator`: it keeps `tracestate` in opentelemetry's
//! `TraceState`, which refuses keys the current grammar allows and lets values through that
//! it forbids (see [`tracestate`](super::tracestate)), and it allocates on every request in
//! both directions. Here a valid incoming `tracestate` is kept with the extracted context as
//! it came, and sent on byte for byte unless this process changed the span's `TraceState`;
//! an invalid one is discarded whole and never leaves. The span context still gets a
//! `TraceState` with every member opentelemetry can hold, for samplers and exporters.

use std::fmt::Write as _;

use http::HeaderValue;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::carrier::ValueInjector;
use super::limits::MAX_HEADER_LEN;
use super::tracestate::{List, MAX_MEMBERS};

/// The W3C Trace Context header with the trace id, span id and flags.
pub(super) const TRACEPARENT: &str = "traceparent";
/// The W3C Trace Context header with vendors' entries.
pub(super) const TRACESTATE: &str = "tracestate";

/// The length of a version-00 `traceparent`, and of the part of a later version's that this
/// version can read.
const TRACEPARENT_LEN: usize = 55;

/// The `trace-id`, `parent-id` and `trace-flags` of a `traceparent`, by the version rules:
///
/// - spaces and tabs around the value are ignored;
/// - the version is two lower-case hex digits and a `-`; `ff` is invalid;
/// - version `00` is exactly 55 characters;
/// - a later version is read by the `00` rules on its first 55 characters, which must end
///   the value or be followed by `-` (the fields after it are not looked at);
/// - ids and flags are lower-case hex; an all-zero `trace-id` or `parent-id` is invalid;
/// - of the flags only `sampled` is kept: the others are unknown to us and go out as 0.
pub(super) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let b = value.trim_matches([' ', '\t']).as_bytes();
    let version = lower_hex(b.get(0..2)?)?;
    let fits = match version {
        0xff => false,
        0 => b.len() == TRACEPARENT_LEN,
        _ => b.len() == TRACEPARENT_LEN || b.get(TRACEPARENT_LEN) == Some(&b'-'),
    };
    if !fits || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let trace_id = lower_hex(&b[3..35]).filter(|id| *id != 0)?;
    let span_id = lower_hex(&b[36..52]).filter(|id| *id != 0)?;
    let flags = lower_hex(&b[53..55])?;
    Some((
        TraceId::from(trace_id),
        SpanId::from(span_id as u64),
        TraceFlags::new(flags as u8) & TraceFlags::SAMPLED,
    ))
}

/// Up to 32 lower-case hex digits as a number; `None` for anything else, upper case included.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |n, c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(d))
    })
}

/// A valid incoming `tracestate`, kept in the extracted context so that calls made for the
/// same trace forward it exactly.
#[derive(Debug)]
pub(super) struct IncomingTraceState {
    /// The trace it came with: a restarted trace does not carry it on.
    trace_id: TraceId,
    /// The list with no whitespace, empty or repeated members, cut to [`MAX_HEADER_LEN`]:
    /// the received header itself when it was already that.
    header: HeaderValue,
    /// Bit `i` is set when member `i` is also in the span context's `TraceState`.
    held: u32,
}

/// The remote span context of a valid `traceparent`, with `tracestate` read only then, as
/// the spec requires. `received` is the one `tracestate` header `tracestate` came from, if
/// it came from one: forwarding it as it is then costs no copy.
///
/// An invalid `tracestate` is discarded whole (logged at debug); the `traceparent` is still
/// used.
pub(super) fn extract(
    traceparent: &str,
    tracestate: Option<&str>,
    received: Option<&HeaderValue>,
) -> Option<(SpanContext, Option<IncomingTraceState>)> {
    let (trace_id, span_id, flags) = parse_traceparent(traceparent)?;
    let (state, incoming) =
        match tracestate.and_then(|text| read_tracestate(trace_id, text, received)) {
            Some((state, incoming)) => (state, Some(incoming)),
            None => (TraceState::NONE, None),
        };
    let sc = SpanContext::new(trace_id, span_id, flags, true, state);
    Some((sc, incoming))
}

/// A valid, non-empty `tracestate`: for the span, and to send on.
fn read_tracestate(
    trace_id: TraceId,
    text: &str,
    received: Option<&HeaderValue>,
) -> Option<(TraceState, IncomingTraceState)> {
    let mut list = match List::parse(text) {
        Ok(list) => list,
        Err(why) => {
            tracing::debug!(
                header = TRACESTATE,
                len = text.len(),
                reason = why.as_str(),
                "ignoring a malformed trace propagation header"
            );
            return None;
        }
    };
    list.truncate_to(MAX_HEADER_LEN);
    if list.is_empty() {
        return None;
    }
    let header = if !list.is_header_of(text) {
        HeaderValue::try_from(list.to_header()).ok()?
    } else if let Some(value) = received {
        value.clone()
    } else {
        HeaderValue::from_str(text).ok()?
    };
    let (state, held) = otel_trace_state(&list);
    let incoming = IncomingTraceState {
        trace_id,
        header,
        held,
    };
    Some((state, incoming))
}

/// The members opentelemetry's `TraceState` accepts, and which ones those are. Its key
/// check is the older grammar, so a key such as `foo@bar@baz` is forwarded but not on the
/// span.
fn otel_trace_state(list: &List<'_>) -> (TraceState, u32) {
    let all = if list.len() >= MAX_MEMBERS {
        u32::MAX
    } else {
        (1 << list.len()) - 1
    };
    if let Ok(state) = TraceState::from_key_value(list.iter()) {
        return (state, all);
    }
    let held = list
        .iter()
        .enumerate()
        .filter(|(_, m)| TraceState::from_key_value([*m]).is_ok())
        .fold(0, |held, (i, _)| held | 1 << i);
    let state = TraceState::from_key_value(
        list.iter()
            .enumerate()
            .filter(|(i, _)| held & 1 << i != 0)
            .map(|(_, m)| m),
    )
    .unwrap_or_default();
    (state, held)
}

/// Writes `traceparent` and `tracestate` for the span in `cx`, if it is valid. `incoming`
/// is what came with the request, if anything.
pub(super) fn inject(
    cx: &Context,
    incoming: Option<&IncomingTraceState>,
    injector: &mut dyn ValueInjector,
) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    let mut traceparent = String::with_capacity(TRACEPARENT_LEN);
    let sampled = (sc.trace_flags() & TraceFlags::SAMPLED).to_u8();
    let _ = write!(
        traceparent,
        "00-{}-{}-{sampled:02x}",
        sc.trace_id(),
        sc.span_id()
    );
    injector.set(TRACEPARENT, traceparent);
    match outgoing_tracestate(sc, incoming) {
        Outgoing::Forward(value) => injector.set_value(TRACESTATE, value.clone()),
        // Empty when there is none, which removes a stale header.
        Outgoing::Write(header) => injector.set(TRACESTATE, header),
    }
}

/// The `tracestate` a call sends.
enum Outgoing<'a> {
    /// The incoming one, unchanged.
    Forward(&'a HeaderValue),
    /// A new one; empty for none.
    Write(String),
}

/// The incoming list for this trace, with what this process changed on the span's
/// `TraceState` through the OpenTelemetry API (a sampler's entry, say) moved to the front,
/// as the mutation rules require; always valid, at most 32 members and [`MAX_HEADER_LEN`]
/// bytes.
fn outgoing_tracestate<'a>(
    sc: &SpanContext,
    incoming: Option<&'a IncomingTraceState>,
) -> Outgoing<'a> {
    let state = sc.trace_state();
    let incoming = incoming
        .filter(|i| i.trace_id == sc.trace_id())
        .and_then(|i| Some((i, List::parse(i.header.to_str().ok()?).ok()?)));
    let Some((incoming, list)) = incoming else {
        if state.into_iter().len() == 0 {
            // The common case: nothing to send.
            return Outgoing::Write(String::new());
        }
        let mut out = List::default();
        for (k, v) in state {
            out.push(k, v);
        }
        out.truncate_to(MAX_HEADER_LEN);
        return Outgoing::Write(out.to_header());
    };
    let held = |i: usize| incoming.held & 1 << i != 0;

    // The common case: the span carries what came in.
    let mut on_span = state.into_iter();
    let unchanged = list
        .iter()
        .enumerate()
        .filter(|(i, _)| held(*i))
        .all(|(_, m)| on_span.next() == Some(m));
    if unchanged && on_span.next().is_none() {
        return Outgoing::Forward(&incoming.header);
    }

    let mut out = List::default();
    for (i, (k, v)) in list.iter().enumerate() {
        let deleted = held(i) && state.get(k).is_none();
        if !deleted {
            out.push(k, v);
        }
    }
    let mut ours = List::default();
    for (k, v) in state {
        if list.get(k) != Some(v) {
            ours.push(k, v);
        }
    }
    for (k, v) in ours.iter().rev() {
        let _ = out.insert(k, v);
    }
    out.truncate_to(MAX_HEADER_LEN);
    Outgoing::Write(out.to_header())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::HeaderMap;
    use opentelemetry::propagation::TextMapPropagator;
    use proptest::prelude::*;

    use super::super::test_support::{
        SPEC_SPAN, SPEC_TRACE, SPEC_TRACEPARENT, context, extract as received_with, headers,
        ignores_bytes, sc,
    };
    use super::super::{Propagation, sampling_state};
    use super::*;

    const TRACE: u128 = 0x1234_5678_9012_3456_7890_1234_5678_9012;
    const SPAN: u64 = 0x1234_5678_9012_3456;
    const TRACEPARENT_EXAMPLE: &str = "00-12345678901234567890123456789012-1234567890123456-01";

    fn ids(value: &str) -> Option<(u128, u64, bool)> {
        parse_traceparent(value).map(|(t, s, f)| {
            (
                u128::from_be_bytes(t.to_bytes()),
                u64::from_be_bytes(s.to_bytes()),
                f.is_sampled(),
            )
        })
    }

    /// What a service sends on after receiving `pairs`: the headers of a call made with
    /// the extracted context (its span id kept, which does not matter here).
    fn forwarded(pairs: &[(&str, &str)]) -> HeaderMap {
        let cx = received_with(pairs);
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        out
    }

    fn forwarded_tracestate(pairs: &[(&str, &str)]) -> Option<String> {
        forwarded(pairs)
            .get("tracestate")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    fn with_traceparent<'a>(states: &[&'a str]) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![("traceparent", TRACEPARENT_EXAMPLE)];
        pairs.extend(states.iter().map(|s| ("tracestate", *s)));
        pairs
    }

    #[test]
    fn traceparent_spec_examples() {
        let trace = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
        let span = 0x00f0_67aa_0ba9_02b7;
        assert_eq!(
            ids("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some((trace, span, true))
        );
        assert_eq!(
            ids("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            Some((trace, span, false))
        );
    }

    #[test]
    fn traceparent_version_00_with_more_data_is_invalid() {
        for extra in ["-", ".", "-what-the-future-will-be-like", " x"] {
            assert_eq!(
                ids(&format!("{TRACEPARENT_EXAMPLE}{extra}")),
                None,
                "{extra}"
            );
        }
    }

    #[test]
    fn traceparent_higher_versions_are_read_by_the_00_rules() {
        let ok = Some((TRACE, SPAN, true));
        for value in [
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            "01-12345678901234567890123456789012-1234567890123456-01-",
            "fe-12345678901234567890123456789012-1234567890123456-01-x",
        ] {
            assert_eq!(ids(value), ok, "{value}");
        }
        for value in [
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            "cc-12345678901234567890123456789012-1234567890123456-01x",
            "cc-12345678901234567890123456789012-1234567890123456-1",
            "cc-1234567890123456789012345678901-1234567890123456-01-xx",
        ] {
            assert_eq!(ids(value), None, "{value}");
        }
        // Unknown flags are not passed on.
        let (_, _, flags) =
            parse_traceparent("cc-12345678901234567890123456789012-1234567890123456-ff-x").unwrap();
        assert_eq!(flags, TraceFlags::SAMPLED);
    }

    #[test]
    fn traceparent_version_ff_is_invalid() {
        assert_eq!(
            ids("ff-12345678901234567890123456789012-1234567890123456-01"),
            None
        );
        assert_eq!(
            ids("ff-12345678901234567890123456789012-1234567890123456-01-x"),
            None
        );
    }

    #[test]
    fn traceparent_version_must_be_two_lower_hex_digits() {
        for version in [".0", "0.", "0", "000", "0000", "FE", "Cc", "g0", ""] {
            let value = format!("{version}-12345678901234567890123456789012-1234567890123456-01");
            assert_eq!(ids(&value), None, "{version}");
        }
    }

    #[test]
    fn traceparent_upper_case_hex_is_invalid() {
        for value in [
            "00-1234567890123456789012345678901A-1234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345A-01",
            "00-12345678901234567890123456789012-1234567890123456-0A",
        ] {
            assert_eq!(ids(value), None, "{value}");
        }
    }

    #[test]
    fn traceparent_all_zero_ids_are_invalid() {
        assert_eq!(
            ids("00-00000000000000000000000000000000-1234567890123456-01"),
            None
        );
        assert_eq!(
            ids("00-12345678901234567890123456789012-0000000000000000-01"),
            None
        );
    }

    #[test]
    fn traceparent_fields_have_fixed_lengths_and_characters() {
        for value in [
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-1",
            "00_12345678901234567890123456789012-1234567890123456-01",
            "",
        ] {
            assert_eq!(ids(value), None, "{value}");
        }
    }

    #[test]
    fn traceparent_surrounding_whitespace_is_ignored() {
        for value in [
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ] {
            assert_eq!(ids(value), Some((TRACE, SPAN, true)), "{value:?}");
        }
    }

    #[test]
    fn a_valid_tracestate_is_forwarded_as_it_came() {
        let state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
        assert_eq!(
            forwarded_tracestate(&with_traceparent(&[state])).as_deref(),
            Some(state)
        );
        let cx = received_with(&with_traceparent(&[state]));
        assert_eq!(
            cx.span().span_context().trace_state().header(),
            state,
            "the span carries it too"
        );
    }

    #[test]
    fn tracestate_without_a_valid_traceparent_is_ignored() {
        for pairs in [
            vec![("tracestate", "foo=1")],
            vec![
                (
                    "traceparent",
                    "00-00000000000000000000000000000000-1234567890123456-01",
                ),
                ("tracestate", "foo=1"),
            ],
            vec![
                (
                    "traceparent",
                    "ff-12345678901234567890123456789012-1234567890123456-01",
                ),
                ("tracestate", "foo=1"),
            ],
            // Another format's ids do not bring a W3C tracestate along.
            vec![
                ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
                ("tracestate", "foo=1"),
            ],
        ] {
            let cx = received_with(&pairs);
            assert_eq!(cx.span().span_context().trace_state().header(), "");
            let mut out = HeaderMap::new();
            Propagation::new(&[crate::telemetry::propagation::PropagationFormat::TraceContext])
                .inject_headers(&cx, &mut out);
            assert!(!out.contains_key("tracestate"), "{pairs:?}: {out:?}");
        }
    }

    #[test]
    fn an_invalid_tracestate_is_never_forwarded() {
        for state in [
            "foo=bar=baz",
            "foo=,bar=3",
            "@foo=1,bar=2",
            "FOO=1",
            "foo =1",
            "foo.bar=1",
            "foo=a\tb",
            "foo",
        ] {
            let pairs = with_traceparent(&[state]);
            let out = forwarded(&pairs);
            assert!(
                out["traceparent"]
                    .to_str()
                    .unwrap()
                    .starts_with("00-12345678901234567890123456789012-"),
                "the traceparent still counts: {state:?}"
            );
            assert_eq!(out.get("tracestate"), None, "{state:?}");
            let cx = received_with(&pairs);
            assert_eq!(cx.span().span_context().trace_state().header(), "");
        }
    }

    #[test]
    fn more_than_32_members_are_discarded_not_cut() {
        let first: Vec<String> = (1..=30).map(|i| format!("bar{i:02}={i:02}")).collect();
        let first = first.join(",");
        let ok = forwarded_tracestate(&with_traceparent(&[&first, "bar31=31,bar32=32"]));
        assert_eq!(ok.as_deref().map(|s| s.split(',').count()), Some(32));
        let over = forwarded_tracestate(&with_traceparent(&[&first, "bar31=31,bar32=32,bar33=33"]));
        assert_eq!(over, None);
    }

    #[test]
    fn repeated_headers_are_combined_in_order() {
        let out = forwarded_tracestate(&with_traceparent(&[
            "foo=1,bar=2",
            "rojo=1,congo=2",
            "baz=3",
        ]));
        assert_eq!(out.as_deref(), Some("foo=1,bar=2,rojo=1,congo=2,baz=3"));
        // An empty header among them is an empty member.
        for states in [["", "foo=1"], ["foo=1", ""]] {
            let out = forwarded_tracestate(&with_traceparent(&states));
            assert_eq!(out.as_deref(), Some("foo=1"), "{states:?}");
        }
        // One invalid header invalidates the combined value.
        let out = forwarded_tracestate(&with_traceparent(&["foo=1", "bar"]));
        assert_eq!(out, None);
    }

    #[test]
    fn empty_and_whitespace_members_are_dropped_on_the_way_out() {
        let out = forwarded_tracestate(&with_traceparent(&[" ,foo=1 \t , \t bar=2,, \t baz=3,"]));
        assert_eq!(out.as_deref(), Some("foo=1,bar=2,baz=3"));
        // An empty list is accepted and not sent.
        for state in ["", " ", ",,"] {
            assert_eq!(forwarded_tracestate(&with_traceparent(&[state])), None);
        }
    }

    #[test]
    fn keys_opentelemetry_refuses_are_still_forwarded() {
        let key = format!("t@{}", "v".repeat(15));
        let state = format!(
            "foo@@bar=1,bar=2,foo@bar@baz=3,{key}=4,{}=5",
            "z".repeat(256)
        );
        let pairs = with_traceparent(&[&state]);
        assert_eq!(
            forwarded_tracestate(&pairs).as_deref(),
            Some(state.as_str())
        );
        // The span gets what opentelemetry can hold.
        let cx = received_with(&pairs);
        let on_span = cx.span().span_context().trace_state().header();
        assert_eq!(on_span, format!("bar=2,{}=5", "z".repeat(256)));
    }

    #[test]
    fn duplicate_keys_are_never_sent() {
        let out = forwarded_tracestate(&with_traceparent(&["foo=1,bar=2", "foo=3"]));
        assert_eq!(out.as_deref(), Some("foo=1,bar=2"));
    }

    #[test]
    fn a_long_tracestate_is_cut_by_whole_members() {
        let big = "x".repeat(200);
        let small: Vec<String> = (0..20).map(|i| format!("k{i:02}=v{i:02}")).collect();
        let state = format!("{},big1={big},big2={big},big3={big}", small.join(","));
        assert!(state.len() > MAX_HEADER_LEN);
        let out = forwarded_tracestate(&with_traceparent(&[&state])).unwrap();
        assert!(out.len() <= MAX_HEADER_LEN, "{}", out.len());
        assert_eq!(out, format!("{},big1={big}", small.join(",")));
    }

    #[test]
    fn our_own_entry_goes_to_the_front() {
        let cx = received_with(&with_traceparent(&[
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,foo@@bar=1",
        ]));
        let sc = cx.span().span_context().clone();
        // As a sampler would, through the OpenTelemetry API.
        let state = sc.trace_state().insert("congo", "ucfJifl5GOE").unwrap();
        let state = state.insert("ours", "1").unwrap();
        let mine = SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), false, state);
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx.with_remote_span_context(mine), &mut out);
        assert_eq!(
            out["tracestate"],
            "ours=1,congo=ucfJifl5GOE,rojo=00f067aa0ba902b7,foo@@bar=1"
        );

        // A deleted member is not sent; one opentelemetry never held stays.
        let state = sc.trace_state().delete("rojo").unwrap();
        let mine = SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), false, state);
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx.with_remote_span_context(mine), &mut out);
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE,foo@@bar=1");
    }

    #[test]
    fn a_restarted_trace_does_not_carry_the_old_tracestate() {
        let cx = received_with(&with_traceparent(&["rojo=00f067aa0ba902b7,foo@@bar=1"]));
        let sc = cx.span().span_context().clone();
        let restarted = SpanContext::new(
            TraceId::from(7),
            SpanId::from(7),
            sc.trace_flags(),
            false,
            TraceState::NONE,
        );
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx.with_remote_span_context(restarted), &mut out);
        assert!(out.contains_key("traceparent"));
        assert_eq!(out.get("tracestate"), None);
    }

    #[test]
    fn a_tracestate_only_on_the_span_is_checked_before_it_is_sent() {
        // opentelemetry's TraceState takes a value with a tab and a trailing space; the
        // grammar does not.
        let state =
            TraceState::from_key_value([("ok", "1"), ("tab", "a\tb"), ("sp", "x ")]).unwrap();
        let sc = SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(SPAN),
            TraceFlags::SAMPLED,
            false,
            state,
        );
        let mut out = HeaderMap::new();
        Propagation::default()
            .inject_headers(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(out["tracestate"], "ok=1");
    }

    #[test]
    fn forwarding_shares_the_received_header() {
        let state = "rojo=00f067aa0ba902b7";
        let map = headers(&with_traceparent(&[state]));
        let cx = Propagation::default().extract_headers(&map);
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        assert_eq!(out["tracestate"], state);
        // Any other carrier gets the same string.
        let mut carrier = HashMap::new();
        Propagation::default().inject_context(&cx, &mut carrier);
        assert_eq!(carrier.get("tracestate").map(String::as_str), Some(state));
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_owned(), TRACEPARENT_EXAMPLE.to_owned());
        carrier.insert("tracestate".to_owned(), " rojo=1 , ".to_owned());
        let cx = Propagation::default().extract_with_context(&Context::new(), &carrier);
        let mut out = HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        assert_eq!(out["tracestate"], "rojo=1");
    }

    proptest! {
        #[test]
        fn arbitrary_tracestate_never_panics_and_goes_out_valid_or_not_at_all(
            states in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..300),
                    "([a-z0-9][a-z0-9_*/@-]{0,8}=[ -~]{0,8}[ \t,]{0,2}){0,36}".prop_map(String::into_bytes),
                ],
                0..4,
            ),
        ) {
            let mut map = headers(&[("traceparent", TRACEPARENT_EXAMPLE)]);
            for bytes in &states {
                if let Ok(value) = http::HeaderValue::from_bytes(bytes) {
                    map.append("tracestate", value);
                }
            }
            let p = Propagation::default();
            let cx = p.extract_headers(&map);
            prop_assert!(cx.span().span_context().is_valid(), "tracestate never costs the traceparent");
            let mut out = HeaderMap::new();
            p.inject_headers(&cx, &mut out);
            if let Some(sent) = out.get("tracestate") {
                let sent = sent.to_str().unwrap();
                prop_assert!(!sent.is_empty());
                prop_assert!(sent.len() <= MAX_HEADER_LEN);
                let list = List::parse(sent).unwrap();
                prop_assert!(list.is_header_of(sent), "{sent:?}");
            }
        }
    }

    #[test]
    fn w3c_spec_example() {
        let cx = received_with(&[
            ("traceparent", SPEC_TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        let sc = sc(&cx);
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id(), TraceId::from(SPEC_TRACE));
        assert_eq!(sc.span_id(), SpanId::from(SPEC_SPAN));
        assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(sampling_state(&cx), None);
    }

    #[test]
    fn hostile_w3c_headers_start_a_new_trace() {
        let long = format!("{SPEC_TRACEPARENT}{}", "-0".repeat(5 * 1024));
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
                ("traceparent", SPEC_TRACEPARENT),
                ("traceparent", SPEC_TRACEPARENT),
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
            let cx = received_with(&case);
            assert!(!cx.has_active_span(), "{case:?}");
        }
        assert!(ignores_bytes(
            "traceparent",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-\xc3\xa9",
        ));
    }

    #[test]
    fn future_versions_may_carry_more_fields() {
        for value in [
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds",
        ] {
            let cx = received_with(&[("traceparent", value)]);
            assert_eq!(sc(&cx).trace_id(), TraceId::from(SPEC_TRACE), "{value}");
        }
    }

    proptest! {
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
