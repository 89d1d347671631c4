//! `tracing.exporter: stdout`: each finished span as one JSON line on stdout, beside the
//! logs, for local development without a collector. Written here because
//! `opentelemetry-stdout` prints multi-line debug output that would break the
//! one-object-per-line log stream.

use std::io::Write;
use std::time::SystemTime;

use opentelemetry::trace::Status;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Map, Value, json};

#[derive(Debug, Default)]
pub(crate) struct StdoutExporter;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

pub(crate) fn span_json(s: &SpanData) -> Value {
    let attributes: Map<String, Value> = s
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), Value::String(kv.value.to_string())))
        .collect();
    let (status, description) = match &s.status {
        Status::Unset => ("unset", None),
        Status::Ok => ("ok", None),
        Status::Error { description } => ("error", Some(description.to_string())),
    };
    json!({
        "timestamp": rfc3339(s.end_time),
        "level": "TRACE",
        "target": "ms_chassis::span",
        "message": s.name,
        "trace_id": s.span_context.trace_id().to_string(),
        "span_id": s.span_context.span_id().to_string(),
        "parent_span_id": s.parent_span_id.to_string(),
        "kind": format!("{:?}", s.span_kind).to_lowercase(),
        "start": rfc3339(s.start_time),
        "duration_ms": s.end_time.duration_since(s.start_time).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        "status": status,
        "status_description": description,
        "attributes": attributes,
    })
}

impl SpanExporter for StdoutExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for s in &batch {
            out.push_str(&span_json(s).to_string());
            out.push('\n');
        }
        // One write per batch, so lines from concurrent log events never interleave mid-line.
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};

    use super::*;

    #[derive(Debug, Default, Clone)]
    struct Capture(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Capture {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[test]
    fn a_span_is_one_flat_json_line() {
        let cap = Capture::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(cap.clone()))
            .build();
        let mut span = provider.tracer("t").start("GET /books/{id}");
        span.set_attribute(KeyValue::new("http.route", "/books/{id}"));
        span.set_status(Status::error("boom"));
        span.end();
        let spans = cap.0.lock().unwrap();
        let line = span_json(&spans[0]).to_string();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "GET /books/{id}");
        assert_eq!(v["attributes"]["http.route"], "/books/{id}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["status_description"], "boom");
        assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
