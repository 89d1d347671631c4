//! RED metrics for every request to the user's router: a duration histogram labelled by
//! method, **route template** and status, and an in-flight gauge.
//!
//! Recorded by the route layer inside the router, where the matched route template is known;
//! requests that matched no route are labelled `unmatched`, so label cardinality stays
//! bounded whatever paths clients send.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use prometheus::{HistogramVec, IntGauge};

use super::openmetrics::Exemplars;

/// Route label for requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The server-side HTTP instruments.
#[derive(Clone, Debug)]
pub(crate) struct HttpInstruments {
    pub(crate) duration: HistogramVec,
    pub(crate) active: IntGauge,
    pub(crate) exemplars: Arc<Exemplars>,
}

impl HttpInstruments {
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
        self.duration.with_label_values(&labels).observe(seconds);
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

    #[test]
    fn unknown_methods_and_unmatched_routes_use_fixed_labels() {
        let i = HttpInstruments {
            duration: HistogramVec::new(
                prometheus::HistogramOpts::new("d_seconds", "d"),
                &["m", "r", "s"],
            )
            .unwrap(),
            active: IntGauge::new("a", "a").unwrap(),
            exemplars: Arc::default(),
        };
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
}
