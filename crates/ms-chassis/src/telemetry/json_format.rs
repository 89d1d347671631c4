//! The flat JSON log line: `timestamp` (RFC 3339, UTC), `level`, `service`, `target`,
//! `message`, `trace_id` and `span_id` of the innermost span (and `parent_span_id` at the
//! server span, when the caller sent trace context), then the fields of the enclosing
//! `tracing` spans (root first, so inner spans win), the request's `request_id`, then the
//! event's own fields, which win over both. Ids are present even when the trace is not
//! sampled.
//!
//! Written here rather than taken from `tracing-subscriber`'s JSON format (which nests span
//! fields under `spans`) or `json-subscriber` (whose flattening emits a key twice when a span
//! field and an event field share a name, and always adds the span's `name`): every line
//! must be one valid, flat object with unique keys. A field that collides with one of the
//! fixed keys is written as `field.<name>` so nothing is lost.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use opentelemetry::trace::TraceContextExt;

use super::RequestContext;

const FIXED: [&str; 8] = [
    "timestamp",
    "level",
    "service",
    "target",
    "message",
    "trace_id",
    "span_id",
    "parent_span_id",
];

/// Formats events as flat JSON lines.
pub(crate) struct FlatJson {
    /// `"service":"<name>"` pre-rendered once.
    service: String,
}

impl FlatJson {
    pub(crate) fn new(service: &str) -> Self {
        Self {
            service: Value::String(service.to_owned()).to_string(),
        }
    }
}

/// Collects fields into a JSON map; used for both span and event fields.
#[derive(Default)]
pub(crate) struct FieldMap(pub(crate) Map<String, Value>);

impl Visit for FieldMap {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0
            .insert(f.name().to_owned(), Value::String(v.to_owned()));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().to_owned(), Value::Bool(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().to_owned(), Value::from(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().to_owned(), Value::from(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().to_owned(), Value::from(v));
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(f.name().to_owned(), Value::String(v.to_string()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0
            .insert(f.name().to_owned(), Value::String(format!("{v:?}")));
    }
}

/// Span fields are stored pre-rendered as a JSON object by this `FormatFields`.
pub(crate) struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut map = FieldMap::default();
        fields.record(&mut map);
        write!(writer, "{}", Value::Object(map.0))
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map = match serde_json::from_str::<Value>(&current.fields) {
            Ok(Value::Object(m)) => FieldMap(m),
            _ => FieldMap::default(),
        };
        fields.record(&mut map);
        current.fields = Value::Object(map.0).to_string();
        Ok(())
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        let mut trace_ids: Vec<(&str, String)> = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<JsonSpanFields>>()
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&f.fields)
                {
                    fields.extend(m);
                }
            }
        }
        let request = RequestContext::with_current(|c| {
            let server = c.otel_context().span().span_context().clone();
            (c.request_id().to_string(), server, c.parent_span_id())
        });
        // The innermost span: a `tracing` child span activates its OTel context on enter;
        // otherwise the server span attached to the request future.
        let current = opentelemetry::Context::current()
            .span()
            .span_context()
            .clone();
        let ids = if current.is_valid() {
            Some(current)
        } else {
            request
                .as_ref()
                .map(|r| r.1.clone())
                .filter(|sc| sc.is_valid())
        };
        if let Some((id, server, parent)) = request {
            if !fields.contains_key("request_id") {
                fields.insert("request_id".to_owned(), Value::String(id));
            }
            if let (Some(sc), Some(parent)) = (&ids, parent)
                && sc.span_id() == server.span_id()
            {
                trace_ids.push(("parent_span_id", parent.to_string()));
            }
        }
        if let Some(sc) = &ids {
            trace_ids.insert(0, ("span_id", sc.span_id().to_string()));
            trace_ids.insert(0, ("trace_id", sc.trace_id().to_string()));
        }
        let mut own = FieldMap::default();
        event.record(&mut own);
        // Some libraries (the OpenTelemetry SDK among them) log events with a `name` field
        // and no message; the name is then the most useful message.
        let message = match own.0.remove("message") {
            Some(Value::String(m)) if !m.is_empty() => Some(Value::String(m)),
            _ => own.0.get("name").cloned(),
        };
        fields.extend(own.0);

        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(
            writer,
            "\",\"level\":\"{}\",\"service\":{},\"target\":{},\"message\":{}",
            meta.level(),
            self.service,
            Value::String(meta.target().to_owned()),
            message.unwrap_or(Value::String(String::new())),
        )?;
        for (k, v) in trace_ids {
            write!(writer, ",\"{k}\":\"{v}\"")?;
        }
        for (k, v) in fields {
            let key = if FIXED.contains(&k.as_str()) {
                format!("field.{k}")
            } else {
                k
            };
            write!(writer, ",{}:{}", Value::String(key), v)?;
        }
        writer.write_str("}\n")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_flat_with_unique_keys() {
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(JsonSpanFields)
            .event_format(FlatJson::new("svc"))
            .with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", request_id = "r1", shared = "outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner", shared = "inner", name = "span-name");
            let _i = inner.enter();
            tracing::warn!(name = "event-name", target = "mine", n = 3, "hi \"there\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let keys: Vec<&str> = text
            .trim()
            .trim_matches(['{', '}'])
            .split(',')
            .filter_map(|kv| kv.split_once("\":").map(|(k, _)| k.trim_start_matches('"')))
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "duplicate keys in {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["service"], "svc");
        assert_eq!(v["message"], "hi \"there\"");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["shared"], "inner", "inner span wins");
        assert_eq!(v["name"], "event-name", "event wins over span");
        assert_eq!(
            v["field.target"], "mine",
            "colliding field kept under field."
        );
        assert_eq!(v["n"], 3);
    }
}
