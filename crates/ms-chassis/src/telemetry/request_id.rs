//! `x-request-id`: honour a well-formed incoming id, otherwise generate a UUID. The stack
//! echoes it on the response and keeps it in the request context, where log lines and
//! handlers find it (`RequestContext::current()`).
//!
//! An incoming id is accepted only if it is 1–128 visible ASCII characters, so a hostile
//! client cannot inject control characters or huge values into our logs.
//!
//! It lives in `telemetry` beside the request context that carries it, so that telemetry
//! needs nothing from the server; the server stack mints it and re-exports it as
//! `server::RequestId`.

use axum::http::{HeaderName, HeaderValue};

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// The id of the current request, from `x-request-id` or generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored, so this cannot fail.
        self.0.to_str().unwrap_or_default()
    }
}

impl RequestId {
    /// The incoming `x-request-id` if it is acceptable, otherwise a fresh v4 UUID.
    pub(crate) fn from_incoming(incoming: Option<&HeaderValue>) -> Self {
        match incoming {
            Some(v) if acceptable(v) => Self(v.clone()),
            _ => Self(generate()),
        }
    }

    /// The id as a header value, for echoing.
    pub(crate) fn into_header_value(self) -> HeaderValue {
        self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

fn generate() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    // A request id must be unique, not unguessable: the thread's fast generator rather than
    // the cryptographic one behind `Uuid::new_v4`, at a sixth of the cost.
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    // Owned bytes: one allocation, and the id's clones (the request context, the echo)
    // only count references. A header value copied from a `&str` is a `Vec` that its first
    // clone moves to a second allocation.
    HeaderValue::from_maybe_shared(axum::body::Bytes::from_owner(buf))
        .expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_visible_ids_are_accepted() {
        assert!(acceptable(&HeaderValue::from_static("abc-123")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
        assert!(!acceptable(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));
        let id = generate();
        assert!(acceptable(&id));
        let uuid = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
        assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(generate(), id);
    }
}
