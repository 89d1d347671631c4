//! The incoming headers that clients copy onto their calls (`propagate_headers`).
//!
//! The server stack captures, per request, only the headers that some client asks for,
//! into the request's [`RequestContext`](crate::telemetry::RequestContext); a client then
//! copies those on its own list. With no client asking, the capture costs one relaxed load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::telemetry::CapturedHeaders;

/// Which incoming headers the service's clients want.
#[derive(Debug, Default)]
pub(crate) struct Forwarding {
    /// Whether any client wants any header: the request path's fast check.
    any: AtomicBool,
    per_client: Mutex<BTreeMap<String, Vec<HeaderName>>>,
    union: RwLock<Arc<[HeaderName]>>,
}

impl Forwarding {
    /// Sets the headers `client` wants.
    pub(crate) fn set(&self, client: &str, names: Vec<HeaderName>) {
        let mut per_client = self
            .per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        per_client.insert(client.to_owned(), names);
        let mut union: Vec<HeaderName> = per_client.values().flatten().cloned().collect();
        union.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        union.dedup();
        self.any.store(!union.is_empty(), Ordering::Relaxed);
        *self.union.write().unwrap_or_else(PoisonError::into_inner) = union.into();
    }

    /// The wanted headers present in `headers`, if any.
    pub(crate) fn capture(&self, headers: &HeaderMap) -> Option<CapturedHeaders> {
        if !self.any.load(Ordering::Relaxed) || headers.is_empty() {
            return None;
        }
        let union = Arc::clone(&self.union.read().unwrap_or_else(PoisonError::into_inner));
        let found: Vec<(HeaderName, HeaderValue)> = union
            .iter()
            .flat_map(|n| {
                headers
                    .get_all(n)
                    .iter()
                    .map(move |v| (n.clone(), v.clone()))
            })
            .collect();
        (!found.is_empty()).then(|| found.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_only_what_some_client_wants() {
        let f = Forwarding::default();
        let mut h = HeaderMap::new();
        h.insert("x-tenant-id", HeaderValue::from_static("acme"));
        h.insert("host", HeaderValue::from_static("evil"));
        assert!(f.capture(&h).is_none(), "nobody asked");
        f.set("books", vec![HeaderName::from_static("x-tenant-id")]);
        f.set("authors", vec![HeaderName::from_static("accept-language")]);
        let got = f.capture(&h).expect("x-tenant-id is wanted");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "x-tenant-id");
        assert_eq!(got[0].1, "acme");
        f.set("books", Vec::new());
        assert!(f.capture(&h).is_none(), "no longer wanted");
    }
}
