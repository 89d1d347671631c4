//! [`Document`]: a hand-written OpenAPI 3.0.x or 3.1.x spec, read from YAML or JSON,
//! bundled into one document and checked against the official meta-schema.
//!
//! We parse with saphyr's marked nodes instead of a serde YAML deserializer, as the config
//! loader does, because every later error — a dangling `$ref`, a schema the validator
//! rejects, a meta-schema violation — must name the file and line it came from. Keeping a
//! JSON pointer → line map beside a plain `serde_json::Value` gives both, and the bundle
//! keeps, for every part it hoisted from another file, where that part came from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

/// The OpenAPI version a document declares in its `openapi` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecVersion {
    /// OpenAPI 3.0.x: schemas are OpenAPI's extended subset of JSON Schema draft 4
    /// (`nullable`, boolean `exclusiveMinimum`), translated to 2020-12 for validation.
    V3_0,
    /// OpenAPI 3.1.x: schemas are JSON Schema 2020-12.
    V3_1,
}

/// One thing wrong with a spec: where (file, line, JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the offending part was written in.
    pub file: Option<PathBuf>,
    /// Its 1-based line in `file`.
    pub line: Option<usize>,
    /// The JSON pointer of the offending part, in the bundled document.
    pub pointer: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        if let Some(p) = self.pointer.as_deref().filter(|p| !p.is_empty()) {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A spec that could not be loaded, bundled or compiled.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file of the spec could not be read.
    #[error("{}: cannot read the OpenAPI spec: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The spec is wrong: every problem found, one per line in `Display`.
    #[error("{}", list(.0))]
    Invalid(Vec<Diagnostic>),
}

fn list(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl SpecError {
    /// Every problem found (empty for [`SpecError::Read`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SpecError::Read { .. } => &[],
            SpecError::Invalid(d) => d,
        }
    }

    pub(crate) fn one(file: &Path, line: Option<usize>, pointer: &str, message: String) -> Self {
        SpecError::Invalid(vec![Diagnostic {
            file: Some(file.to_path_buf()),
            line,
            pointer: Some(pointer.to_owned()),
            message,
        }])
    }
}

/// One parsed file: its value and the line of every JSON pointer in it.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) lines: HashMap<String, usize>,
}

impl SourceFile {
    /// The line of `pointer`, or of its nearest ancestor that has one.
    pub(crate) fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            if p.is_empty() {
                return None;
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

/// A loaded, bundled OpenAPI document: one JSON value in which every `$ref` is local
/// (`#/components/...`), parts from other files hoisted into `components`.
///
/// ```no_run
/// let doc = ms_chassis::openapi::Document::load("api.yaml")?;
/// let published: &serde_json::Value = doc.as_value();
/// # let _ = published;
/// # Ok::<(), ms_chassis::openapi::SpecError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Document {
    value: Value,
    version: SpecVersion,
    files: Vec<SourceFile>,
    /// Bundled pointer prefix → (file index, pointer in that file): where each hoisted part
    /// was written. The root file maps `""` → `(0, "")`.
    origins: BTreeMap<String, (usize, String)>,
}

impl Document {
    /// Reads the spec at `path` (YAML or JSON, OpenAPI 3.0.x or 3.1.x), bundles the files
    /// its `$ref`s name, and checks the result against the official OpenAPI meta-schema.
    ///
    /// `$ref`s may name files by relative path, within the directory tree of `path`; remote
    /// (`http:`, `https:`) references are refused and never fetched.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let bundled = super::bundle::bundle_file(path.as_ref())?;
        Self::checked(bundled)
    }

    /// A spec given as text (YAML or JSON); `name` stands for its file in messages, and
    /// relative `$ref`s to other files resolve against the current directory.
    pub fn from_text(text: &str, name: &str) -> Result<Self, SpecError> {
        let bundled = super::bundle::bundle_text(text, Path::new(name))?;
        Self::checked(bundled)
    }

    /// A spec already in memory, such as a code-first spec generated by utoipa. It must not
    /// refer to other files.
    pub fn from_value(value: Value) -> Result<Self, SpecError> {
        let text = value.to_string();
        Self::from_text(&text, "<generated spec>")
    }

    fn checked(bundled: super::bundle::Bundled) -> Result<Self, SpecError> {
        let super::bundle::Bundled {
            value,
            files,
            origins,
        } = bundled;
        let mut doc = Document {
            value,
            version: SpecVersion::V3_1,
            files,
            origins,
        };
        doc.version = match doc.value.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => SpecVersion::V3_0,
            Some(v) if v.starts_with("3.1.") => SpecVersion::V3_1,
            Some(v) => {
                return Err(doc.error(
                    "/openapi",
                    format!("unsupported OpenAPI version {v:?}: expected 3.0.x or 3.1.x"),
                ));
            }
            None => {
                return Err(doc.error(
                    "",
                    "not an OpenAPI document: expected an `openapi: 3.0.x` or `3.1.x` member"
                        .into(),
                ));
            }
        };
        super::meta::check(&doc)?;
        Ok(doc)
    }

    /// The bundled document, as published.
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    /// The bundled document, as published.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The OpenAPI version it declares.
    pub fn version(&self) -> SpecVersion {
        self.version
    }

    /// The bundled document as YAML text (block style, strings quoted where YAML would
    /// read them as something else).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        write_yaml(&self.value, 0, &mut out);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    /// The file and line where the part at `pointer` (in the bundled document) was written.
    pub(crate) fn locate(&self, pointer: &str) -> (Option<&Path>, Option<usize>) {
        // Few origins (one per hoisted part), and only errors ask: a scan is enough.
        let best = self
            .origins
            .iter()
            .filter(|(prefix, _)| {
                prefix.is_empty()
                    || pointer == prefix.as_str()
                    || (pointer.starts_with(prefix.as_str())
                        && pointer.as_bytes().get(prefix.len()) == Some(&b'/'))
            })
            .max_by_key(|(prefix, _)| prefix.len());
        let Some((prefix, (file, original))) = best else {
            return (None, None);
        };
        let f = &self.files[*file];
        let inner = format!("{original}{}", &pointer[prefix.len()..]);
        (Some(f.path.as_path()), f.line_of(&inner))
    }

    /// A diagnostic at `pointer` of the bundled document.
    pub(crate) fn diagnostic(&self, pointer: &str, message: String) -> Diagnostic {
        let (file, line) = self.locate(pointer);
        Diagnostic {
            file: file.map(Path::to_path_buf),
            line,
            pointer: Some(pointer.to_owned()),
            message,
        }
    }

    pub(crate) fn error(&self, pointer: &str, message: String) -> SpecError {
        SpecError::Invalid(vec![self.diagnostic(pointer, message)])
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub(crate) fn escape(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains(['~', '/']) {
        segment.replace('~', "~0").replace('/', "~1").into()
    } else {
        segment.into()
    }
}

/// Unescapes one JSON pointer segment (RFC 6901).
pub(crate) fn unescape(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains('~') {
        segment.replace("~1", "/").replace("~0", "~").into()
    } else {
        segment.into()
    }
}

/// Parses one file's text (YAML 1.2, of which JSON is a subset) into a value and the line
/// of every pointer in it.
pub(crate) fn parse(text: &str, path: &Path) -> Result<(Value, SourceFile), SpecError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        // A `.json` file is read as YAML too (for the lines), but is said to be bad JSON.
        let json = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("json"));
        if json && let Err(j) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return SpecError::one(path, Some(j.line()), "", format!("invalid JSON: {j}"));
        }
        SpecError::one(
            path,
            Some(e.marker().line()),
            "",
            format!(
                "invalid YAML: {} (column {})",
                e.info(),
                e.marker().col() + 1
            ),
        )
    })?;
    let mut file = SourceFile {
        path: path.to_path_buf(),
        lines: HashMap::new(),
    };
    let Some(doc) = docs.into_iter().next() else {
        return Err(SpecError::one(path, None, "", "the file is empty".into()));
    };
    file.lines.insert(String::new(), doc.span.start.line());
    let mut conv = Converter {
        path,
        lines: &mut file.lines,
    };
    let value = conv.node(&doc, &mut String::new(), 0)?;
    Ok((value, file))
}

/// How deep a spec's YAML may nest: far beyond any real spec, well short of the stack.
const MAX_DEPTH: usize = 256;

struct Converter<'a> {
    path: &'a Path,
    lines: &'a mut HashMap<String, usize>,
}

impl Converter<'_> {
    fn error(&self, line: usize, pointer: &str, message: impl Into<String>) -> SpecError {
        SpecError::one(self.path, Some(line), pointer, message.into())
    }

    fn node(
        &mut self,
        node: &MarkedYaml<'_>,
        pointer: &mut String,
        depth: usize,
    ) -> Result<Value, SpecError> {
        let line = node.span.start.line();
        if depth > MAX_DEPTH {
            return Err(self.error(line, pointer, "nested too deeply"));
        }
        Ok(match &node.data {
            YamlData::Value(s) => scalar_to_json(s),
            YamlData::Representation(text, style, tag) => {
                match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
                    Some(s) => scalar_to_json(&s),
                    None => {
                        return Err(self.error(line, pointer, format!("invalid value {text:?}")));
                    }
                }
            }
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.lines.insert(pointer.clone(), item.span.start.line());
                    out.push(self.node(item, pointer, depth + 1)?);
                    pointer.truncate(len);
                }
                Value::Array(out)
            }
            YamlData::Mapping(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let kl = k.span.start.line();
                    let key = match self.node(k, pointer, depth + 1)? {
                        Value::String(s) => s,
                        Value::Object(_) | Value::Array(_) => {
                            return Err(self.error(kl, pointer, "mapping keys must be scalars"));
                        }
                        other => other.to_string(),
                    };
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&escape(&key));
                    if out.contains_key(&key) {
                        return Err(self.error(kl, pointer, format!("duplicate key {key:?}")));
                    }
                    self.lines.insert(pointer.clone(), kl);
                    let value = self.node(v, pointer, depth + 1)?;
                    pointer.truncate(len);
                    out.insert(key, value);
                }
                Value::Object(out)
            }
            YamlData::Tagged(_, inner) => self.node(inner, pointer, depth)?,
            YamlData::Alias(_) => {
                return Err(self.error(
                    line,
                    pointer,
                    "YAML aliases are not supported in a spec: use a $ref",
                ));
            }
            YamlData::BadValue => return Err(self.error(line, pointer, "invalid YAML value")),
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

/// Whether `s` can be written as a plain YAML scalar and read back as the same string.
fn plain_safe(s: &str) -> bool {
    const RESERVED: [&str; 14] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", ".inf", ".nan", "-.inf",
        ".NaN",
    ];
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '{' | '}'))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

fn write_scalar(s: &str, out: &mut String) {
    if plain_safe(s) {
        out.push_str(s);
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        out.push_str(&Value::String(s.to_owned()).to_string());
    }
}

fn write_yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    pad(out, indent);
                }
                write_scalar(k, out);
                out.push(':');
                match v {
                    Value::Object(c) if !c.is_empty() => {
                        out.push('\n');
                        pad(out, indent + 2);
                        write_yaml(v, indent + 2, out);
                    }
                    Value::Array(c) if !c.is_empty() => {
                        out.push('\n');
                        pad(out, indent);
                        write_yaml(v, indent, out);
                    }
                    _ => {
                        out.push(' ');
                        write_yaml(v, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    pad(out, indent);
                }
                out.push_str("- ");
                write_yaml(item, indent + 2, out);
            }
        }
        Value::Object(_) => out.push_str("{}\n"),
        Value::Array(_) => out.push_str("[]\n"),
        Value::String(s) => {
            write_scalar(s, out);
            out.push('\n');
        }
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_per_pointer() {
        let (v, f) = parse(
            "openapi: 3.1.0\npaths:\n  /a/{id}:\n    get:\n      responses:\n        200:\n          description: ok\n",
            Path::new("api.yaml"),
        )
        .unwrap();
        assert_eq!(
            v["paths"]["/a/{id}"]["get"]["responses"]["200"]["description"],
            "ok"
        );
        assert_eq!(f.line_of("/paths/~1a~1{id}/get"), Some(4));
        assert_eq!(
            f.line_of("/paths/~1a~1{id}/get/responses/200/description"),
            Some(7)
        );
        assert_eq!(f.line_of("/paths/~1a~1{id}/get/nothing/here"), Some(4));
    }

    #[test]
    fn invalid_yaml_names_file_and_line() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n", Path::new("bad.yaml")).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("bad.yaml:"), "{text}");
        assert!(text.contains("invalid YAML"), "{text}");
        // A `.json` file is said to be bad JSON, at serde_json's line.
        let e = parse(
            "{\n  \"openapi\": \"3.1.0\",\n  \"paths\": {\n",
            Path::new("api.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("api.json:4: invalid JSON: EOF while parsing"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_and_aliases_resolved() {
        let e = parse("a: 1\na: 2\n", Path::new("d.yaml")).unwrap_err();
        assert!(
            e.to_string().contains("d.yaml:2:") && e.to_string().contains("duplicate"),
            "{e}"
        );
        // saphyr resolves anchors and aliases itself.
        let (v, _) = parse("a: &x 1\nb: *x\n", Path::new("d.yaml")).unwrap();
        assert_eq!(v["b"], 1);
    }

    #[test]
    fn yaml_output_reads_back_as_the_same_value() {
        let v = serde_json::json!({
            "openapi": "3.1.0",
            "paths": {"/a/{id}": {"get": {"responses": {"200": {"description": "yes"}}}}},
            "list": [1, "true", {"a": [], "b": {}}, [1, 2], null, 1.5, "multi\nline: x"],
            "empty": "",
        });
        let mut out = String::new();
        write_yaml(&v, 0, &mut out);
        let (back, _) = parse(&out, Path::new("out.yaml")).unwrap();
        assert_eq!(back, v, "{out}");
    }
}
