//! [`Validator`]: every operation of a [`Document`] compiled once at startup — its path
//! template, parameters, request body media types, security and responses, each schema a
//! ready `jsonschema` validator.
//!
//! Compiling everything up front means a bad schema fails the service at startup, with
//! file and line, instead of the first request that reaches it, and the request path only
//! runs compiled validators: no parsing, no `$ref` lookups, no allocation for the spec.
//! All schemas share one `jsonschema` registry that holds the whole translated document
//! (one copy for requests, one for responses), so `$ref`s, recursive ones included,
//! resolve inside it and nothing is ever fetched.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, Method};
use jsonschema::{Draft, Registry};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

use super::dialect::{INTEGER_LITERAL, IntegerLiteral, View, translate};
use super::document::{Diagnostic, Document, SpecError, escape};
use super::security::{CredentialVerifier, Scheme, SchemeKind};
use super::validate::{ValidationLayer, ValidationMetrics, ValidationOptions};

/// Base URI of the request view of the document in the validators' registry.
const REQUEST_BASE: &str = "urn:ms-chassis:openapi:request";
/// Base URI of the response view.
const RESPONSE_BASE: &str = "urn:ms-chassis:openapi:response";

/// Characters a JSON pointer must escape in a URI fragment.
const FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The compiled contract of a spec: build it once at startup with [`Validator::compile`],
/// then put [`Validator::layer`] on the router. Cheap to clone.
///
/// ```
/// use ms_chassis::openapi::{Document, ValidationOptions, Validator};
///
/// let doc = Document::from_text(r#"
/// openapi: 3.1.0
/// info: {title: books, version: "1"}
/// paths:
///   /books/{id}:
///     get:
///       parameters:
///         - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
///       responses:
///         "200": {description: the book}
/// "#, "api.yaml")?;
/// let validator = Validator::compile(&doc, ValidationOptions::default())?;
/// let app: ms_chassis::axum::Router = ms_chassis::axum::Router::new()
///     .route("/books/{id}", ms_chassis::axum::routing::get(|| async { "a book" }))
///     .layer(validator.layer());
/// # let _ = app;
/// # Ok::<(), ms_chassis::openapi::SpecError>(())
/// ```
#[derive(Clone)]
pub struct Validator {
    /// One `Arc`: axum clones each route's service, and so this, on every request.
    pub(crate) inner: Arc<Inner>,
}

/// What a [`Validator`] holds.
#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) options: ValidationOptions,
    pub(crate) metrics: Option<ValidationMetrics>,
    pub(crate) verifier: Option<Arc<dyn CredentialVerifier>>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("paths", &self.inner.compiled.paths.len())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles every operation of `doc`. Fails, naming file and line, on a schema the
    /// validator rejects, a `$ref` it cannot resolve, or a security requirement naming no
    /// scheme.
    pub fn compile(doc: &Document, options: ValidationOptions) -> Result<Self, SpecError> {
        let compiled = Compiler::new(doc)?.compile()?;
        Ok(Self {
            inner: Arc::new(Inner {
                compiled: Arc::new(compiled),
                options,
                metrics: None,
                verifier: None,
            }),
        })
    }

    /// Counts failures in `ms_chassis_openapi_request_validation_failures_total` (and the
    /// response counter) registered on `registry`, such as
    /// [`Metrics::registry`](crate::metrics::Metrics::registry).
    pub fn with_metrics(mut self, registry: &prometheus::Registry) -> prometheus::Result<Self> {
        Arc::make_mut(&mut self.inner).metrics = Some(ValidationMetrics::register(registry)?);
        Ok(self)
    }

    /// Checks credentials with `verifier` once they are present (see
    /// [`CredentialVerifier`]); without one, a present credential is enough.
    #[must_use]
    pub fn with_verifier(mut self, verifier: impl CredentialVerifier) -> Self {
        Arc::make_mut(&mut self.inner).verifier = Some(Arc::new(verifier));
        self
    }

    /// The options it runs with.
    pub fn options(&self) -> &ValidationOptions {
        &self.inner.options
    }

    /// The tower layer that validates requests (and responses, if enabled) before the
    /// handler.
    pub fn layer(&self) -> ValidationLayer {
        ValidationLayer::new(self.clone())
    }

    /// Every operation of the spec, as (method, path template): for a report of
    /// operations that have no route.
    pub fn operations(&self) -> impl Iterator<Item = (&Method, &str)> + '_ {
        self.inner.compiled.paths.iter().flat_map(|p| {
            p.operations
                .iter()
                .map(|o| (&o.method, p.template.as_str()))
        })
    }
}

/// Every path of the spec.
pub(crate) struct Compiled {
    pub(crate) paths: Vec<PathEntry>,
    /// Template → index in `paths`, for a request whose route axum matched; looked up on
    /// every request, so hashed with foldhash rather than SipHash (the keys are the spec's).
    pub(crate) by_template: foldhash::HashMap<String, usize>,
}

/// One path template and its operations.
pub(crate) struct PathEntry {
    pub(crate) template: String,
    /// The route label: the template, shared.
    pub(crate) route: Arc<str>,
    segments: Vec<Segment>,
    literals: usize,
    pub(crate) operations: Vec<Operation>,
    /// The `Allow` header of a 405: every method the path has.
    pub(crate) allow: HeaderValue,
}

enum Segment {
    Literal(String),
    /// `{name}`, with literal text before and after it in the segment (`{id}.json`).
    Param {
        prefix: String,
        name: String,
        suffix: String,
    },
}

/// One operation.
pub(crate) struct Operation {
    pub(crate) method: Method,
    pub(crate) params: Vec<Param>,
    pub(crate) body: Option<RequestBody>,
    /// `None`: no security. Otherwise alternatives (any one suffices), each a set of
    /// schemes that must all be satisfied; an empty set means anonymous is allowed.
    pub(crate) security: Option<Vec<Vec<Arc<Scheme>>>>,
    pub(crate) responses: Responses,
    /// Whether a parameter or an API key of the operation is a cookie: only then is the
    /// `Cookie` header read.
    pub(crate) reads_cookies: bool,
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    /// As the spec's `in` writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// A parameter's serialization style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Form,
    Simple,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    Label,
    Matrix,
}

/// The JSON types a value may have, to read a parameter's text as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Types(pub(crate) u8);

impl Types {
    pub(crate) const INTEGER: u8 = 1;
    pub(crate) const NUMBER: u8 = 2;
    pub(crate) const BOOLEAN: u8 = 4;
    pub(crate) const NULL: u8 = 8;
    pub(crate) const STRING: u8 = 16;
    pub(crate) const ARRAY: u8 = 32;
    pub(crate) const OBJECT: u8 = 64;

    pub(crate) fn has(self, t: u8) -> bool {
        self.0 & t != 0
    }

    fn of(schema: &Value) -> Types {
        let mut t = 0;
        let mut add = |name: &str| {
            t |= match name {
                "integer" => Self::INTEGER,
                "number" => Self::NUMBER,
                "boolean" => Self::BOOLEAN,
                "null" => Self::NULL,
                "string" => Self::STRING,
                "array" => Self::ARRAY,
                "object" => Self::OBJECT,
                _ => 0,
            }
        };
        match schema.get("type") {
            Some(Value::String(s)) => add(s),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).for_each(add),
            _ => {}
        }
        Types(t)
    }
}

/// What a parameter's schema says its value is, to parse the text by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Scalar(Types),
    Array(Types),
    Object(HashMap<String, Types>),
}

/// One parameter.
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) location: In,
    pub(crate) required: bool,
    pub(crate) style: Style,
    pub(crate) explode: bool,
    pub(crate) shape: Shape,
    /// The value is JSON text (`content: {application/json: ...}`).
    pub(crate) json: bool,
    /// `allowEmptyValue` (query parameters): `?q=` is accepted as the empty string; without
    /// it an empty value is a violation.
    pub(crate) allow_empty: bool,
    pub(crate) schema: Option<Schema>,
    /// `query.limit`, `header.x-tenant`: the violation location.
    pub(crate) location_name: String,
    /// It carries an API key (a security scheme reads it), so its value is never shown.
    pub(crate) secret: bool,
}

/// A compiled schema.
pub(crate) struct Schema {
    pub(crate) validator: jsonschema::Validator,
}

/// An operation's request body.
pub(crate) struct RequestBody {
    pub(crate) required: bool,
    pub(crate) media: Vec<Media>,
    /// The media types, for messages.
    pub(crate) listed: String,
}

/// One media type of a body.
pub(crate) struct Media {
    /// Lower case, without parameters: `application/json`, `application/*`, `*/*`.
    pub(crate) range: String,
    pub(crate) schema: Option<Schema>,
    /// For `application/x-www-form-urlencoded` and `multipart/form-data`: the shape of
    /// each property, to read the form's text values (or parts) by.
    pub(crate) form: Option<HashMap<String, Shape>>,
}

/// The media type of HTML forms, whose body is checked like a query string.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// The media type of forms with files (RFC 7578): one part per property.
pub(crate) const MULTIPART: &str = "multipart/form-data";

/// An operation's documented responses.
#[derive(Default)]
pub(crate) struct Responses {
    /// `200`, `2XX` or `default` → its media types and headers.
    pub(crate) by_code: Vec<(String, Documented)>,
}

/// One documented response.
pub(crate) struct Documented {
    pub(crate) media: Vec<Media>,
    /// Its `headers`, each read like a `simple`-style header parameter.
    pub(crate) headers: Vec<Param>,
}

impl Compiled {
    /// The path entry for `path`, preferring `matched` (axum's route template) when the
    /// spec has it, and the template with the most literal segments when several match.
    pub(crate) fn find(&self, matched: Option<&str>, path: &str) -> Option<usize> {
        if let Some(i) = matched.and_then(|m| self.by_template.get(m)) {
            return Some(*i);
        }
        let mut best: Option<usize> = None;
        for (i, entry) in self.paths.iter().enumerate() {
            if entry.matches(path) && best.is_none_or(|b| self.paths[b].literals < entry.literals) {
                best = Some(i);
            }
        }
        best
    }
}

impl PathEntry {
    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        for seg in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            match seg {
                Segment::Literal(l) => {
                    if l != part {
                        return false;
                    }
                }
                Segment::Param { prefix, suffix, .. } => {
                    if part.len() <= prefix.len() + suffix.len()
                        || !part.starts_with(prefix.as_str())
                        || !part.ends_with(suffix.as_str())
                    {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// The raw (still percent-encoded) value of each path parameter in `path`.
    pub(crate) fn captures<'p>(&self, path: &'p str) -> Vec<(&str, &'p str)> {
        let mut out = Vec::new();
        for (seg, part) in self.segments.iter().zip(path.split('/')) {
            if let Segment::Param {
                prefix,
                name,
                suffix,
            } = seg
            {
                let end = part.len().saturating_sub(suffix.len());
                out.push((name.as_str(), part.get(prefix.len()..end).unwrap_or("")));
            }
        }
        out
    }
}

fn parse_template(template: &str) -> Result<(Vec<Segment>, usize), String> {
    let mut segments = Vec::new();
    let mut literals = 0;
    for part in template.split('/') {
        match (part.find('{'), part.find('}')) {
            (Some(open), Some(close)) if open < close => {
                let rest = &part[close + 1..];
                if rest.contains('{') {
                    return Err(format!(
                        "path template {template:?}: one parameter per segment is supported"
                    ));
                }
                segments.push(Segment::Param {
                    prefix: part[..open].to_owned(),
                    name: part[open + 1..close].to_owned(),
                    suffix: rest.to_owned(),
                });
            }
            (None, None) => {
                literals += 1;
                segments.push(Segment::Literal(part.to_owned()));
            }
            _ => return Err(format!("path template {template:?}: unbalanced braces")),
        }
    }
    Ok((segments, literals))
}

/// OpenAPI: every template expression of a path is a path parameter of each of its
/// operations, and every path parameter names one. A spec that breaks this would leave a
/// segment unchecked, or ask for a value no request can carry.
fn check_path_params(
    segments: &[Segment],
    template: &str,
    params: &[(RawParam, String)],
    op_at: &str,
) -> Result<(), String> {
    let in_template = |name: &str| {
        segments
            .iter()
            .any(|s| matches!(s, Segment::Param { name: n, .. } if n == name))
    };
    for (p, p_at) in params {
        if p.location == In::Path && !in_template(&p.name) {
            return Err(format!(
                "{p_at}: path parameter {:?} is not in the path template {template:?}",
                p.name
            ));
        }
    }
    for s in segments {
        if let Segment::Param { name, .. } = s
            && !params
                .iter()
                .any(|(p, _)| p.location == In::Path && p.name == *name)
        {
            return Err(format!(
                "{op_at}: the path template {template:?} has {{{name}}}, and no path \
                 parameter {name:?} is declared for it (in the operation's or the path's \
                 parameters)"
            ));
        }
    }
    Ok(())
}

const METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

/// The path of the spec's first `servers` URL (its variables at their defaults), without
/// a trailing `/`: `/api/v1` for `https://api.example.com/api/v1/` or `/api/v1`. The
/// spec's path templates are relative to it ("the path is appended to the URL from the
/// Server Object"), so the service's routes are under it; `None` for `/`, for no
/// `servers`, and for a URL relative to the document's own location. Like Connexion, the
/// first entry decides.
pub(crate) fn server_base(root: &Value) -> Option<String> {
    let server = root.get("servers")?.as_array()?.first()?;
    let mut url = server.get("url")?.as_str()?.to_owned();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (name, var) in vars {
            if let Some(default) = var.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{name}}}"), default);
            }
        }
    }
    let after_authority = |rest: &str| {
        rest.find('/')
            .map_or(String::new(), |i| rest[i..].to_owned())
    };
    let path = if let Some(i) = url.find("://") {
        after_authority(&url[i + 3..])
    } else if let Some(rest) = url.strip_prefix("//") {
        after_authority(rest)
    } else {
        url
    };
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    (path.starts_with('/') && !path.contains('{')).then(|| path.to_owned())
}

/// Whether a media type (lower case, no parameters) is JSON.
pub(crate) fn is_json(range: &str) -> bool {
    range == "application/json" || range.ends_with("+json")
}

/// OpenAPI's `format: byte`: base64 (RFC 4648, with padding), as openapi-core checks it.
fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

struct Compiler<'d> {
    doc: &'d Document,
    root: &'d Value,
    request: Value,
    registry: Registry<'static>,
    errors: Vec<Diagnostic>,
    /// The first `servers` entry's path (`/api/v1`), which every path template is under.
    base: String,
}

impl<'d> Compiler<'d> {
    fn new(doc: &'d Document) -> Result<Self, SpecError> {
        let root = doc.as_value();
        let request = translate(root, doc.version(), View::Request);
        let response = translate(root, doc.version(), View::Response);
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(REQUEST_BASE, request.clone())
            .and_then(|b| b.add(RESPONSE_BASE, response))
            .and_then(|b| b.prepare())
            .map_err(|e| doc.error("", format!("the spec's schemas cannot be indexed: {e}")))?;
        Ok(Self {
            doc,
            root,
            request,
            registry,
            errors: Vec::new(),
            base: server_base(root).unwrap_or_default(),
        })
    }

    fn compile(mut self) -> Result<Compiled, SpecError> {
        self.check_component_schemas();
        let mut paths = Vec::new();
        let mut by_template = foldhash::HashMap::default();
        if let Some(Value::Object(ps)) = self.root.get("paths") {
            for (template, item) in ps {
                let at = format!("/paths/{}", escape(template));
                match self.path(template, item, &at) {
                    Ok(entry) => {
                        by_template.insert(entry.route.to_string(), paths.len());
                        paths.push(entry);
                    }
                    Err(message) => {
                        // A message that starts with the pointer of what is wrong inside
                        // the path item is reported at that pointer's line.
                        let (at, message) = match message.split_once(": ") {
                            Some((inner, rest))
                                if inner.starts_with(&at) && self.root.pointer(inner).is_some() =>
                            {
                                (inner.to_owned(), rest.to_owned())
                            }
                            _ => (at, message),
                        };
                        let d = self.doc.diagnostic(&at, message);
                        self.errors.push(d);
                    }
                }
            }
        }
        if !self.errors.is_empty() {
            return Err(SpecError::Invalid(self.errors));
        }
        Ok(Compiled { paths, by_template })
    }

    /// Every `components.schemas` entry is valid JSON Schema 2020-12 (after translation),
    /// used or not.
    fn check_component_schemas(&mut self) {
        let Some(Value::Object(schemas)) = self.request.pointer("/components/schemas") else {
            return;
        };
        let schemas = schemas.clone();
        for (name, s) in &schemas {
            let at = format!("/components/schemas/{}", escape(name));
            self.meta_check(&at, s);
        }
    }

    fn meta_check(&mut self, at: &str, schema: &Value) {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            let inner = e.instance_path().as_str().to_owned();
            let d = self.doc.diagnostic(
                &format!("{at}{inner}"),
                format!(
                    "not a valid schema: {}",
                    super::violation::truncate(&e.to_string())
                ),
            );
            self.errors.push(d);
        }
    }

    /// A validator for the schema at `at` (a pointer into the document) in `base`'s view.
    fn schema(&mut self, at: &str, base: &str) -> Option<Schema> {
        // Component schemas were checked once already; inline ones (request or response)
        // are checked here.
        if !at.starts_with("/components/schemas/")
            && let Some(s) = self.request.pointer(at).cloned()
        {
            self.meta_check(at, &s);
        }
        let uri = format!("{base}#{}", utf8_percent_encode(at, FRAGMENT));
        let wrapper = serde_json::json!({ "$ref": uri });
        match jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .with_format("byte", is_base64)
            .with_keyword(INTEGER_LITERAL, IntegerLiteral::factory)
            .build(&wrapper)
        {
            Ok(validator) => Some(Schema { validator }),
            Err(e) => {
                // The error's path is where it is in the document the `$ref` reached (under
                // `at`, or in a component `at` refers to), or one relative to `at`. A
                // relative one starts with a schema keyword, never a document's root key.
                let inner = e.instance_path().as_str();
                let pointer = if !inner.is_empty() && self.request.pointer(inner).is_some() {
                    inner.to_owned()
                } else {
                    format!("{at}{inner}")
                };
                let d = self
                    .doc
                    .diagnostic(&pointer, format!("the schema does not compile: {e}"));
                self.errors.push(d);
                None
            }
        }
    }

    /// Follows `$ref`s (local, after bundling) from the value at `at`: the value and the
    /// pointer where it really is.
    fn deref(&self, at: &str) -> Result<(String, &'d Value), String> {
        let mut at = at.to_owned();
        for _ in 0..32 {
            let v = self
                .root
                .pointer(&at)
                .ok_or_else(|| format!("nothing at {at:?}"))?;
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let p = r
                        .strip_prefix('#')
                        .ok_or_else(|| format!("$ref {r:?} is not local"))?;
                    at = percent_encoding::percent_decode_str(p)
                        .decode_utf8_lossy()
                        .into_owned();
                }
                None => return Ok((at, v)),
            }
        }
        Err(format!("$ref chain from {at:?} is too long"))
    }

    fn path(&mut self, template: &str, item: &Value, at: &str) -> Result<PathEntry, String> {
        let route = format!("{}{template}", self.base);
        let (segments, literals) = parse_template(&route)?;
        // The template's own expressions, not any left in the servers URL.
        let (own_segments, _) = parse_template(template)?;
        let (item_at, item) = if item.get("$ref").is_some() {
            self.deref(at)?
        } else {
            (at.to_owned(), item)
        };
        let shared = self.params(item, &item_at)?;
        let mut operations = Vec::new();
        for (key, method) in &METHODS {
            let Some(op) = item.get(*key) else {
                continue;
            };
            let op_at = format!("{item_at}/{key}");
            let mut params = self.params(op, &op_at)?;
            for p in &shared {
                if !params
                    .iter()
                    .any(|q| q.0.name == p.0.name && q.0.location == p.0.location)
                {
                    params.push(p.clone());
                }
            }
            check_path_params(&own_segments, template, &params, &op_at)?;
            let mut compiled = Vec::new();
            for (raw, p_at) in params {
                compiled.push(self.param(raw, &p_at)?);
            }
            let body = match op.get("requestBody") {
                Some(_) => Some(self.body(&format!("{op_at}/requestBody"))?),
                None => None,
            };
            let security = self.security(op, &op_at)?;
            let responses = self.responses(op, &op_at)?;
            let reads_cookies = compiled.iter().any(|p| p.location == In::Cookie)
                || security.iter().flatten().flatten().any(|s| {
                    matches!(
                        &s.kind,
                        SchemeKind::ApiKey {
                            location: In::Cookie,
                            ..
                        }
                    )
                });
            operations.push(Operation {
                method: method.clone(),
                params: compiled,
                body,
                security,
                responses,
                reads_cookies,
            });
        }
        // A GET is answered for HEAD too (as the router does), so HEAD is allowed.
        let mut allowed: Vec<&str> = operations.iter().map(|o| o.method.as_str()).collect();
        if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
            let at = allowed
                .iter()
                .position(|m| *m == "GET")
                .map_or(0, |i| i + 1);
            allowed.insert(at, "HEAD");
        }
        let allow = allowed.join(", ");
        Ok(PathEntry {
            template: template.to_owned(),
            route: Arc::from(route.as_str()),
            segments,
            literals,
            operations,
            allow: HeaderValue::from_str(&allow).map_err(|e| e.to_string())?,
        })
    }

    /// The `parameters` of a path item or operation: (parameter, its pointer).
    fn params(&self, holder: &Value, at: &str) -> Result<Vec<(RawParam, String)>, String> {
        let mut out = Vec::new();
        let Some(Value::Array(list)) = holder.get("parameters") else {
            return Ok(out);
        };
        for i in 0..list.len() {
            let (p_at, p) = self.deref(&format!("{at}/parameters/{i}"))?;
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => In::Path,
                Some("query") => In::Query,
                Some("header") => In::Header,
                Some("cookie") => In::Cookie,
                other => return Err(format!("{p_at}: unknown parameter location {other:?}")),
            };
            let name = if location == In::Header {
                name.to_ascii_lowercase()
            } else {
                name.to_owned()
            };
            // "If `in` is "header" and the `name` field is "Accept", "Content-Type" or
            // "Authorization", the parameter definition SHALL be ignored" (OpenAPI 3.0.3
            // and 3.1): content negotiation and security govern those.
            if location == In::Header
                && matches!(name.as_str(), "accept" | "content-type" | "authorization")
            {
                continue;
            }
            out.push((RawParam { name, location }, p_at));
        }
        Ok(out)
    }

    fn param(&mut self, raw: RawParam, at: &str) -> Result<Param, String> {
        let p = self.root.pointer(at).ok_or("parameter vanished")?;
        let style = match p.get("style").and_then(Value::as_str) {
            Some("form") => Style::Form,
            Some("simple") => Style::Simple,
            Some("spaceDelimited") => Style::SpaceDelimited,
            Some("pipeDelimited") => Style::PipeDelimited,
            Some("deepObject") => Style::DeepObject,
            Some("label") => Style::Label,
            Some("matrix") => Style::Matrix,
            Some(other) => return Err(format!("{at}: unknown style {other:?}")),
            None => match raw.location {
                In::Query | In::Cookie => Style::Form,
                In::Path | In::Header => Style::Simple,
            },
        };
        let explode = p
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == Style::Form);
        let required =
            p.get("required").and_then(Value::as_bool).unwrap_or(false) || raw.location == In::Path;
        let allow_empty = p
            .get("allowEmptyValue")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (schema_at, json) = if p.get("schema").is_some() {
            (Some(format!("{at}/schema")), false)
        } else if let Some(Value::Object(content)) = p.get("content") {
            content
                .iter()
                .next()
                .map(|(mt, _)| (Some(format!("{at}/content/{}/schema", escape(mt))), true))
                .unwrap_or((None, true))
        } else {
            (None, false)
        };
        let schema_at = schema_at.filter(|s| self.root.pointer(s).is_some());
        let shape = match &schema_at {
            Some(s) => self.shape(s),
            None => Shape::Scalar(Types::default()),
        };
        let schema = schema_at.and_then(|s| self.schema(&s, REQUEST_BASE));
        let prefix = raw.location.as_str();
        let secret = self.is_api_key(&raw);
        Ok(Param {
            secret,
            location_name: format!("{prefix}.{}", raw.name),
            name: raw.name,
            location: raw.location,
            required,
            style,
            explode,
            shape,
            json,
            allow_empty,
            schema,
        })
    }

    /// The shape of the (request view of the) schema at `at`.
    fn shape(&self, at: &str) -> Shape {
        let resolve = |v: &Value| -> Value {
            let mut v = v.clone();
            for _ in 0..32 {
                let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                    break;
                };
                let target = r.strip_prefix('#').and_then(|p| {
                    self.request
                        .pointer(&percent_encoding::percent_decode_str(p).decode_utf8_lossy())
                });
                match target {
                    Some(t) => v = t.clone(),
                    None => break,
                }
            }
            v
        };
        let Some(s) = self.request.pointer(at) else {
            return Shape::Scalar(Types::default());
        };
        let s = resolve(s);
        let mut t = Types::of(&s);
        if t == Types::default() {
            // No `type` of its own: the union of its `anyOf`/`oneOf`/`allOf` branches'.
            for key in ["anyOf", "oneOf", "allOf"] {
                for branch in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                    t.0 |= Types::of(&resolve(branch)).0;
                }
            }
        }
        if t.has(Types::ARRAY) {
            let items = s.get("items").map(&resolve).unwrap_or(Value::Null);
            Shape::Array(Types::of(&items))
        } else if t.has(Types::OBJECT) {
            let props = s
                .get("properties")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), Types::of(&resolve(v))))
                        .collect()
                })
                .unwrap_or_default();
            Shape::Object(props)
        } else {
            Shape::Scalar(t)
        }
    }

    /// The shape of each property of the (object) schema at `at`.
    fn form_shape(&self, at: &str) -> HashMap<String, Shape> {
        let mut out = HashMap::new();
        let mut at = at.to_owned();
        for _ in 0..32 {
            let Some(r) = self
                .request
                .pointer(&at)
                .and_then(|s| s.get("$ref"))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
            else {
                break;
            };
            at = percent_encoding::percent_decode_str(r)
                .decode_utf8_lossy()
                .into_owned();
        }
        if let Some(Value::Object(props)) = self.request.pointer(&format!("{at}/properties")) {
            for name in props.keys() {
                let p = format!("{at}/properties/{}", escape(name));
                out.insert(name.clone(), self.shape(&p));
            }
        }
        out
    }

    fn body(&mut self, at: &str) -> Result<RequestBody, String> {
        let (at, b) = self.deref(at)?;
        let required = b.get("required").and_then(Value::as_bool).unwrap_or(false);
        let media = self.media(b, &at, REQUEST_BASE);
        let listed = media
            .iter()
            .map(|m| m.range.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(RequestBody {
            required,
            media,
            listed,
        })
    }

    fn media(&mut self, holder: &Value, at: &str, base: &str) -> Vec<Media> {
        let mut out = Vec::new();
        let Some(Value::Object(content)) = holder.get("content") else {
            return out;
        };
        for (mt, m) in content {
            let range = mt
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let schema_at = format!("{at}/content/{}/schema", escape(mt));
            let schema = if m.get("schema").is_some() {
                self.schema(&schema_at, base)
            } else {
                None
            };
            let form = ((range == FORM || range == MULTIPART) && schema.is_some())
                .then(|| self.form_shape(&schema_at));
            out.push(Media {
                range,
                schema,
                form,
            });
        }
        out
    }

    fn responses(&mut self, op: &Value, at: &str) -> Result<Responses, String> {
        let mut r = Responses::default();
        let Some(Value::Object(codes)) = op.get("responses") else {
            return Ok(r);
        };
        for code in codes.keys() {
            let (res_at, res) = self.deref(&format!("{at}/responses/{}", escape(code)))?;
            let media = self.media(res, &res_at, RESPONSE_BASE);
            let mut headers = Vec::new();
            if let Some(Value::Object(hs)) = res.get("headers") {
                for name in hs.keys() {
                    // "If a response header is defined with the name `Content-Type`, it
                    // SHALL be ignored."
                    if name.eq_ignore_ascii_case("content-type") {
                        continue;
                    }
                    let (h_at, _) = self.deref(&format!("{res_at}/headers/{}", escape(name)))?;
                    let raw = RawParam {
                        name: name.to_ascii_lowercase(),
                        location: In::Header,
                    };
                    headers.push(self.param(raw, &h_at)?);
                }
            }
            r.by_code
                .push((code.to_ascii_uppercase(), Documented { media, headers }));
        }
        Ok(r)
    }

    fn security(&mut self, op: &Value, at: &str) -> Result<Option<Vec<Vec<Arc<Scheme>>>>, String> {
        let (req, req_at) = match op.get("security") {
            Some(s) => (s, format!("{at}/security")),
            None => match self.root.get("security") {
                Some(s) => (s, "/security".to_owned()),
                None => return Ok(None),
            },
        };
        let Value::Array(alternatives) = req else {
            return Err(format!("{req_at}: expected a list of requirements"));
        };
        if alternatives.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for alt in alternatives {
            let mut all = Vec::new();
            if let Value::Object(names) = alt {
                for name in names.keys() {
                    all.push(self.scheme(name, &req_at)?);
                }
            }
            out.push(all);
        }
        Ok(Some(out))
    }

    /// Whether any apiKey security scheme of the spec reads `p` (whether or not this
    /// operation asks for it: a credential is a credential).
    fn is_api_key(&self, p: &RawParam) -> bool {
        let Some(Value::Object(schemes)) = self.root.pointer("/components/securitySchemes") else {
            return false;
        };
        schemes.keys().any(|name| {
            self.scheme(name, "").is_ok_and(|s| {
                matches!(&s.kind, SchemeKind::ApiKey { location, name }
                    if *location == p.location && *name == p.name)
            })
        })
    }

    fn scheme(&self, name: &str, at: &str) -> Result<Arc<Scheme>, String> {
        let (_, s) = self
            .deref(&format!("/components/securitySchemes/{}", escape(name)))
            .map_err(|_| {
                format!("{at}: security scheme {name:?} is not in components.securitySchemes")
            })?;
        let kind = match s.get("type").and_then(Value::as_str) {
            Some("http") => match s
                .get("scheme")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("basic") => SchemeKind::Basic,
                _ => SchemeKind::Bearer,
            },
            Some("apiKey") => {
                let key = s.get("name").and_then(Value::as_str).unwrap_or_default();
                match s.get("in").and_then(Value::as_str) {
                    Some("header") => SchemeKind::ApiKey {
                        location: In::Header,
                        name: key.to_ascii_lowercase(),
                    },
                    Some("query") => SchemeKind::ApiKey {
                        location: In::Query,
                        name: key.to_owned(),
                    },
                    Some("cookie") => SchemeKind::ApiKey {
                        location: In::Cookie,
                        name: key.to_owned(),
                    },
                    other => {
                        return Err(format!(
                            "security scheme {name:?}: unknown apiKey location {other:?}"
                        ));
                    }
                }
            }
            // OAuth 2 and OpenID Connect send a bearer token.
            _ => SchemeKind::Bearer,
        };
        Ok(Arc::new(Scheme {
            name: name.to_owned(),
            kind,
        }))
    }
}

#[derive(Clone)]
struct RawParam {
    name: String,
    location: In,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document::from_text(text, "api.yaml").unwrap()
    }

    #[test]
    fn templates_match_most_specific_first() {
        let d = doc(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get: {responses: {'200': {description: ok}}}\n  /a/me:\n    get: {responses: {'200': {description: ok}}}\n  /f/{name}.json:\n    parameters: [{name: name, in: path, required: true, schema: {type: string}}]\n    get: {responses: {'200': {description: ok}}}\n",
        );
        let v = Validator::compile(&d, ValidationOptions::default()).unwrap();
        let c = &v.inner.compiled;
        assert_eq!(c.paths[c.find(None, "/a/me").unwrap()].template, "/a/me");
        assert_eq!(c.paths[c.find(None, "/a/7").unwrap()].template, "/a/{id}");
        assert!(c.find(None, "/a/7/x").is_none());
        assert!(c.find(None, "/a").is_none());
        let f = &c.paths[c.find(None, "/f/x.json").unwrap()];
        assert_eq!(f.captures("/f/x.json"), vec![("name", "x")]);
    }

    #[test]
    fn paths_are_under_the_first_servers_path() {
        let d = doc(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nservers:\n  - url: 'https://api.example.com/{v}/'\n    variables: {v: {default: v1}}\n  - url: /other\npaths:\n  /a/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get: {responses: {'200': {description: ok}}}\n",
        );
        let v = Validator::compile(&d, ValidationOptions::default()).unwrap();
        let c = &v.inner.compiled;
        let i = c.find(Some("/v1/a/{id}"), "/v1/a/7").unwrap();
        assert_eq!(c.paths[i].template, "/a/{id}");
        assert_eq!(&*c.paths[i].route, "/v1/a/{id}");
        assert_eq!(c.find(None, "/v1/a/7"), Some(i));
        assert_eq!(c.paths[i].captures("/v1/a/7"), vec![("id", "7")]);
        assert!(c.find(None, "/a/7").is_none(), "outside the server's path");

        for (servers, base) in [
            ("[{url: /api/}]", Some("/api")),
            ("[{url: 'http://h:8080/x/y?q=1'}]", Some("/x/y")),
            ("[{url: '//h/x'}]", Some("/x")),
            ("[{url: 'https://h'}]", None),
            ("[{url: /}]", None),
            ("[{url: 'v1'}]", None),
            ("[{url: '/{undeclared}'}]", None),
            ("[]", None),
        ] {
            let root = root_with(&format!("servers: {servers}"));
            assert_eq!(server_base(&root).as_deref(), base, "{servers}");
        }
    }

    /// A minimal document's root with `text` among its top-level fields.
    fn root_with(text: &str) -> Value {
        doc(&format!(
            "openapi: 3.1.0\ninfo: {{title: t, version: '1'}}\npaths: {{}}\n{text}\n"
        ))
        .as_value()
        .clone()
    }

    #[test]
    fn formats_and_integer_widths_are_checked() {
        let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {$ref: '#/components/schemas/F'}\n      responses: {'200': {description: ok}}\ncomponents:\n  schemas:\n    F:\n      type: object\n      properties:\n        date: {type: string, format: date}\n        date-time: {type: string, format: date-time}\n        uuid: {type: string, format: uuid}\n        email: {type: string, format: email}\n        uri: {type: string, format: uri}\n        ipv4: {type: string, format: ipv4}\n        ipv6: {type: string, format: ipv6}\n        byte: {type: string, format: byte}\n        int32: {type: integer, format: int32}\n";
        let v = Validator::compile(&doc(text), ValidationOptions::default()).unwrap();
        let op = &v.inner.compiled.paths[0].operations[0];
        let schema = &op.body.as_ref().unwrap().media[0]
            .schema
            .as_ref()
            .unwrap()
            .validator;
        let good = serde_json::json!({"date": "2024-02-29", "date-time": "2024-02-29T10:00:00Z",
            "uuid": "0b9f3b0e-59b2-4a39-8e8a-6e2b3b1f9a11", "email": "a@b.example",
            "uri": "https://example.com/x", "ipv4": "10.0.0.1", "ipv6": "::1", "byte": "aGk=",
            "int32": 2147483647});
        assert!(schema.is_valid(&good));
        for (k, bad) in [
            ("date", "2024-02-30"),
            ("date-time", "2024-02-29"),
            ("uuid", "x"),
            ("email", "nobody"),
            ("uri", "not a uri"),
            ("ipv4", "10.0.0.256"),
            ("ipv6", "::g"),
            ("byte", "a"),
        ] {
            let mut v = good.clone();
            v[k] = serde_json::json!(bad);
            assert!(!schema.is_valid(&v), "{k}: {bad}");
        }
        let mut v = good.clone();
        v["int32"] = serde_json::json!(2147483648_i64);
        assert!(!schema.is_valid(&v), "int32 overflow");
    }

    #[test]
    fn a_schema_the_validator_rejects_names_file_and_line() {
        let text = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    Bad:\n      type: object\n      properties:\n        n:\n          type: integer\n          minimum: lots\n";
        let e = Validator::compile(&doc(text), ValidationOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.yaml:11:"), "{e}");
        assert!(
            e.contains("/components/schemas/Bad/properties/n/minimum"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_security_scheme_is_a_startup_error() {
        let text = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nsecurity: [{nope: []}]\npaths:\n  /a:\n    get: {responses: {'200': {description: ok}}}\n";
        let e = Validator::compile(&doc(text), ValidationOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nope\" is not in components.securitySchemes"),
            "{e}"
        );
    }
}
