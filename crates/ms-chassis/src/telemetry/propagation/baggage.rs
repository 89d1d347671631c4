//! W3C Baggage: the `baggage` header written with the specification's encoding, and read
//! merged with Jaeger's `uberctx-*` baggage.
//!
//! Written by hand because the SDK's `BaggagePropagator` leaves `%` and `+` bare (see
//! [`inject`]); read with the SDK's parser, behind the size limits.

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::BaggagePropagator;

use super::jaeger;
use super::limits::{Bounded, MAX_BAGGAGE_HEADER_LEN, note_ignored};

/// The W3C Baggage header.
pub(super) const BAGGAGE: &str = "baggage";

/// Reads the baggage in `carrier` onto `out`: Jaeger `uberctx-*` first, then W3C `baggage`
/// over it. `raw` is the carrier before the size limits, to log an oversized `baggage`.
pub(super) fn extract(raw: &dyn Extractor, carrier: &Bounded<'_>, mut out: Context) -> Context {
    let jaeger_items = jaeger::extract_baggage(carrier);
    let w3c_present = carrier.get(BAGGAGE).is_some();
    if raw.get(BAGGAGE).is_some() && !w3c_present {
        note_ignored(raw, BAGGAGE);
    }
    if w3c_present || !jaeger_items.is_empty() {
        let mut baggage = Baggage::new();
        for (key, value) in jaeger_items {
            let _ = baggage.insert(key, value);
        }
        if w3c_present {
            let w3c = BaggagePropagator::new().extract_with_context(&Context::new(), carrier);
            for (key, (value, metadata)) in w3c.baggage() {
                let _ = baggage.insert_with_metadata(key.clone(), value.clone(), metadata.clone());
            }
        }
        out = out.with_baggage(baggage);
    }
    out
}

/// Writes W3C `baggage`, percent-encoding every value byte except `A-Z a-z 0-9 - . _ ~`.
///
/// Stricter than the SDK's `BaggagePropagator`, which leaves `%` and `+` bare: the W3C spec
/// requires `%` to be encoded, and the Python SDK decodes a bare `+` as a space. Entries
/// that would take the header past [`MAX_BAGGAGE_HEADER_LEN`] are left out.
pub(super) fn inject(cx: &Context, injector: &mut dyn Injector) {
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

#[cfg(test)]
mod tests {
    use opentelemetry::StringValue;

    use super::super::test_support::extract;
    use super::*;

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
}
