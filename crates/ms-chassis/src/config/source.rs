//! Config layers (defaults, file, profile file, environment, inline YAML) merged into one
//! JSON tree that remembers, for every key path, the layer and line it came from.
//!
//! We parse YAML with saphyr's marked nodes rather than a serde YAML deserializer because the
//! layers must be merged *before* typed deserialization, and errors after the merge must still
//! point at `file:line`. Keeping a path → origin map beside a plain `serde_json::Value` gives
//! both, and lets `serde_path_to_error` name the failing key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

use super::diff::is_under;
use super::error::ConfigError;

/// Prefix of environment overrides: `MS__SERVER__PORT=9000` sets `server.port`.
pub(crate) const ENV_PREFIX: &str = "MS__";

/// Which layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Defaults,
    File(PathBuf),
    Env(String),
    Inline,
}

/// Where a key was set: the layer and, for YAML, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) source: Source,
    pub(crate) line: Option<usize>,
}

impl Origin {
    /// The embedded defaults.
    pub(crate) fn defaults() -> Self {
        Origin {
            source: Source::Defaults,
            line: None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.line) {
            (Source::Defaults, _) => f.write_str("embedded defaults"),
            (Source::File(p), Some(line)) => write!(f, "{}:{line}", p.display()),
            (Source::File(p), None) => write!(f, "{}", p.display()),
            (Source::Env(var), _) => write!(f, "environment variable {var}"),
            (Source::Inline, Some(line)) => write!(f, "inline config:{line}"),
            (Source::Inline, None) => f.write_str("inline config"),
        }
    }
}

/// The merged tree and the origin of every key path in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layered {
    pub(crate) value: Value,
    origins: HashMap<String, Origin>,
}

impl Layered {
    pub(crate) fn new() -> Self {
        Self {
            value: Value::Object(Map::new()),
            origins: HashMap::new(),
        }
    }

    /// The origin of `path`, or of its nearest ancestor that has one.
    pub(crate) fn origin_of(&self, path: &str) -> Option<&Origin> {
        let mut p = path;
        loop {
            if let Some(o) = self.origins.get(p) {
                return Some(o);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }

    /// Layers `other` on top: objects merge key by key, anything else replaces.
    pub(crate) fn merge(&mut self, other: Layered) {
        merge_value(&mut self.value, other.value);
        self.origins.extend(other.origins);
    }

    /// Whether the value at `path` is an embedded default that no layer has set.
    pub(crate) fn is_default(&self, path: &str) -> bool {
        self.origins
            .get(path)
            .is_some_and(|o| o.source == Source::Defaults)
    }

    /// Gives `to` and everything under it the origins of `from` and everything under it
    /// (a subtree copied from `from` to `to`); keeps `from`'s.
    pub(crate) fn copy_origins(&mut self, from: &str, to: &str) {
        let copied: Vec<(String, Origin)> = self
            .origins
            .iter()
            .filter(|(path, _)| is_under(path, from))
            .map(|(path, origin)| (format!("{to}{}", &path[from.len()..]), origin.clone()))
            .collect();
        self.origins.extend(copied);
    }

    /// Gives `to` the origin of `from` (a key renamed in place, such as a decrypted
    /// `enc_` key), and forgets `from`.
    pub(crate) fn move_origin(&mut self, from: &str, to: &str) {
        if let Some(origin) = self.origin_of(from).cloned() {
            self.origins.remove(from);
            self.origins.insert(to.to_owned(), origin);
        }
    }

    /// Sets one dotted path, creating objects on the way.
    pub(crate) fn set_path(&mut self, path: &[String], value: Value, origin: Origin) {
        let mut node = &mut self.value;
        let mut dotted = String::new();
        for (i, segment) in path.iter().enumerate() {
            if i > 0 {
                dotted.push('.');
            }
            dotted.push_str(segment);
            self.origins.insert(dotted.clone(), origin.clone());
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let map = node.as_object_mut().expect("just made an object");
            node = map.entry(segment.clone()).or_insert(Value::Null);
        }
        *node = value;
    }
}

fn merge_value(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => merge_value(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

/// Reads and parses one YAML file. A missing file is reported by the caller, which knows
/// whether the file was named explicitly.
pub(crate) fn read_yaml_file(path: &Path) -> Result<Layered, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            Some(path.display().to_string()),
            None,
            format!("cannot read config file: {e}"),
        )
    })?;
    parse_yaml(&text, Source::File(path.to_path_buf()))
}

/// Parses YAML text into a layer. The document must be a mapping (or empty).
pub(crate) fn parse_yaml(text: &str, source: Source) -> Result<Layered, ConfigError> {
    let at = |line: Option<usize>| {
        Origin {
            source: source.clone(),
            line,
        }
        .to_string()
    };
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        ConfigError::new(
            Some(at(Some(e.marker().line()))),
            None,
            format!(
                "invalid YAML: {} (column {})",
                e.info(),
                e.marker().col() + 1
            ),
        )
    })?;
    let mut layer = Layered::new();
    let Some(doc) = docs.into_iter().next() else {
        return Ok(layer);
    };
    let mut conv = Converter {
        source: &source,
        origins: &mut layer.origins,
    };
    let value = conv.node(&doc, "")?;
    match value {
        Value::Object(_) => layer.value = value,
        Value::Null => {}
        _ => {
            return Err(ConfigError::new(
                Some(at(Some(doc.span.start.line()))),
                None,
                "expected a mapping of sections (service:, server:, …) at the top level",
            ));
        }
    }
    Ok(layer)
}

struct Converter<'a> {
    source: &'a Source,
    origins: &'a mut HashMap<String, Origin>,
}

impl Converter<'_> {
    fn origin(&self, line: usize) -> Origin {
        Origin {
            source: self.source.clone(),
            line: Some(line),
        }
    }

    fn error(&self, line: usize, path: &str, message: impl Into<String>) -> ConfigError {
        let key = (!path.is_empty()).then(|| path.to_owned());
        ConfigError::new(Some(self.origin(line).to_string()), key, message)
    }

    fn node(&mut self, node: &MarkedYaml<'_>, path: &str) -> Result<Value, ConfigError> {
        let line = node.span.start.line();
        Ok(match &node.data {
            YamlData::Value(s) => scalar_to_json(s),
            YamlData::Representation(text, style, tag) => {
                match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
                    Some(s) => scalar_to_json(&s),
                    None => return Err(self.error(line, path, format!("invalid value {text:?}"))),
                }
            }
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.origins
                        .insert(p.clone(), self.origin(item.span.start.line()));
                    out.push(self.node(item, &p)?);
                }
                Value::Array(out)
            }
            YamlData::Mapping(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let key = match self.node(k, path)? {
                        Value::String(s) => s,
                        Value::Null => {
                            return Err(self.error(k.span.start.line(), path, "empty mapping key"));
                        }
                        Value::Object(_) | Value::Array(_) => {
                            return Err(self.error(
                                k.span.start.line(),
                                path,
                                "mapping keys must be plain scalars",
                            ));
                        }
                        other => other.to_string(),
                    };
                    let p = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.origins
                        .insert(p.clone(), self.origin(k.span.start.line()));
                    let value = self.node(v, &p)?;
                    out.insert(key, value);
                }
                Value::Object(out)
            }
            YamlData::Tagged(_, inner) => self.node(inner, path)?,
            YamlData::Alias(_) => {
                return Err(self.error(line, path, "YAML aliases are not supported in config"));
            }
            YamlData::BadValue => return Err(self.error(line, path, "invalid YAML value")),
        })
    }
}

fn scalar_to_json(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::from(*i),
        Scalar::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// Builds the environment layer from `MS__A__B=value` pairs. Values are read as YAML
/// scalars, so `9000` is a number and `true` a boolean, exactly as in a file.
pub(crate) fn env_layer<I>(vars: I) -> Layered
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut pairs: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    // Deterministic: a deeper override (`MS__SERVER__PORT`) wins over a shallower one.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut layer = Layered::new();
    for (var, raw) in pairs {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let origin = Origin {
            source: Source::Env(var.clone()),
            line: None,
        };
        // `[a, b]` and `{k: v}` are YAML flow collections, so lists and maps can be set from
        // the environment too: MS__TRACING__PROPAGATION='[tracecontext, b3]'.
        let trimmed = raw.trim();
        let flow = (trimmed.starts_with('[') || trimmed.starts_with('{'))
            .then(|| parse_yaml(&format!("v: {trimmed}"), origin.source.clone()).ok())
            .flatten()
            .and_then(|l| l.value.get("v").cloned());
        let value =
            flow.unwrap_or_else(|| scalar_to_json(&Scalar::parse_from_cow(Cow::Owned(raw))));
        layer.set_path(&path, value, origin);
    }
    layer
}

/// Maps the standard OpenTelemetry variables onto `tracing` keys, so that errors name the
/// variable and `MS__TRACING__*` can still override them.
pub(crate) fn otel_env_layer(vars: &[(String, String)]) -> Result<Layered, ConfigError> {
    let mut layer = Layered::new();
    let mut set = |var: &str, path: &[&str], value: Value| {
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        let origin = Origin {
            source: Source::Env(var.to_owned()),
            line: None,
        };
        layer.set_path(&path, value, origin);
    };
    let bad = |var: &str, expected: &str, found: &str| {
        ConfigError::new(
            Some(format!("environment variable {var}")),
            None,
            format!("expected {expected}, found {found:?}"),
        )
    };
    for (var, raw) in vars {
        let v = raw.trim();
        match var.as_str() {
            "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
                if !v.is_empty() =>
            {
                set(var, &["tracing", "endpoint"], Value::String(v.to_owned()));
                set(var, &["tracing", "exporter"], Value::String("otlp".into()));
            }
            "OTEL_EXPORTER_OTLP_PROTOCOL" | "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => {
                let p = match v {
                    "grpc" => "grpc",
                    "http/protobuf" => "http",
                    _ => return Err(bad(var, "grpc or http/protobuf", v)),
                };
                set(var, &["tracing", "protocol"], Value::String(p.into()));
            }
            "OTEL_TRACES_EXPORTER" => {
                let e = match v {
                    "otlp" => "otlp",
                    "console" => "stdout",
                    "none" => "none",
                    _ => return Err(bad(var, "otlp, console or none", v)),
                };
                set(var, &["tracing", "exporter"], Value::String(e.into()));
            }
            "OTEL_SERVICE_NAME" if !v.is_empty() => {
                set(var, &["service", "name"], Value::String(v.to_owned()));
            }
            "OTEL_TRACES_SAMPLER" => {
                let kind = match v {
                    "always_on" => "always_on",
                    "always_off" => "always_off",
                    "traceidratio" => "ratio",
                    "parentbased_always_on" => "parent_always_on",
                    "parentbased_always_off" => "parent_always_off",
                    "parentbased_traceidratio" => "parent_ratio",
                    _ => {
                        return Err(bad(
                            var,
                            "always_on, always_off, traceidratio, parentbased_always_on, \
                             parentbased_always_off or parentbased_traceidratio",
                            v,
                        ));
                    }
                };
                set(
                    var,
                    &["tracing", "sampler", "type"],
                    Value::String(kind.into()),
                );
            }
            "OTEL_TRACES_SAMPLER_ARG" => {
                let r: f64 = v
                    .parse()
                    .map_err(|_| bad(var, "a number from 0.0 to 1.0", v))?;
                let n = serde_json::Number::from_f64(r)
                    .ok_or_else(|| bad(var, "a number from 0.0 to 1.0", v))?;
                set(var, &["tracing", "sampler", "ratio"], Value::Number(n));
            }
            _ => {}
        }
    }
    Ok(layer)
}

/// Turns a JSON value of defaults into a layer.
pub(crate) fn defaults_layer(value: Value) -> Layered {
    let mut layer = Layered::new();
    fn walk(v: &Value, path: &str, origins: &mut HashMap<String, Origin>) {
        if let Value::Object(map) = v {
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                origins.insert(
                    p.clone(),
                    Origin {
                        source: Source::Defaults,
                        line: None,
                    },
                );
                walk(child, &p, origins);
            }
        }
    }
    walk(&value, "", &mut layer.origins);
    layer.value = value;
    layer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_lines_are_recorded_per_key() {
        let l = parse_yaml("server:\n  port: 80\n  host: 0.0.0.0\n", Source::Inline).unwrap();
        assert_eq!(l.origin_of("server.host").unwrap().line, Some(3));
        assert_eq!(l.origin_of("server.port").unwrap().line, Some(2));
        assert_eq!(l.value["server"]["port"], 80);
    }

    #[test]
    fn env_values_are_typed_like_yaml_scalars() {
        let l = env_layer([
            ("MS__SERVER__PORT".into(), "9000".into()),
            ("MS__LOGGING__ACCESS".into(), "true".into()),
            ("OTHER".into(), "x".into()),
        ]);
        assert_eq!(l.value["server"]["port"], 9000);
        assert_eq!(l.value["logging"]["access"], true);
        assert_eq!(
            l.origin_of("server.port").unwrap().to_string(),
            "environment variable MS__SERVER__PORT"
        );
    }

    #[test]
    fn env_values_may_be_flow_collections() {
        let l = env_layer([(
            "MS__TRACING__PROPAGATION".into(),
            "[tracecontext, b3]".into(),
        )]);
        assert_eq!(
            l.value["tracing"]["propagation"],
            serde_json::json!(["tracecontext", "b3"])
        );
        let l = env_layer([("MS__APP__NAME".into(), "[not closed".into())]);
        assert_eq!(l.value["app"]["name"], "[not closed");
    }

    #[test]
    fn merge_is_deep_and_top_wins() {
        let mut base = parse_yaml("a: {b: 1, c: 2}", Source::Inline).unwrap();
        base.merge(parse_yaml("a: {c: 3}", Source::Inline).unwrap());
        assert_eq!(base.value, serde_json::json!({"a": {"b": 1, "c": 3}}));
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let e = parse_yaml("a: 1\nb: [1, 2\n", Source::Inline).unwrap_err();
        assert!(e.to_string().starts_with("inline config:"), "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }
}
