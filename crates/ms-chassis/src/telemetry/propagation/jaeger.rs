//! Jaeger, as specified in the Jaeger client-library docs ("Propagation Format").
//!
//! - `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`. Ids are hex of any
//!   case and variable length, left-padded with zeros: a trace id of up to 32 characters, span
//!   and parent ids of up to 16. Zero trace or span ids are invalid; the deprecated parent id
//!   is validated and ignored. `{flags}` is one byte as one or two hex digits: bit 1 (`0x01`)
//!   sampled, bit 2 (`0x02`) debug, which counts only together with bit 1 (the OpenTelemetry
//!   Python propagator sends `02` for unsampled traces). Other bits are ignored.
//! - Clients using the `HTTP_HEADERS` format (the Java client notably) URL-encode the whole
//!   value, so `%3A` separators (any `%XX` escape) are decoded first.
//! - Baggage: one `uberctx-{key}: {value}` header per entry, values URL-encoded (`+` is
//!   decoded as a space, as Java's `URLDecoder` and Go's `QueryUnescape` do).
//!
//! Injection writes `{trace-id}:{span-id}:0:{flags}` (16 or 32 character trace id, parent
//! `0` as the OpenTelemetry propagators do, flags `00`, `01` or `03` for debug), and each
//! baggage entry as `uberctx-{key}` with a percent-encoded value.

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanId, TraceId};

use super::sampling::{Outgoing, Parsed, SamplingState, span_id_hex, trace_id_hex};

/// The trace identity header.
pub(super) const UBER_TRACE_ID: &str = "uber-trace-id";
/// The prefix of baggage headers.
pub(super) const BAGGAGE_PREFIX: &str = "uberctx-";
/// At most this many `uberctx-*` headers are read.
const MAX_BAGGAGE_ITEMS: usize = 64;

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Hex of 1 to `max_len` digits, either case.
fn parse_hex(s: &str, max_len: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max_len {
        return None;
    }
    s.bytes()
        .try_fold(0u128, |acc, b| Some(acc << 4 | u128::from(hex_digit(b)?)))
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`); `None` for a broken
/// escape or a result that is not UTF-8.
fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Parses an `uber-trace-id` value, plain or URL-encoded; `None` if malformed.
pub(super) fn parse(value: &str) -> Option<Parsed> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let decoded;
    let value = if value.contains('%') {
        decoded = percent_decode(value, false)?;
        decoded.as_str()
    } else {
        value
    };
    let mut parts = value.split(':');
    let (trace, span, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let trace_id = parse_hex(trace, 32).filter(|v| *v != 0)?;
    let span_id = parse_hex(span, 16).filter(|v| *v != 0)?;
    parse_hex(parent, 16)?;
    let flags = parse_hex(flags, 2)?;
    // Only bit 1 decides sampling, as in the OpenTelemetry Python and Go propagators:
    // Python sets bit 2 on every new trace (it copies W3C's "random trace id" flag), so
    // bit 2 alone must not turn an unsampled trace into a sampled debug one.
    let sampled = flags & u128::from(FLAG_SAMPLED) != 0;
    let state = match (sampled, flags & u128::from(FLAG_DEBUG) != 0) {
        (true, true) => SamplingState::Debug,
        (true, false) => SamplingState::Accept,
        (false, _) => SamplingState::Deny,
    };
    Some(Parsed::Ids {
        trace_id: TraceId::from(trace_id),
        span_id: SpanId::from(u64::try_from(span_id).ok()?),
        state,
    })
}

/// Writes `uber-trace-id` for a valid span context (Jaeger cannot carry a decision alone).
pub(super) fn inject(out: Outgoing, injector: &mut dyn Injector) {
    if let Outgoing::Ids {
        trace_id,
        span_id,
        sampled,
        debug,
    } = out
    {
        let flags = match (sampled, debug) {
            (true, true) => FLAG_SAMPLED | FLAG_DEBUG,
            (true, false) => FLAG_SAMPLED,
            (false, _) => 0,
        };
        injector.set(
            UBER_TRACE_ID,
            format!(
                "{}:{}:0:{flags:02x}",
                trace_id_hex(trace_id),
                span_id_hex(span_id)
            ),
        );
    }
}

/// The prefix-stripped key if `name` is a `uberctx-` header.
fn baggage_key(name: &str) -> Option<&str> {
    let prefix = name.get(..BAGGAGE_PREFIX.len())?;
    let key = &name[BAGGAGE_PREFIX.len()..];
    (prefix.eq_ignore_ascii_case(BAGGAGE_PREFIX) && !key.is_empty()).then_some(key)
}

/// Reads `uberctx-*` baggage: keys lower-cased, values URL-decoded. Malformed entries are
/// skipped; at most 64 are read.
pub(super) fn extract_baggage(carrier: &dyn Extractor) -> Vec<(String, String)> {
    carrier
        .keys()
        .into_iter()
        .filter_map(|name| {
            let key = baggage_key(name)?;
            let value = carrier.get(name)?;
            let value = percent_decode(value.trim_matches(|c| c == ' ' || c == '\t'), true)?;
            Some((key.to_ascii_lowercase(), value))
        })
        .take(MAX_BAGGAGE_ITEMS)
        .collect()
}

/// RFC 9110 token characters: what a header name may contain.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Writes each baggage entry as `uberctx-{key}: {percent-encoded value}`. Keys that cannot
/// be part of a header name are skipped.
pub(super) fn inject_baggage(cx: &Context, injector: &mut dyn Injector) {
    for (key, (value, _metadata)) in cx.baggage() {
        if is_token(key.as_str()) {
            injector.set(
                &format!("{BAGGAGE_PREFIX}{}", key.as_str()),
                percent_encode(value.as_str()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::{HeaderMap, HeaderValue};
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{TraceContextExt, TraceFlags};
    use opentelemetry::{KeyValue, StringValue};
    use proptest::prelude::*;

    use super::super::{Propagation, PropagationFormat, sampling_state};
    use super::*;
    use crate::telemetry::propagation::test_support::*;

    #[test]
    fn spec_and_reference_examples() {
        // OpenTelemetry Python's example: padded 128-bit trace id, 8-digit parent.
        assert_eq!(
            parse("000000000000000000000000deadbeef:00000000deadbef0:00000000:01"),
            ids(0xdead_beef, 0xdead_bef0, SamplingState::Accept)
        );
        // A 64-bit trace id with a parent, as commonly seen from Jaeger clients.
        assert_eq!(
            parse("269daf90c4589ce1:5c44cd976d8f8cd9:39e8e549de678267:1"),
            ids(
                0x269d_af90_c458_9ce1,
                0x5c44_cd97_6d8f_8cd9,
                SamplingState::Accept
            )
        );
        // Variable length ids are left-padded; parent 0 means root; one flag digit.
        assert_eq!(
            parse("abc:def:0:1"),
            ids(0xabc, 0xdef, SamplingState::Accept)
        );
        assert_eq!(parse("abc:def:0:0"), ids(0xabc, 0xdef, SamplingState::Deny));
        assert_eq!(
            parse("abc:def:0:00"),
            ids(0xabc, 0xdef, SamplingState::Deny)
        );
        // Debug (bit 2) counts only with sampled (bit 1); firehose (bit 4) is ignored.
        assert_eq!(
            parse("abc:def:0:3"),
            ids(0xabc, 0xdef, SamplingState::Debug)
        );
        assert_eq!(
            parse("abc:def:0:02"),
            ids(0xabc, 0xdef, SamplingState::Deny)
        );
        assert_eq!(
            parse("abc:def:0:09"),
            ids(0xabc, 0xdef, SamplingState::Accept)
        );
        assert_eq!(
            parse("abc:def:0:08"),
            ids(0xabc, 0xdef, SamplingState::Deny)
        );
        // Upper-case hex is accepted.
        assert_eq!(
            parse("ABCDEF0123456789ABCDEF0123456789:FEDCBA9876543210:0:1"),
            ids(
                0xabcd_ef01_2345_6789_abcd_ef01_2345_6789,
                0xfedc_ba98_7654_3210,
                SamplingState::Accept
            )
        );
    }

    #[test]
    fn url_encoded_form() {
        assert_eq!(
            parse("269daf90c4589ce1%3A5c44cd976d8f8cd9%3A39e8e549de678267%3A1"),
            ids(
                0x269d_af90_c458_9ce1,
                0x5c44_cd97_6d8f_8cd9,
                SamplingState::Accept
            )
        );
        assert_eq!(
            parse("abc%3adef%3a0%3a3"),
            ids(0xabc, 0xdef, SamplingState::Debug)
        );
        // Broken escapes are malformed.
        assert_eq!(parse("abc%3Adef%3A0%3"), None);
        assert_eq!(parse("abc%ZZdef:0:1"), None);
        assert_eq!(parse("abc%FF:def:0:1"), None);
    }

    #[test]
    fn extracted_into_contexts() {
        let cx = extract(&[(
            "uber-trace-id",
            "000000000000000000000000deadbeef:00000000deadbef0:00000000:01",
        )]);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id(), TraceId::from(0xdead_beef));
        assert_eq!(sc.span_id(), SpanId::from(0xdead_bef0));
        assert_eq!(sampling_state(&cx), Some(SamplingState::Accept));

        let cx = extract(&[("Uber-Trace-Id", "abc%3Adef%3A0%3A0")]);
        assert!(cx.span().span_context().is_valid());
        assert!(!cx.span().span_context().is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Deny));
    }

    #[test]
    fn malformed_values_are_rejected() {
        let cases = [
            "",
            ":::",
            "abc:def:0",
            "abc:def:0:1:",
            "abc:def:0:1:1",
            "0:def:0:1",
            "00000000000000000000000000000000:def:0:1",
            "abc:0:0:1",
            "abc:0000000000000000:0:1",
            "abc:def::1",
            "abc:def:0:",
            "abc:def:0:001",
            "abc:def:0:0x01",
            "123456789012345678901234567890123:def:0:1",
            "abc:12345678901234567:0:1",
            "abc:def:12345678901234567:1",
            "xyz:def:0:1",
            "abc:def:g:1",
            "+abc:def:0:1",
            "-abc:def:0:1",
            "abc:déf:0:1",
            "abc:def:0:١",
        ];
        for case in cases {
            assert_eq!(parse(case), None, "{case:?}");
        }
    }

    #[test]
    fn hostile_headers_give_an_empty_context() {
        let long = format!("abc:def:0:1{}", " ".repeat(10 * 1024));
        let cx = extract(&[("uber-trace-id", &long)]);
        assert!(!cx.has_active_span());
        // Repeated uber-trace-id is ambiguous, so ignored.
        let cx = extract(&[
            ("uber-trace-id", "abc:def:0:1"),
            ("uber-trace-id", "123:456:0:1"),
        ]);
        assert!(!cx.has_active_span());
        let mut map = HeaderMap::new();
        map.insert(
            "uber-trace-id",
            HeaderValue::from_bytes(b"abc:def:0:\xe9").unwrap(),
        );
        assert!(
            !Propagation::default()
                .extract_headers(&map)
                .has_active_span()
        );
    }

    #[test]
    fn baggage_spec_examples() {
        // `uberctx-key1: value1`, `uberctx-key2: value2`, and the URL-encoded value
        // `uberctx-key1: value%201%20%2F%20blah` for "value 1 / blah".
        let cx = extract(&[("uberctx-key1", "value1"), ("uberctx-key2", "value2")]);
        assert_eq!(cx.baggage().get("key1"), Some(&StringValue::from("value1")));
        assert_eq!(cx.baggage().get("key2"), Some(&StringValue::from("value2")));
        let cx = extract(&[("uberctx-key1", "value%201%20%2F%20blah")]);
        assert_eq!(
            cx.baggage().get("key1"),
            Some(&StringValue::from("value 1 / blah"))
        );
        let cx = extract(&[("UberCtx-My-Key", "a+b%2Bc")]);
        assert_eq!(
            cx.baggage().get("my-key"),
            Some(&StringValue::from("a b+c"))
        );
        // Malformed values and empty keys are skipped.
        let cx = extract(&[
            ("uberctx-bad", "%zz"),
            ("uberctx-", "x"),
            ("uberctx-ok", "1"),
        ]);
        assert_eq!(cx.baggage().len(), 1);
        // Oversized values are skipped.
        let long = "v".repeat(600);
        let cx = extract(&[("uberctx-big", &long)]);
        assert!(cx.baggage().is_empty());
    }

    #[test]
    fn baggage_entries_are_capped() {
        let pairs: Vec<(String, String)> = (0..200)
            .map(|i| (format!("uberctx-k{i}"), format!("v{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cx = extract(&refs);
        assert_eq!(cx.baggage().len(), MAX_BAGGAGE_ITEMS);
    }

    #[test]
    fn injection_writes_parent_zero_and_flags() {
        let p = Propagation::new(&[PropagationFormat::Jaeger]);
        let mut out = HashMap::new();
        p.inject_context(
            &context(
                0x269d_af90_c458_9ce1,
                0x5c44_cd97_6d8f_8cd9,
                TraceFlags::SAMPLED,
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out["uber-trace-id"],
            "269daf90c4589ce1:5c44cd976d8f8cd9:0:01"
        );

        let mut out = HashMap::new();
        p.inject_context(
            &context(u128::MAX, 0x0000_0000_0000_0abc, TraceFlags::NOT_SAMPLED),
            &mut out,
        );
        assert_eq!(
            out["uber-trace-id"],
            "ffffffffffffffffffffffffffffffff:0000000000000abc:0:00"
        );

        // Debug is flags 03.
        let cx = extract(&[("uber-trace-id", "abc:def:0:3")]);
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(
            out["uber-trace-id"],
            "0000000000000abc:0000000000000def:0:03"
        );

        // Deny-only B3 cannot be written as Jaeger.
        let mut out = HashMap::new();
        p.inject_context(&extract(&[("b3", "0")]), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn baggage_injection_round_trips() {
        let p = Propagation::new(&[PropagationFormat::Jaeger]);
        let cx = context(0xabc, 0xdef, TraceFlags::SAMPLED).with_baggage([
            KeyValue::new("key1", "value 1 / blah"),
            KeyValue::new("unicode", "é+ü,;="),
            KeyValue::new("bad key", "skipped"),
        ]);
        let mut map = HeaderMap::new();
        p.inject_headers(&cx, &mut map);
        assert_eq!(map["uberctx-key1"], "value%201%20%2F%20blah");
        assert!(!map.keys().any(|k| k.as_str().contains("bad")));
        let back = p.extract_headers(&map);
        assert_eq!(
            back.baggage().get("key1"),
            Some(&StringValue::from("value 1 / blah"))
        );
        assert_eq!(
            back.baggage().get("unicode"),
            Some(&StringValue::from("é+ü,;="))
        );
        assert_eq!(back.span().span_context().trace_id(), TraceId::from(0xabc));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn near_valid_never_panics(s in "[0-9a-fA-F:%3]{0,80}") {
            if let Some(Parsed::Ids { trace_id, span_id, .. }) = parse(&s) {
                prop_assert!(trace_id != TraceId::INVALID && span_id != SpanId::INVALID);
            }
        }

        #[test]
        fn percent_decode_never_panics(s in any::<String>()) {
            let _ = percent_decode(&s, true);
        }

        #[test]
        fn arbitrary_header_bytes_never_panic(
            name in prop::sample::select(vec!["uber-trace-id", "uberctx-k"]),
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            extract_raw(name, &bytes);
        }

        #[test]
        fn valid_ids_round_trip(
            trace in 1..=u128::MAX,
            span in 1..=u64::MAX,
            parent in any::<u64>(),
            flags in any::<u8>(),
            encoded in any::<bool>(),
            upper in any::<bool>(),
        ) {
            // Shortest form: variable length ids and flags.
            let mut value = format!("{trace:x}:{span:x}:{parent:x}:{flags:x}");
            if upper {
                value = value.to_ascii_uppercase();
            }
            if encoded {
                value = value.replace(':', "%3A");
            }
            let state = match (flags & FLAG_SAMPLED != 0, flags & FLAG_DEBUG != 0) {
                (true, true) => SamplingState::Debug,
                (true, false) => SamplingState::Accept,
                (false, _) => SamplingState::Deny,
            };
            prop_assert_eq!(parse(&value), ids(trace, span, state));
        }

        #[test]
        fn injected_contexts_round_trip(trace in 1..=u128::MAX, span in 1..=u64::MAX, sampled in any::<bool>()) {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
            let p = Propagation::new(&[PropagationFormat::Jaeger]);
            let mut map = HeaderMap::new();
            p.inject_headers(&context(trace, span, flags), &mut map);
            let sc = p.extract_headers(&map).span().span_context().clone();
            prop_assert_eq!(sc.trace_id(), TraceId::from(trace));
            prop_assert_eq!(sc.span_id(), SpanId::from(span));
            prop_assert_eq!(sc.is_sampled(), sampled);
        }

        #[test]
        fn baggage_values_round_trip(value in "\\PC{0,40}") {
            let decoded = percent_decode(&percent_encode(&value), true);
            prop_assert_eq!(decoded.as_deref(), Some(value.as_str()));
        }
    }
}
