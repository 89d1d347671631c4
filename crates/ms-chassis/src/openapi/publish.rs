//! Serving the spec in effect at `openapi.path` (JSON) and its `.yaml` twin, with a
//! `servers` entry that says where the API is reached from the caller's side.
//!
//! Behind a proxy that strips a path prefix, the only correct `servers` URL is that
//! prefix, which differs per proxy and so per request: a validated `X-Forwarded-Prefix`
//! wins, then `openapi.base_path`. The document is serialized once at startup for the
//! common case (no header); a request with a prefix gets a variant rendered for it, and the
//! last prefix's variant is kept, since behind one proxy every request carries the same.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::OpenApiSection;
use super::config::is_path_byte;

/// The header a reverse proxy names the path prefix it stripped with.
pub(crate) const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Longest `X-Forwarded-Prefix` honoured; a longer one is ignored.
pub(crate) const MAX_PREFIX_LEN: usize = 256;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const YAML: HeaderValue = HeaderValue::from_static("application/yaml");

/// The spec in effect, serialized, with the routes that serve it.
pub(crate) struct Published {
    /// The document without a `servers` override, for rendering prefixed variants.
    doc: Value,
    /// The common case, rendered at startup: `servers` from `openapi.base_path`, else as
    /// the document has it, else `/`.
    plain: Rendered,
    /// `openapi.base_path`, without a trailing `/`.
    base: Option<String>,
    /// The variant for the last `X-Forwarded-Prefix` seen.
    last: Mutex<Option<(String, Rendered)>>,
}

#[derive(Clone)]
struct Rendered {
    json: Bytes,
    yaml: Bytes,
}

impl Published {
    /// Serializes `doc` for serving under `config`.
    pub(crate) fn new(doc: Value, config: &OpenApiSection) -> Self {
        let base = config.base_prefix().map(ToOwned::to_owned);
        let plain = render(&doc, base.as_deref());
        Self {
            doc,
            plain,
            base,
            last: Mutex::new(None),
        }
    }

    /// The routes of `openapi.path` and its YAML twin.
    pub(crate) fn routes(self: Arc<Self>, config: &OpenApiSection) -> Router {
        let json = self.clone();
        let yaml = self;
        Router::new()
            .route(
                &config.path,
                get(move |h: HeaderMap| async move { json.respond(&h, false) }),
            )
            .route(
                &config.yaml_path(),
                get(move |h: HeaderMap| async move { yaml.respond(&h, true) }),
            )
    }

    /// The paths [`routes`](Self::routes) serves, for dispatch.
    pub(crate) fn paths(config: &OpenApiSection) -> [String; 2] {
        [config.path.clone(), config.yaml_path()]
    }

    fn respond(&self, headers: &HeaderMap, yaml: bool) -> Response {
        let rendered = match forwarded_prefix(headers) {
            Some(p) if Some(p.as_str()) != self.base.as_deref() => self.for_prefix(p),
            _ => self.plain.clone(),
        };
        let (ty, body) = if yaml {
            (YAML, rendered.yaml)
        } else {
            (JSON, rendered.json)
        };
        (
            [
                (header::CONTENT_TYPE, ty),
                (header::VARY, HeaderValue::from_static("x-forwarded-prefix")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response()
    }

    fn for_prefix(&self, prefix: String) -> Rendered {
        let last = || self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, r)) = &*last()
            && *p == prefix
        {
            return r.clone();
        }
        // Rendered without the lock: a document can take milliseconds to serialize, and
        // requests for the cached prefix must not wait for it.
        let r = render(&self.doc, Some(&prefix));
        *last() = Some((prefix, r.clone()));
        r
    }

    /// The JSON of the common case, for tests.
    #[cfg(test)]
    fn plain_json(&self) -> Value {
        serde_json::from_slice(&self.plain.json).unwrap()
    }
}

/// `doc` as JSON and YAML, with `servers` set to `prefix` when there is one (`""` is the
/// root) followed by the path of `doc`'s own first server (where its routes are), else as
/// `doc` has it, else `/`.
fn render(doc: &Value, prefix: Option<&str>) -> Rendered {
    let own = super::compiled::server_base(doc).unwrap_or_default();
    let mut doc = doc.clone();
    if let Value::Object(root) = &mut doc {
        let url = prefix.map(|p| match format!("{p}{own}") {
            url if url.is_empty() => "/".to_owned(),
            url => url,
        });
        let url = url.as_deref();
        let has_servers = root
            .get("servers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        match url {
            Some(url) => {
                root.insert("servers".into(), json!([{ "url": url }]));
            }
            None if !has_servers => {
                root.insert("servers".into(), json!([{ "url": "/" }]));
            }
            None => {}
        }
    }
    Rendered {
        json: to_json(&doc).into(),
        yaml: to_yaml(&doc).into(),
    }
}

/// The order of an OpenAPI document's top-level fields in the specification; others follow
/// in name order. Readers (and tools that sniff the first bytes) expect `openapi` first.
const TOP_LEVEL: [&str; 10] = [
    "openapi",
    "info",
    "jsonSchemaDialect",
    "servers",
    "paths",
    "webhooks",
    "components",
    "security",
    "tags",
    "externalDocs",
];

/// The top-level fields of `root` in [`TOP_LEVEL`] order.
fn ordered(root: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let known = TOP_LEVEL.iter().filter_map(|k| root.get_key_value(*k));
    let rest = root
        .iter()
        .filter(|(k, _)| !TOP_LEVEL.contains(&k.as_str()));
    known.chain(rest)
}

/// `v` as compact JSON, its top-level fields in [`TOP_LEVEL`] order.
fn to_json(v: &Value) -> Vec<u8> {
    let Value::Object(root) = v else {
        return serde_json::to_vec(v).expect("a JSON value always serializes");
    };
    let mut out = Vec::with_capacity(64 * 1024);
    out.push(b'{');
    for (i, (k, v)) in ordered(root).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).expect("writing to a Vec cannot fail");
        out.push(b':');
        serde_json::to_writer(&mut out, v).expect("writing to a Vec cannot fail");
    }
    out.push(b'}');
    out
}

/// A validated `X-Forwarded-Prefix`: one header, at most [`MAX_PREFIX_LEN`] bytes,
/// starting with `/`, of unreserved characters and `/` only, with no empty, `.` or `..`
/// segment; returned without its trailing `/` (`""` for `/`). Anything else is ignored:
/// the value ends up in a document a browser acts on.
pub(crate) fn forwarded_prefix(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(X_FORWARDED_PREFIX).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let raw = value.to_str().ok()?.trim();
    if raw.len() > MAX_PREFIX_LEN || !raw.starts_with('/') || !raw.bytes().all(is_path_byte) {
        return None;
    }
    let prefix = raw.trim_end_matches('/');
    let bad_segment = prefix
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..");
    if bad_segment {
        return None;
    }
    Some(prefix.to_owned())
}

/// `v` as a YAML document, its top-level fields in [`TOP_LEVEL`] order.
pub(crate) fn to_yaml(v: &Value) -> String {
    let yaml = match v {
        Value::Object(root) => saphyr::Yaml::Mapping(
            ordered(root)
                .map(|(k, v)| (yaml_key(k), yaml_node(v)))
                .collect(),
        ),
        other => yaml_node(other),
    };
    let mut out = String::new();
    let mut emitter = saphyr::YamlEmitter::new(&mut out);
    emitter.multiline(true);
    emitter
        .dump(&yaml)
        .expect("writing YAML into a String cannot fail");
    out.push('\n');
    out
}

fn yaml_node(v: &Value) -> saphyr::Yaml<'_> {
    use saphyr::{Scalar, Yaml};
    match v {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or(f64::NAN).into())),
        },
        Value::String(s) if yaml11_ambiguous(s) => {
            Yaml::Representation(s.as_str().into(), saphyr::ScalarStyle::DoubleQuoted, None)
        }
        Value::String(s) => Yaml::Value(Scalar::String(s.as_str().into())),
        Value::Array(a) => Yaml::Sequence(a.iter().map(yaml_node).collect()),
        Value::Object(m) => {
            Yaml::Mapping(m.iter().map(|(k, v)| (yaml_key(k), yaml_node(v))).collect())
        }
    }
}

/// Whether a YAML 1.1 reader (PyYAML, SnakeYAML) could take the plain scalar `s` for
/// something other than a string, where saphyr (YAML 1.2) would write it plain: `1_000`,
/// `1:30`, `2026-12-02`, `<<`, `=`. Such a string is written double-quoted; it holds only
/// digits, letters and `-+._: `, so it needs no escapes (checked, to be sure).
fn yaml11_ambiguous(s: &str) -> bool {
    let b = s.as_bytes();
    let numberish = match b {
        [d, ..] if d.is_ascii_digit() => true,
        [b'-' | b'+' | b'.', d, ..] if d.is_ascii_digit() => true,
        _ => false,
    };
    (numberish || s == "<<" || s == "=")
        && s.bytes()
            .all(|c| (c.is_ascii_graphic() && c != b'"' && c != b'\\') || c == b' ')
}

fn yaml_key(k: &str) -> saphyr::Yaml<'_> {
    saphyr::Yaml::Value(saphyr::Scalar::String(k.into()))
}

/// Adds the chassis endpoints (health, and metrics at `metrics_path` when on) to `doc`,
/// with their real response shapes, tagged `chassis`.
pub(crate) fn add_chassis_endpoints(doc: &mut Value, metrics_path: Option<&str>) {
    let Value::Object(root) = doc else { return };
    let paths = object_at(root, "paths");
    let health = |summary: &str| {
        json!({"get": {
            "tags": ["chassis"],
            "summary": summary,
            "operationId": null,
            "parameters": [{
                "name": "format", "in": "query", "required": false,
                "description": "`spring` for the Spring Boot Actuator shape.",
                "schema": {"type": "string", "enum": ["spring"]}
            }],
            "responses": {
                "200": {"description": "UP", "content": health_content()},
                "503": {"description": "DOWN", "content": health_content()},
            }
        }})
    };
    for (path, summary, id) in [
        (
            "/health",
            "Every check: liveness, readiness and startup",
            "chassisHealth",
        ),
        ("/health/live", "Liveness checks", "chassisHealthLive"),
        ("/health/ready", "Readiness checks", "chassisHealthReady"),
        ("/health/started", "Startup checks", "chassisHealthStarted"),
    ] {
        let mut item = health(summary);
        item["get"]["operationId"] = id.into();
        paths.insert(path.into(), item);
    }
    paths.insert(
        "/healthcheck".into(),
        json!({"get": {
            "tags": ["chassis"],
            "summary": "PyMS-compatible liveness",
            "operationId": "chassisHealthcheck",
            "responses": {
                "200": {"description": "Live", "content": {"text/plain": {
                    "schema": {"type": "string", "const": "OK"}}}},
                "503": {"description": "Not live", "content": {"text/plain": {
                    "schema": {"type": "string", "const": "DOWN"}}}},
            }
        }}),
    );
    if let Some(metrics) = metrics_path {
        paths.insert(
            metrics.into(),
            json!({"get": {
                "tags": ["chassis"],
                "summary": "Prometheus metrics",
                "description": "Prometheus text format 0.0.4, or OpenMetrics 1.0 when \
                    `Accept` asks for `application/openmetrics-text`.",
                "operationId": "chassisMetrics",
                // The very Content-Types the endpoint sends.
                "responses": {"200": {"description": "OK", "content": {
                    prometheus::TEXT_FORMAT: {"schema": {"type": "string"}},
                    crate::metrics::OPENMETRICS_TYPE: {"schema": {"type": "string"}},
                }}}
            }}),
        );
    }
    let components = object_at(root, "components");
    let schemas = object_at(components, "schemas");
    let status = json!({"type": "string", "enum": ["UP", "DOWN"]});
    schemas.insert(
        "ChassisHealth".into(),
        json!({
            "type": "object",
            "description": "MicroProfile Health: the overall status and each check's.",
            "required": ["status", "checks"],
            "properties": {
                "status": status,
                "checks": {"type": "array", "items": {"$ref": "#/components/schemas/ChassisHealthCheck"}},
            }
        }),
    );
    schemas.insert(
        "ChassisHealthCheck".into(),
        json!({
            "type": "object",
            "required": ["name", "status"],
            "properties": {
                "name": {"type": "string"},
                "status": status,
                "data": {"type": "object", "description": "Shown to authorized callers only (health.show_details)."},
            }
        }),
    );
    schemas.insert(
        "ChassisSpringHealth".into(),
        json!({
            "type": "object",
            "description": "Spring Boot Actuator health (`?format=spring`).",
            "required": ["status"],
            "properties": {
                "status": status,
                "components": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": status, "details": {"type": "object"}},
                }},
            }
        }),
    );
    let tags = root
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(tags) = tags
        && !tags.iter().any(|t| t["name"] == "chassis")
    {
        tags.push(
            json!({"name": "chassis", "description": "Endpoints every ms-chassis service has."}),
        );
    }
}

fn health_content() -> Value {
    json!({
        "application/json": {"schema": {"$ref": "#/components/schemas/ChassisHealth"}},
        "application/vnd.spring-boot.actuator.v3+json":
            {"schema": {"$ref": "#/components/schemas/ChassisSpringHealth"}},
    })
}

/// The object at `key` in `map`, made one when absent or not an object.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_PREFIX, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn only_a_safe_prefix_is_honoured() {
        let ok = |v: &str| forwarded_prefix(&headers(&[v.as_bytes()]));
        assert_eq!(ok("/api").as_deref(), Some("/api"));
        assert_eq!(ok("/api/v1/").as_deref(), Some("/api/v1"));
        assert_eq!(ok("/").as_deref(), Some(""));
        let long = format!("/{}", "a".repeat(10 * 1024));
        for hostile in [
            "//evil.com",
            "javascript:alert(1)",
            "\"><script>alert(1)</script>",
            "api",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a b",
            "/%2e%2e",
            "/a?b",
            "/a#b",
            "/a,/b",
            "http://evil.com/",
            long.as_str(),
        ] {
            assert_eq!(ok(hostile), None, "{hostile:?}");
        }
        assert_eq!(
            forwarded_prefix(&headers(&[b"/a", b"/b"])),
            None,
            "two values"
        );
        assert_eq!(forwarded_prefix(&headers(&[b"/\xff"])), None, "not UTF-8");
        assert_eq!(forwarded_prefix(&HeaderMap::new()), None);
    }

    #[test]
    fn servers_follow_base_path_then_the_document() {
        let doc = json!({"openapi": "3.1.0", "paths": {}});
        let mut cfg = OpenApiSection::default();
        assert_eq!(
            Published::new(doc.clone(), &cfg).plain_json()["servers"],
            json!([{"url": "/"}])
        );
        cfg.base_path = Some("/api/".into());
        let p = Published::new(doc.clone(), &cfg);
        assert_eq!(p.plain_json()["servers"], json!([{"url": "/api"}]));
        let r = p.for_prefix("/edge".into());
        let v: Value = serde_json::from_slice(&r.json).unwrap();
        assert_eq!(v["servers"], json!([{"url": "/edge"}]));
        let own = json!({"openapi": "3.1.0", "paths": {}, "servers": [{"url": "https://x"}]});
        let p = Published::new(own, &OpenApiSection::default());
        assert_eq!(p.plain_json()["servers"], json!([{"url": "https://x"}]));
        // A prefix goes in front of the spec's own server path, where its routes are.
        let own = json!({"openapi": "3.1.0", "paths": {}, "servers": [{"url": "https://x/v1/"}]});
        let p = Published::new(own, &cfg);
        assert_eq!(p.plain_json()["servers"], json!([{"url": "/api/v1"}]));
        let v: Value = serde_json::from_slice(&p.for_prefix("/edge".into()).json).unwrap();
        assert_eq!(v["servers"], json!([{"url": "/edge/v1"}]));
    }

    #[test]
    fn the_yaml_twin_reads_back_as_the_same_document() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "t: x", "version": "1.0"},
            "paths": {"/a": {"get": {"description": "line one\nline two\n", "responses": {
                "200": {"description": "yes", "content": {"application/json": {"schema":
                    {"type": "integer", "minimum": -1.5, "enum": [1, "2", true, null, "on", "~", "",
                        "1_000", "1:30", "2026-12-02", "<<", "=", "-1", "1\"2", "12 a\\b"]}}}}
            }}}},
        });
        let yaml = to_yaml(&doc);
        assert!(yaml.starts_with("---\nopenapi: \"3.1.0\"\ninfo:"), "{yaml}");
        for quoted in [
            r#""1_000""#,
            r#""1:30""#,
            r#""2026-12-02""#,
            r#""<<""#,
            r#""=""#,
        ] {
            assert!(yaml.contains(quoted), "{quoted} in {yaml}");
        }
        let json = String::from_utf8(to_json(&doc)).unwrap();
        assert!(json.starts_with(r#"{"openapi":"3.1.0","info":"#), "{json}");
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), doc);
        let parsed = <saphyr::Yaml as saphyr::LoadableYamlNode>::load_from_str(&yaml).unwrap();
        let back = from_yaml(&parsed[0]);
        assert_eq!(back, doc, "{yaml}");
    }

    fn from_yaml(y: &saphyr::Yaml<'_>) -> Value {
        use saphyr::{Scalar, Yaml};
        match y {
            Yaml::Value(Scalar::Null) => Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => (*b).into(),
            Yaml::Value(Scalar::Integer(i)) => (*i).into(),
            Yaml::Value(Scalar::FloatingPoint(f)) => f.into_inner().into(),
            Yaml::Value(Scalar::String(s)) => s.as_ref().into(),
            Yaml::Sequence(s) => s.iter().map(from_yaml).collect(),
            Yaml::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), from_yaml(v)))
                    .collect(),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
}
