//! RED metrics for every request to the user's router: a duration histogram labelled by
//! method, **route template** and status, and an in-flight gauge.
//!
//! Recorded by the route layer inside the router, where the matched route template is known;
//! requests that matched no route are labelled `unmatched`, so label cardinality stays
//! bounded whatever paths clients send.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use prometheus::{Histogram, HistogramVec, IntGauge};

use super::openmetrics::Exemplars;

/// Route label for requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The server-side HTTP instruments.
#[derive(Clone, Debug)]
pub(crate) struct HttpInstruments {
    pub(crate) duration: HistogramVec,
    pub(crate) active: IntGauge,
    pub(crate) exemplars: Arc<Exemplars>,
    series: Arc<SeriesCache>,
}

/// The duration histogram's series that requests have recorded into, found by the route
/// template's address, the method and the status: `with_label_values` hashes the three
/// label strings and takes a read lock on every request, about 200 instructions, where a
/// hit here costs a few comparisons. Direct-mapped with two ways and never evicted: a
/// series that finds both ways taken falls back to `with_label_values`, so the cache only
/// decides how fast a request is recorded, never whether. Route templates are `Arc<str>`s
/// held by the router for its whole life, so their addresses are stable keys.
struct SeriesCache {
    slots: Box<[OnceLock<(SeriesKey, Histogram)>]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct SeriesKey {
    /// The template's address and length; 0 for an unmatched request.
    route: (usize, usize),
    method: &'static str,
    status: u16,
}

const SERIES_SLOTS: usize = 256;

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("SeriesCache").field("used", &used).finish()
    }
}

impl Default for SeriesCache {
    fn default() -> Self {
        Self {
            slots: (0..SERIES_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl SeriesCache {
    fn observe(&self, vec: &HistogramVec, key: SeriesKey, labels: &[&str; 3], seconds: f64) {
        let hash = (key.route.0 ^ key.route.1.rotate_left(20) ^ usize::from(key.status))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        let first = (hash >> 8) % SERIES_SLOTS;
        for slot in [first, first ^ 1] {
            match self.slots[slot].get() {
                Some((k, h)) if *k == key => return h.observe(seconds),
                Some(_) => continue,
                None => {
                    let h = vec.with_label_values(labels);
                    h.observe(seconds);
                    let _ = self.slots[slot].set((key, h));
                    return;
                }
            }
        }
        vec.with_label_values(labels).observe(seconds);
    }
}

impl HttpInstruments {
    pub(crate) fn new(duration: HistogramVec, active: IntGauge, exemplars: Arc<Exemplars>) -> Self {
        Self {
            duration,
            active,
            exemplars,
            series: Arc::default(),
        }
    }

    /// Counts a request in the in-flight gauge until [`finish`](Self::finish) or
    /// [`abandon`](Self::abandon); returns its method's label, for `finish`.
    pub(crate) fn start(&self, method: &Method) -> &'static str {
        self.active.inc();
        method_label(method)
    }

    /// A request that was dropped unfinished (the client went away): it leaves the gauge
    /// and is not recorded.
    pub(crate) fn abandon(&self) {
        self.active.dec();
    }

    /// Records the request that started at `start`; `sampled_trace` (the trace id of a
    /// sampled request) becomes the bucket's exemplar.
    pub(crate) fn finish(
        &self,
        method: &'static str,
        start: Instant,
        route: Option<&str>,
        status: StatusCode,
        sampled_trace: Option<opentelemetry::trace::TraceId>,
    ) {
        self.active.dec();
        let labels = [method, route.unwrap_or(UNMATCHED_ROUTE), status.as_str()];
        let seconds = start.elapsed().as_secs_f64();
        let key = SeriesKey {
            route: route.map_or((0, 0), |r| (r.as_ptr().addr(), r.len())),
            method,
            status: status.as_u16(),
        };
        self.series.observe(&self.duration, key, &labels, seconds);
        if let Some(trace_id) = sampled_trace {
            self.exemplars.record(
                super::HTTP_DURATION_BUCKETS,
                (labels[0], labels[1], labels[2]),
                seconds,
                trace_id,
            );
        }
    }
}

/// The method as a bounded metric label, by the OTel semantic conventions: the standard
/// methods as they are, anything else `_OTHER`.
pub(crate) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruments() -> HttpInstruments {
        HttpInstruments::new(
            HistogramVec::new(
                prometheus::HistogramOpts::new("d_seconds", "d"),
                &["m", "r", "s"],
            )
            .unwrap(),
            IntGauge::new("a", "a").unwrap(),
            Arc::default(),
        )
    }

    #[test]
    fn unknown_methods_and_unmatched_routes_use_fixed_labels() {
        let i = instruments();
        let m = i.start(&Method::from_bytes(b"BREW").unwrap());
        assert_eq!(i.active.get(), 1);
        i.finish(m, Instant::now(), None, StatusCode::NOT_FOUND, None);
        assert_eq!(i.active.get(), 0);
        let n = i
            .duration
            .with_label_values(&["_OTHER", UNMATCHED_ROUTE, "404"])
            .get_sample_count();
        assert_eq!(n, 1);
        // Dropped unfinished (the client went away): the gauge is right by itself.
        i.start(&Method::GET);
        assert_eq!(i.active.get(), 1);
        i.abandon();
        assert_eq!(i.active.get(), 0);
    }

    #[test]
    fn series_are_found_again_through_the_cache_and_past_it() {
        let i = instruments();
        // Many more series than slots, each recorded three times: every observation
        // lands in its own series, cached or not.
        let routes: Vec<String> = (0..300).map(|n| format!("/r/{n}")).collect();
        for _ in 0..3 {
            for r in &routes {
                let m = i.start(&Method::GET);
                i.finish(m, Instant::now(), Some(r), StatusCode::OK, None);
            }
            let m = i.start(&Method::POST);
            i.finish(
                m,
                Instant::now(),
                Some(&routes[0]),
                StatusCode::CREATED,
                None,
            );
        }
        for r in &routes {
            let n = i
                .duration
                .with_label_values(&["GET", r, "200"])
                .get_sample_count();
            assert_eq!(n, 3, "{r}");
        }
        let posts = i.duration.with_label_values(&["POST", &routes[0], "201"]);
        assert_eq!(posts.get_sample_count(), 3);
        assert!(i.series.slots.iter().filter(|s| s.get().is_some()).count() > 100);
    }
}
