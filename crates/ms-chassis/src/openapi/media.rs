//! Media types: the request's `Content-Type` against the operation's `content` (415 when
//! none fits), and a body checked against the schema of the one that does: JSON parsed,
//! forms (`application/x-www-form-urlencoded`) and `multipart/form-data` read as objects.
//!
//! Only the essence (`type/subtype`, before the first `;`) is read, so a header with a
//! thousand parameters costs one scan and nothing else. Bodies are parsed with serde_json's
//! default recursion limit (128), which makes deeply nested JSON a fast 400 instead of a
//! deep stack; the size was already bounded when the body was collected.

use std::borrow::Cow;
use std::convert::Infallible;

use axum::http::HeaderValue;
use bytes::Bytes;
use futures_util::FutureExt as _;
use serde_json::Value;

use super::compiled::{FORM, MULTIPART, Media, Shape, Types, is_json};
use super::document::escape;
use super::params::{coerce, form_decode, query_pairs};
use super::violation::{Kind, Violations};

/// The essence of a `Content-Type`: lower case, without parameters or whitespace.
pub(crate) fn essence(value: &HeaderValue) -> Option<Cow<'_, str>> {
    let bytes = value.as_bytes();
    let end = bytes.iter().position(|b| *b == b';').unwrap_or(bytes.len());
    let e = std::str::from_utf8(&bytes[..end]).ok()?.trim();
    if e.is_empty() {
        return None;
    }
    Some(if e.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(e.to_ascii_lowercase())
    } else {
        Cow::Borrowed(e)
    })
}

/// The index of the media type in `media` that `essence` falls under: an exact match
/// first, then `type/*`, then `*/*`.
pub(crate) fn select(media: &[Media], essence: &str) -> Option<usize> {
    if let Some(i) = media.iter().position(|m| m.range == essence) {
        return Some(i);
    }
    let top = essence.split('/').next().unwrap_or("");
    media
        .iter()
        .position(|m| {
            m.range
                .strip_suffix("/*")
                .is_some_and(|t| t == top && t != "*")
        })
        .or_else(|| media.iter().position(|m| m.range == "*/*"))
}

/// Whether a body of media type `essence` is parsed as JSON.
pub(crate) fn parses_as_json(essence: &str) -> bool {
    is_json(essence)
}

/// Whether a body of media type `essence` is collected and checked: JSON, and forms
/// (urlencoded or multipart) whose media type has a schema.
pub(crate) fn is_checked(media: &Media, essence: &str) -> bool {
    parses_as_json(essence) || ((essence == FORM || essence == MULTIPART) && media.form.is_some())
}

/// Reads a `multipart/form-data` body (RFC 7578) as an object, one property per part name,
/// as OpenAPI describes it: a repeated name is an array, a text part is typed by its
/// property's schema, a part of a JSON media type, or for an object property, is parsed as
/// JSON, and a file's content is a string. Then checks the object against `media`'s
/// schema. The parser is `multer` (axum's, for its `Multipart` extractor), run on the body
/// already collected, so every step is ready at once. The `encoding` object's
/// `contentType` is not enforced on the parts: each part is read by its own `Content-Type`.
pub(crate) fn check_multipart(
    media: &Media,
    content_type: Option<&HeaderValue>,
    body: &Bytes,
    v: &mut Violations,
) {
    let (Some(schema), Some(shapes)) = (&media.schema, &media.form) else {
        return;
    };
    let invalid = |v: &mut Violations, why: String| {
        v.add(
            Kind::Body,
            "body",
            "encoding",
            why,
            Some(MULTIPART.into()),
            None,
        );
    };
    let boundary = content_type
        .and_then(|c| c.to_str().ok())
        .and_then(|c| multer::parse_boundary(c).ok());
    let Some(boundary) = boundary else {
        invalid(v, "has no multipart boundary in its Content-Type".into());
        return;
    };
    let chunk = body.clone();
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(chunk)));
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut object = serde_json::Map::new();
    loop {
        // The whole body is in memory: each step completes on its first poll. Were one
        // ever to wait, the body would pass unchecked rather than refuse a valid request.
        let Some(next) = parts.next_field().now_or_never() else {
            return;
        };
        let field = match next {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return invalid(v, format!("is not valid multipart/form-data: {e}")),
        };
        let Some(name) = field.name().map(ToOwned::to_owned) else {
            return invalid(v, "has a part without a name".into());
        };
        let json_part = field
            .content_type()
            .is_some_and(|m| is_json(m.essence_str()));
        let Some(data) = field.bytes().now_or_never() else {
            return;
        };
        let data = match data {
            Ok(data) => data,
            Err(e) => return invalid(v, format!("is not valid multipart/form-data: {e}")),
        };
        let (types, repeated) = match shapes.get(&name) {
            Some(Shape::Scalar(t)) => (*t, false),
            Some(Shape::Array(t)) => (*t, true),
            Some(Shape::Object(_)) => (Types(Types::OBJECT), false),
            None => (Types::default(), false),
        };
        let value = if json_part || (types.has(Types::OBJECT) && !types.has(Types::STRING)) {
            match serde_json::from_slice(&data) {
                Ok(value) => value,
                Err(e) => {
                    v.add(
                        Kind::Body,
                        format!("body/{}", escape(&name)),
                        "json",
                        format!("is not valid JSON: {e}"),
                        Some("a JSON document".into()),
                        None,
                    );
                    continue;
                }
            }
        } else {
            coerce(&String::from_utf8_lossy(&data), types)
        };
        if repeated {
            let entry = object
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(value);
            }
        } else if object.insert(name.clone(), value).is_some() {
            return repeated_field(v, &name);
        }
    }
    let value = Value::Object(object);
    if !schema.validator.is_valid(&value) {
        v.schema_errors(Kind::Body, "body", &schema.validator, &value);
    }
}

/// A form or multipart field that is not an array was given more than once: which copy
/// the handler reads is its own choice, so neither may go unchecked.
fn repeated_field(v: &mut Violations, name: &str) {
    v.add(
        Kind::Body,
        format!("body/{}", super::violation::truncate(&escape(name))),
        "repeated",
        "is given more than once, and only an array field may repeat",
        Some("one value".into()),
        None,
    );
}

/// Reads an `application/x-www-form-urlencoded` body as an object (each value typed by its
/// property's schema, repeated names as arrays) and checks it against `media`'s schema.
pub(crate) fn check_form(media: &Media, bytes: &[u8], v: &mut Violations) {
    let (Some(schema), Some(shapes)) = (&media.schema, &media.form) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        v.add(
            Kind::Body,
            "body",
            "encoding",
            "is not UTF-8",
            Some(FORM.into()),
            None,
        );
        return;
    };
    let mut object = serde_json::Map::new();
    for (k, val) in query_pairs(text) {
        let (Some(k), Some(val)) = (form_decode(k), form_decode(val)) else {
            v.add(
                Kind::Body,
                "body",
                "encoding",
                "is not valid percent-encoded UTF-8",
                Some(FORM.into()),
                None,
            );
            return;
        };
        match shapes.get(k.as_ref()) {
            Some(Shape::Array(t)) => {
                let entry = object
                    .entry(k.into_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.push(coerce(&val, *t));
                }
            }
            shape => {
                let value = match shape {
                    Some(Shape::Scalar(t)) => coerce(&val, *t),
                    _ => Value::String(val.into_owned()),
                };
                if object.insert(k.to_string(), value).is_some() {
                    return repeated_field(v, &k);
                }
            }
        }
    }
    let value = Value::Object(object);
    if !schema.validator.is_valid(&value) {
        v.schema_errors(Kind::Body, "body", &schema.validator, &value);
    }
}

/// Parses a JSON body and checks it against `media`'s schema, if it has one.
pub(crate) fn check_json(media: &Media, bytes: &[u8], v: &mut Violations, kind: Kind) {
    // JSON is UTF-8 (RFC 8259 §8.1): one pass over the whole body is cheaper than
    // `from_slice`'s check of every string, and `from_str` then skips those.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
        Err(e) => Err(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
    };
    let value: Value = match parsed {
        Ok(value) => value,
        Err(e) => {
            v.add(
                kind,
                "body",
                "json",
                format!("is not valid JSON: {e}"),
                Some("a JSON document".into()),
                None,
            );
            return;
        }
    };
    if let Some(schema) = &media.schema
        && !schema.validator.is_valid(&value)
    {
        v.schema_errors(kind, "body", &schema.validator, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(range: &str) -> Media {
        Media {
            range: range.into(),
            schema: None,
            form: None,
        }
    }

    #[test]
    fn essence_ignores_parameters_and_case() {
        let many = format!("Application/JSON{}", "; a=b".repeat(1000));
        let v = HeaderValue::from_str(&many).unwrap();
        assert_eq!(essence(&v).as_deref(), Some("application/json"));
        assert_eq!(essence(&HeaderValue::from_static(" ; x=y")), None);
    }

    #[test]
    fn exact_then_wildcards() {
        let list = [media("text/*"), media("application/json"), media("*/*")];
        assert_eq!(select(&list, "application/json"), Some(1));
        assert_eq!(select(&list, "text/plain"), Some(0));
        assert_eq!(select(&list, "image/png"), Some(2));
        assert!(select(&list[..2], "image/png").is_none());
    }

    #[test]
    fn a_body_that_is_not_utf8_names_the_byte() {
        let mut v = Violations::new(10);
        check_json(
            &media("application/json"),
            b"{\"a\":\"\xff\"}",
            &mut v,
            Kind::Body,
        );
        assert_eq!(v.list.len(), 1);
        assert_eq!(v.list[0].location, "body");
        assert_eq!(
            v.list[0].message,
            "is not valid JSON: invalid UTF-8 at byte 6"
        );
        let mut v = Violations::new(10);
        check_json(&media("application/json"), b"{\"a\":", &mut v, Kind::Body);
        assert!(
            v.list[0].message.starts_with("is not valid JSON: EOF"),
            "{:?}",
            v.list
        );
    }

    #[test]
    fn deep_json_is_refused_at_the_recursion_limit() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let r = serde_json::from_str::<Value>(&deep);
        assert!(r.unwrap_err().to_string().contains("recursion limit"));
    }
}
