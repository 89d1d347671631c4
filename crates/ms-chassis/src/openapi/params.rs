//! Parameters: the text of path segments, query pairs, headers and cookies read as typed
//! JSON values by their `style`, `explode` and schema, then checked by their compiled
//! schema.
//!
//! HTTP carries every parameter as text, so `?limit=10` must become the integer 10 before
//! `minimum` can mean anything: the schema's `type` (resolved once at startup into a
//! [`Shape`]) says how to read it, and text that does not read as that type stays a string,
//! for the schema to report as the wrong type with what was found. Bad percent-encoding
//! (invalid UTF-8) is itself a violation of the parameter it belongs to.

use std::borrow::Cow;

use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};
use smallvec::SmallVec;

use super::compiled::{In, Operation, Param, PathEntry, Shape, Style, Types};
use super::security::SchemeKind;
use super::violation::{Kind, Violations, truncate};

/// The query pairs (decoded) and cookies of a request, parsed once for the parameters and
/// the security check. A request's few pairs stay on the stack.
pub(crate) struct Inputs<'r> {
    query: SmallVec<[(Cow<'r, str>, Cow<'r, str>); 8]>,
    cookies: SmallVec<[(&'r str, &'r str); 4]>,
    /// Query parameters already reported as badly encoded: present, so not "missing".
    undecodable: Vec<String>,
}

/// Whether `s` has a `+` or a `%`, the only bytes that form decoding changes.
fn has_escapes(s: &str) -> bool {
    s.bytes().any(|b| b == b'+' || b == b'%')
}

/// `application/x-www-form-urlencoded` decoding of one query component: `+` is a space.
/// `None` when the escapes are not UTF-8.
pub(crate) fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !has_escapes(s) {
        return Some(Cow::Borrowed(s));
    }
    let spaced: Cow<'_, str> = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    let decoded = percent_decode_str(&spaced).decode_utf8().ok()?;
    Some(Cow::Owned(decoded.into_owned()))
}

/// The `name=value` pairs of a query or form body, in one pass over its bytes: a pair
/// without `=` has an empty value, and empty pairs are skipped. (`&` and `=` are ASCII, so
/// every cut is at a char boundary; `str::split` and `split_once` cost a searcher each.)
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = query;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut eq = None;
            let mut end = rest.len();
            for (i, b) in rest.bytes().enumerate() {
                if b == b'&' {
                    end = i;
                    break;
                }
                if b == b'=' && eq.is_none() {
                    eq = Some(i);
                }
            }
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            if !pair.is_empty() {
                return Some(match eq {
                    Some(e) => (&pair[..e], &pair[e + 1..]),
                    None => (pair, ""),
                });
            }
        }
    })
}

impl<'r> Inputs<'r> {
    /// Splits and decodes `query`, and the `Cookie` headers of `cookies` (`None` when the
    /// operation reads no cookie, so that the header is not looked up).
    pub(crate) fn parse(
        query: Option<&'r str>,
        cookies: Option<&'r HeaderMap>,
        v: &mut Violations,
    ) -> Self {
        let query = query.unwrap_or("");
        // Most queries have nothing to decode: one scan says so for all their pairs.
        let plain = !has_escapes(query);
        let mut pairs = SmallVec::new();
        let mut undecodable = Vec::new();
        for (k, val) in query_pairs(query) {
            if plain {
                pairs.push((Cow::Borrowed(k), Cow::Borrowed(val)));
                continue;
            }
            match (form_decode(k), form_decode(val)) {
                (Some(k), Some(val)) => pairs.push((k, val)),
                (decoded, _) => {
                    let name = decoded.map_or_else(
                        || {
                            String::from_utf8_lossy(&percent_decode_str(k).collect::<Vec<u8>>())
                                .into_owned()
                        },
                        Cow::into_owned,
                    );
                    let location = format!("query.{}", truncate(&name));
                    undecodable.push(name);
                    v.add(
                        Kind::Query,
                        location,
                        "encoding",
                        "is not valid percent-encoded UTF-8",
                        Some("percent-encoded UTF-8".into()),
                        None,
                    );
                }
            }
        }
        let mut jar = SmallVec::new();
        for h in cookies
            .into_iter()
            .flat_map(|h| h.get_all(axum::http::header::COOKIE))
        {
            let Ok(h) = h.to_str() else {
                continue;
            };
            for c in h.split(';') {
                if let Some((k, val)) = c.trim().split_once('=') {
                    jar.push((k.trim(), val.trim().trim_matches('"')));
                }
            }
        }
        Self {
            query: pairs,
            cookies: jar,
            undecodable,
        }
    }

    /// The first value of query parameter `name`.
    pub(crate) fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    pub(crate) fn cookie_value(&self, name: &str) -> Option<&'r str> {
        self.cookies
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// Reads `text` as the first of `types` it is: integer, number, boolean, else a string.
pub(crate) fn coerce(text: &str, types: Types) -> Value {
    if types.has(Types::INTEGER)
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Number(i.into());
    }
    if types.has(Types::NUMBER) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    if types.has(Types::BOOLEAN) {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    // No style writes null (`?n=null` is the text "null", as openapi-core reads it): an
    // absent parameter is how a query says "no value".
    Value::String(text.to_owned())
}

/// `text` read as `shape`; an object's members alternate with their values (`k1,v1,k2,v2`).
fn split_value(text: &str, shape: &Shape, sep: char) -> Read {
    Read::Value(match shape {
        Shape::Scalar(t) => coerce(text, *t),
        Shape::Array(t) => Value::Array(
            text.split(sep)
                .filter(|s| !s.is_empty() || !text.is_empty())
                .map(|s| coerce(s, *t))
                .collect(),
        ),
        Shape::Object(props) => {
            let mut m = Map::new();
            let mut it = text.split(sep);
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                let t = props.get(k).copied().unwrap_or_default();
                if m.insert(k.to_owned(), coerce(v, t)).is_some() {
                    let n = text.split(sep).step_by(2).filter(|x| *x == k).count();
                    return Read::Repeated(k.to_owned(), n);
                }
            }
            Value::Object(m)
        }
    })
}

/// An exploded object: `k1=v1,k2=v2` in `simple` style, `.k1=v1.k2=v2` in `label` style
/// (after the first `.`) and `;k1=v1;k2=v2` in `matrix` style, split at `sep`.
fn exploded_object(
    text: &str,
    props: &std::collections::HashMap<String, Types>,
    sep: char,
) -> Read {
    let mut m = Map::new();
    for part in text.split(sep).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let t = props.get(k).copied().unwrap_or_default();
        if m.insert(k.to_owned(), coerce(v, t)).is_some() {
            let n = text
                .split(sep)
                .filter(|p| p.split_once('=').map_or(*p, |(name, _)| name) == k)
                .count();
            return Read::Repeated(k.to_owned(), n);
        }
    }
    Read::Value(Value::Object(m))
}

/// Checks every parameter of `op` (and, with `strict`, that the query has no others).
pub(crate) fn check(
    op: &Operation,
    entry: &PathEntry,
    path: &str,
    inputs: &Inputs<'_>,
    headers: &HeaderMap,
    strict: bool,
    v: &mut Violations,
) {
    let captures = if op.params.iter().any(|p| p.location == In::Path) {
        entry.captures(path)
    } else {
        Vec::new()
    };
    for p in &op.params {
        if p.location == In::Query && inputs.undecodable.contains(&p.name) {
            continue;
        }
        // An exploded array's `?tags=` is one empty item, which its items' schema judges
        // (as openapi-core reads it).
        if refuses_empty(p) && inputs.query_value(&p.name) == Some("") {
            v.add(
                Kind::Query,
                p.location_name.clone(),
                "allowEmptyValue",
                "is empty, and the parameter does not allow an empty value",
                Some("a value (or allowEmptyValue: true)".into()),
                None,
            );
            continue;
        }
        let value = match p.location {
            In::Path => path_value(p, &captures, v),
            In::Query => query_value(p, inputs, v),
            In::Header => header_value(p, headers, v),
            In::Cookie => cookie_value(p, inputs, v),
        };
        judge(p, value, v);
    }
    if strict {
        for (name, _) in &inputs.query {
            if !known_query(op, name) {
                v.add(
                    Kind::Query,
                    format!("query.{}", truncate(name)),
                    "unknown",
                    "is not a parameter of this operation",
                    None,
                    None,
                );
            }
        }
    }
}

/// Whether `?name=` is a violation of `p`: a query parameter without `allowEmptyValue`.
fn refuses_empty(p: &Param) -> bool {
    let exploded_array = p.explode && matches!(p.shape, Shape::Array(_));
    p.location == In::Query && !(p.allow_empty || p.json || exploded_array)
}

/// Checks a response's documented `headers` (header parameters, `simple` style).
pub(crate) fn check_headers(documented: &[Param], headers: &HeaderMap, v: &mut Violations) {
    for p in documented {
        judge(p, header_value(p, headers, v), v);
    }
}

/// Checks the value read for `p` (`None`: absent) against its schema; an API key's
/// violations never show the value.
fn judge(p: &Param, value: Option<Read>, v: &mut Violations) {
    let start = v.list.len();
    judge_value(p, value, v);
    if p.secret {
        v.conceal_since(start);
    }
}

fn judge_value(p: &Param, value: Option<Read>, v: &mut Violations) {
    let Some(value) = value else {
        if p.required {
            v.add(
                kind(p.location),
                p.location_name.clone(),
                "required",
                "is required",
                Some("a value".into()),
                None,
            );
        }
        return;
    };
    let value = match value {
        Read::Value(val) => val,
        Read::Json(text) => match serde_json::from_str::<Value>(&text) {
            Ok(val) => val,
            Err(e) => {
                v.add(
                    kind(p.location),
                    p.location_name.clone(),
                    "json",
                    format!("is not valid JSON: {e}"),
                    Some("JSON".into()),
                    Some(&text),
                );
                return;
            }
        },
        Read::Repeated(member, n) => {
            let at = format!("{}/{}", p.location_name, truncate(&member));
            return repeated(v, kind(p.location), at, n);
        }
        Read::Invalid => return,
    };
    if let Some(s) = &p.schema
        && !s.validator.is_valid(&value)
    {
        v.schema_errors(kind(p.location), &p.location_name, &s.validator, &value);
    }
}

enum Read {
    Value(Value),
    /// JSON text of a `content` parameter, to parse.
    Json(String),
    /// An object's member given `n` times.
    Repeated(String, usize),
    /// Already reported.
    Invalid,
}

fn kind(location: In) -> Kind {
    match location {
        In::Path => Kind::Path,
        In::Query => Kind::Query,
        In::Header => Kind::Header,
        In::Cookie => Kind::Cookie,
    }
}

fn scalar_or_split(p: &Param, text: &str, sep: char) -> Read {
    if p.json {
        return Read::Json(text.to_owned());
    }
    match &p.shape {
        Shape::Object(props) if p.explode => exploded_object(text, props, sep),
        shape => split_value(text, shape, sep),
    }
}

fn path_value(p: &Param, captures: &[(&str, &str)], v: &mut Violations) -> Option<Read> {
    let raw = captures.iter().find(|(n, _)| *n == p.name)?.1;
    let Ok(text) = percent_decode_str(raw).decode_utf8() else {
        v.add(
            Kind::Path,
            p.location_name.clone(),
            "encoding",
            "is not valid percent-encoded UTF-8",
            Some("percent-encoded UTF-8".into()),
            None,
        );
        return Some(Read::Invalid);
    };
    // RFC 6570's `{.x}`, `{.x*}`, `{;x}` and `{;x*}`, as the OpenAPI style tables show.
    match (p.style, &p.shape, p.explode) {
        // `;id=3;id=4;id=5`: one `name=value` per item.
        (Style::Matrix, Shape::Array(t), true) if !p.json => {
            let prefix = format!("{}=", p.name);
            let items = text
                .split(';')
                .filter_map(|part| part.strip_prefix(prefix.as_str()))
                .map(|item| coerce(item, *t))
                .collect();
            return Some(Read::Value(Value::Array(items)));
        }
        // `;R=100;G=200`: the members, each `key=value`.
        (Style::Matrix, Shape::Object(_), true) if !p.json => {
            return Some(scalar_or_split(p, &text, ';'));
        }
        _ => {}
    }
    let text = match p.style {
        Style::Label => text.strip_prefix('.').unwrap_or(&text).to_owned(),
        Style::Matrix => {
            let prefix = format!(";{}=", p.name);
            text.strip_prefix(prefix.as_str())
                .unwrap_or(&text)
                .to_owned()
        }
        _ => text.into_owned(),
    };
    // `.3.4.5` exploded, `.3,4,5` not (as `{.x*}` and `{.x}` expand).
    let sep = if p.style == Style::Label && p.explode {
        '.'
    } else {
        ','
    };
    Some(scalar_or_split(p, &text, sep))
}

/// Reads query parameter `p`. Only an exploded array may repeat (`?id=1&id=2`): any other
/// parameter, or member of an object, given twice is a violation, since which copy a
/// handler reads is its own choice, and the copy not checked must not slip through.
fn query_value(p: &Param, inputs: &Inputs<'_>, v: &mut Violations) -> Option<Read> {
    let values = || {
        inputs
            .query
            .iter()
            .filter(|(k, _)| *k == p.name)
            .map(|(_, v)| v)
    };
    let once = |v: &mut Violations| -> Option<Option<&str>> {
        let mut all = values();
        let first = all.next().map(AsRef::as_ref);
        let more = all.count();
        if more > 0 {
            repeated(v, Kind::Query, p.location_name.clone(), more + 1);
            return None;
        }
        Some(first)
    };
    if p.json {
        return match once(v) {
            Some(text) => text.map(|t| Read::Json(t.to_owned())),
            None => Some(Read::Invalid),
        };
    }
    match (&p.shape, p.style) {
        (Shape::Object(props), Style::DeepObject) => {
            let mut m = Map::new();
            for (k, val) in &inputs.query {
                if let Some(key) = k
                    .strip_prefix(p.name.as_str())
                    .and_then(|r| r.strip_prefix('['))
                    .and_then(|r| r.strip_suffix(']'))
                {
                    let t = props.get(key).copied().unwrap_or_default();
                    if m.insert(key.to_owned(), coerce(val, t)).is_some() {
                        let n = inputs.query.iter().filter(|(k2, _)| k2 == k).count();
                        return Some(Read::Repeated(key.to_owned(), n));
                    }
                }
            }
            (!m.is_empty()).then_some(Read::Value(Value::Object(m)))
        }
        (Shape::Object(props), Style::Form) if p.explode => {
            let mut m = Map::new();
            for (k, val) in &inputs.query {
                if let Some(t) = props.get(k.as_ref())
                    && m.insert(k.to_string(), coerce(val, *t)).is_some()
                {
                    let n = inputs.query.iter().filter(|(k2, _)| k2 == k).count();
                    repeated(v, Kind::Query, format!("query.{}", truncate(k)), n);
                    return Some(Read::Invalid);
                }
            }
            (!m.is_empty()).then_some(Read::Value(Value::Object(m)))
        }
        (Shape::Array(t), _) if p.explode => {
            let items: Vec<Value> = values().map(|s| coerce(s, *t)).collect();
            (!items.is_empty()).then_some(Read::Value(Value::Array(items)))
        }
        (shape, style) => {
            let Some(text) = once(v) else {
                return Some(Read::Invalid);
            };
            let sep = match style {
                Style::SpaceDelimited => ' ',
                Style::PipeDelimited => '|',
                _ => ',',
            };
            Some(split_value(text?, shape, sep))
        }
    }
}

/// Reads cookie parameter `p`; a cookie sent twice is a violation, as a repeated query
/// parameter is.
fn cookie_value(p: &Param, inputs: &Inputs<'_>, v: &mut Violations) -> Option<Read> {
    let mut all = inputs.cookies.iter().filter(|(k, _)| *k == p.name);
    let first = all.next()?.1;
    let more = all.count();
    if more > 0 {
        repeated(v, Kind::Cookie, p.location_name.clone(), more + 1);
        return Some(Read::Invalid);
    }
    Some(scalar_or_split(p, first, ','))
}

/// `location` was given `n` times where once is all there may be.
fn repeated(v: &mut Violations, kind: Kind, location: String, n: usize) {
    v.add(
        kind,
        location,
        "repeated",
        format!("is given {n} times, and only an exploded array parameter may repeat"),
        Some("one value".into()),
        None,
    );
}

fn header_value(p: &Param, headers: &HeaderMap, v: &mut Violations) -> Option<Read> {
    let mut all = headers.get_all(p.name.as_str()).iter().peekable();
    all.peek()?;
    let mut text = String::new();
    for (i, h) in all.enumerate() {
        let Ok(s) = h.to_str() else {
            v.add(
                Kind::Header,
                p.location_name.clone(),
                "encoding",
                "is not visible ASCII text",
                Some("visible ASCII".into()),
                None,
            );
            return Some(Read::Invalid);
        };
        if i > 0 {
            text.push(',');
        }
        text.push_str(s.trim());
    }
    Some(scalar_or_split(p, &text, ','))
}

/// Whether query parameter `name` belongs to `op`: a parameter, a member of an exploded
/// object or deep object parameter, or an API key.
fn known_query(op: &Operation, name: &str) -> bool {
    op.params.iter().any(|p| {
        p.location == In::Query
            && (p.name == name
                || match (&p.shape, p.style) {
                    (Shape::Object(_), Style::DeepObject) => name
                        .strip_prefix(p.name.as_str())
                        .is_some_and(|r| r.starts_with('[') && r.ends_with(']')),
                    (Shape::Object(props), Style::Form) if p.explode => props.contains_key(name),
                    _ => false,
                })
    }) || op.security.iter().flatten().flatten().any(
        |s| matches!(&s.kind, SchemeKind::ApiKey { location: In::Query, name: n } if n == name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_read_as_the_schema_type() {
        let int = Types(Types::INTEGER);
        assert_eq!(coerce("10", int), json!(10));
        assert_eq!(coerce("ten", int), json!("ten"));
        assert_eq!(coerce("1.5", Types(Types::NUMBER)), json!(1.5));
        assert_eq!(coerce("true", Types(Types::BOOLEAN)), json!(true));
        assert_eq!(coerce("10", Types(Types::STRING)), json!("10"));
        let Read::Value(v) = split_value("1,2,x", &Shape::Array(int), ',') else {
            panic!("an array")
        };
        assert_eq!(v, json!([1, 2, "x"]));
    }

    #[test]
    fn query_pairs_split_at_the_first_equals_and_skip_empty_pairs() {
        let pairs: Vec<_> = query_pairs("a=1&&b&c=x=y&=v&").collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "x=y"), ("", "v")]);
        assert_eq!(query_pairs("").count(), 0);
        assert_eq!(
            query_pairs("é=ü&ß").collect::<Vec<_>>(),
            [("é", "ü"), ("ß", "")]
        );
    }

    #[test]
    fn bad_percent_encoding_is_a_violation() {
        let headers = HeaderMap::new();
        let mut v = Violations::new(10);
        let inputs = Inputs::parse(Some("a=%FF%FE&b=ok+go&c=%E2%82%AC"), Some(&headers), &mut v);
        assert_eq!(v.list.len(), 1);
        assert_eq!(v.list[0].location, "query.a");
        assert_eq!(inputs.query_value("b"), Some("ok go"));
        assert_eq!(inputs.query_value("c"), Some("€"));
    }
}
