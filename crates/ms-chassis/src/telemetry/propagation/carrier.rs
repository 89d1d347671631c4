//! The carriers: [`http::HeaderMap`] as an OpenTelemetry [`Extractor`] and [`Injector`], and
//! [`ValueInjector`], an injector that takes a ready header value.
//!
//! Ours rather than `opentelemetry-http`'s because extraction follows HTTP's rules for
//! repeated headers (list headers joined, a repeated `traceparent` refused) under the size
//! limits, and because a forwarded `tracestate` goes back out as the very header value it
//! came in, without a copy.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

use super::baggage::BAGGAGE;
use super::jaeger;
use super::limits::limit_for;
use super::w3c::{TRACEPARENT, TRACESTATE};

/// An [`Injector`] that also takes a ready header value, which an [`http::HeaderMap`] keeps
/// without a copy (a forwarded `tracestate`).
pub(super) trait ValueInjector: Injector {
    /// Sets `key` to `value`, replacing any value it had.
    fn set_value(&mut self, key: &'static str, value: HeaderValue);
}

/// Any carrier: a value is set as a string.
pub(super) struct AnyInjector<'a>(pub(super) &'a mut dyn Injector);

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
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::TraceFlags;

    use super::super::Propagation;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn repeated_list_headers_are_joined() {
        let cx = extract(&[
            ("traceparent", SPEC_TRACEPARENT),
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
    fn injection_replaces_stale_headers() {
        let mut map = headers(&[("traceparent", "stale"), ("tracestate", "stale=1")]);
        Propagation::default().inject_headers(
            &context(SPEC_TRACE, SPEC_SPAN, TraceFlags::SAMPLED),
            &mut map,
        );
        assert_eq!(map["traceparent"], SPEC_TRACEPARENT);
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
}
