//! OpenMetrics 1.0 text output, served when a scraper asks for it in `Accept`, with
//! `trace_id` exemplars on the request duration histogram so a latency bucket links to a
//! trace. The `prometheus` crate writes only the 0.0.4 text format and keeps no exemplars,
//! so this renders its gathered families itself and takes exemplars from [`Exemplars`].

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// Media type of the OpenMetrics text format.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The name of the histogram that carries exemplars.
const EXEMPLAR_HISTOGRAM: &str = "http_server_request_duration_seconds";

#[derive(Clone, Debug)]
struct Exemplar {
    /// Formatted at the scrape, not per request.
    trace_id: opentelemetry::trace::TraceId,
    value: f64,
    at: SystemTime,
}

/// The latest sampled request per bucket of each (method, route, status) series.
#[derive(Debug, Default)]
pub(crate) struct Exemplars {
    by_series: Mutex<Series>,
}

#[derive(Debug, Default)]
struct Series {
    slots: HashMap<String, Vec<Option<Exemplar>>>,
    /// The key of the series being recorded, reused: a lookup allocates nothing.
    key: String,
}

fn series_key(method: &str, route: &str, status: &str) -> String {
    format!("{method}\u{1}{route}\u{1}{status}")
}

impl Exemplars {
    /// Records a sampled observation; `bounds` are the histogram's upper bounds.
    pub(crate) fn record(
        &self,
        bounds: &[f64],
        (method, route, status): (&str, &str, &str),
        value: f64,
        trace_id: opentelemetry::trace::TraceId,
    ) {
        let bucket = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        let mut series = self
            .by_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Series { slots, key } = &mut *series;
        key.clear();
        for (i, part) in [method, route, status].into_iter().enumerate() {
            if i > 0 {
                key.push('\u{1}');
            }
            key.push_str(part);
        }
        if !slots.contains_key(key.as_str()) {
            slots.insert(key.clone(), vec![None; bounds.len() + 1]);
        }
        let Some(slots) = slots.get_mut(key.as_str()) else {
            return;
        };
        slots[bucket] = Some(Exemplar {
            trace_id,
            value,
            at: SystemTime::now(),
        });
    }

    fn get(&self, m: &Metric, bucket: usize) -> Option<Exemplar> {
        let label = |n: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == n)
                .map_or("", LabelPair::value)
        };
        let key = series_key(
            label("http_request_method"),
            label("http_route"),
            label("http_response_status_code"),
        );
        let series = self
            .by_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series.slots.get(&key)?.get(bucket)?.clone()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

fn labels(m: &Metric, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = m
        .get_label()
        .iter()
        .map(|l| format!("{}=\"{}\"", l.name(), escape(l.value())))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Renders `families` as OpenMetrics text, ending in `# EOF`.
pub(crate) fn render(families: &[MetricFamily], exemplars: &Exemplars) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for f in families {
        let t = f.get_field_type();
        let name = match t {
            MetricType::COUNTER => f.name().strip_suffix("_total").unwrap_or(f.name()),
            _ => f.name(),
        };
        let kind = match t {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "unknown",
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        if !f.help().is_empty() {
            let _ = writeln!(out, "# HELP {name} {}", escape(f.help()));
        }
        for m in f.get_metric() {
            match t {
                MetricType::COUNTER => {
                    let v = m.get_counter().get_value();
                    let _ = writeln!(out, "{name}_total{} {}", labels(m, None), number(v));
                }
                MetricType::GAUGE | MetricType::UNTYPED => {
                    // Untyped samples come only from foreign collectors; this is the one accessor.
                    #[allow(deprecated)]
                    let v = if t == MetricType::GAUGE {
                        m.get_gauge().get_value()
                    } else {
                        m.get_untyped().get_value()
                    };
                    let _ = writeln!(out, "{name}{} {}", labels(m, None), number(v));
                }
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let with_exemplars = f.name() == EXEMPLAR_HISTOGRAM;
                    let mut buckets: Vec<(f64, u64)> = h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .collect();
                    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                        buckets.push((f64::INFINITY, h.get_sample_count()));
                    }
                    for (i, (le, count)) in buckets.iter().enumerate() {
                        let _ = write!(
                            out,
                            "{name}_bucket{} {count}",
                            labels(m, Some(("le", &number(*le))))
                        );
                        if with_exemplars && let Some(e) = exemplars.get(m, i) {
                            let ts = e.at.duration_since(UNIX_EPOCH).unwrap_or_default();
                            let _ = write!(
                                out,
                                " # {{trace_id=\"{}\"}} {} {}.{:03}",
                                e.trace_id,
                                number(e.value),
                                ts.as_secs(),
                                ts.subsec_millis()
                            );
                        }
                        out.push('\n');
                    }
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        labels(m, None),
                        number(h.get_sample_sum())
                    );
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        labels(m, None),
                        h.get_sample_count()
                    );
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            labels(m, Some(("quantile", &number(q.quantile())))),
                            number(q.value())
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        labels(m, None),
                        number(s.sample_sum())
                    );
                    let _ = writeln!(out, "{name}_count{} {}", labels(m, None), s.sample_count());
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
