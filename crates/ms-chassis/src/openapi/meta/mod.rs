//! The official OpenAPI meta-schemas, vendored (see `README.md` beside this file for their
//! source), and the check of a document against the one for its version.
//!
//! Checking the document's structure at load, with file and line, turns a misspelt
//! `requestbody` or a parameter without `in` into a startup error instead of a contract
//! that silently checks nothing. The schemas are compiled from files in the binary, so
//! the check needs no network; they are compiled once per process.

use std::sync::OnceLock;

use serde_json::Value;

use super::document::{Document, SpecError, SpecVersion};

/// OpenAPI 3.0.x, from <https://spec.openapis.org/oas/3.0/schema/2021-09-28>.
const OAS_3_0: &str = include_str!("oas-3.0.json");
/// OpenAPI 3.1.x, from <https://spec.openapis.org/oas/3.1/schema/2022-10-07>.
const OAS_3_1: &str = include_str!("oas-3.1.json");

/// At most this many meta-schema violations are reported.
const MAX_REPORTED: usize = 50;

fn validator(version: SpecVersion) -> &'static jsonschema::Validator {
    static V30: OnceLock<jsonschema::Validator> = OnceLock::new();
    static V31: OnceLock<jsonschema::Validator> = OnceLock::new();
    let (cell, text) = match version {
        SpecVersion::V3_0 => (&V30, OAS_3_0),
        SpecVersion::V3_1 => (&V31, OAS_3_1),
    };
    cell.get_or_init(|| {
        let schema: Value = serde_json::from_str(text).expect("the vendored meta-schema is JSON");
        jsonschema::options()
            .should_validate_formats(true)
            .with_format("uri-reference", templated_uri_reference)
            .build(&schema)
            .expect("the vendored meta-schema compiles")
    })
}

/// `format: uri-reference`, with Server Object templating: a server URL such as
/// `https://{region}.api.example.com/{version}` is valid OpenAPI, though its braces are not
/// URI characters, so each `{variable}` is read as one character of the URI (a digit
/// after `:`, where a port is, else a letter) before the check (the same meta-schemas' format is an annotation that other checkers skip).
fn templated_uri_reference(text: &str) -> bool {
    static PLAIN: OnceLock<jsonschema::Validator> = OnceLock::new();
    let plain = PLAIN.get_or_init(|| {
        jsonschema::options()
            .should_validate_formats(true)
            .build(&serde_json::json!({"format": "uri-reference"}))
            .expect("a format-only schema compiles")
    });
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        filled.push_str(&rest[..open]);
        // A port is digits; a scheme, host or path segment takes a letter.
        filled.push(if filled.ends_with(':') { '0' } else { 'x' });
        rest = &rest[open + close + 1..];
    }
    filled.push_str(rest);
    plain.is_valid(&Value::String(filled))
}

/// Checks `doc` against the meta-schema of its version.
pub(crate) fn check(doc: &Document) -> Result<(), SpecError> {
    let v = validator(doc.version());
    if v.is_valid(doc.as_value()) {
        return Ok(());
    }
    let diagnostics: Vec<_> = v
        .iter_errors(doc.as_value())
        .take(MAX_REPORTED)
        .map(|e| {
            let e = best_match(&e);
            let mut message = e.to_string();
            if message.len() > 300 {
                let mut cut = 300;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push('…');
            }
            doc.diagnostic(
                e.instance_path().as_str(),
                format!(
                    "not a valid OpenAPI {} document: {message}",
                    version_name(doc)
                ),
            )
        })
        .collect();
    Err(SpecError::Invalid(diagnostics))
}

/// The most specific cause of `e`: under a failed `oneOf`/`anyOf` (the meta-schema's way
/// of saying "a Reference or a Schema"), the branch error deepest in the document, as
/// Python jsonschema's `best_match` does; `e` itself otherwise.
fn best_match<'a>(e: &'a jsonschema::ValidationError<'a>) -> &'a jsonschema::ValidationError<'a> {
    use jsonschema::error::ValidationErrorKind as K;
    let (K::OneOfNotValid { context } | K::AnyOf { context }) = e.kind() else {
        return e;
    };
    context
        .iter()
        .flatten()
        .map(|c| best_match(c))
        .max_by_key(|c| c.instance_path().as_str().len())
        .filter(|c| c.instance_path().as_str().len() > e.instance_path().as_str().len())
        .unwrap_or(e)
}

fn version_name(doc: &Document) -> &'static str {
    match doc.version() {
        SpecVersion::V3_0 => "3.0",
        SpecVersion::V3_1 => "3.1",
    }
}

#[cfg(test)]
mod tests {
    use super::super::document::Document;

    #[test]
    fn both_meta_schemas_compile_and_accept_a_minimal_spec() {
        for v in ["3.0.3", "3.1.0"] {
            let text = format!(
                "openapi: {v}\ninfo: {{title: t, version: '1'}}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {{description: ok}}\n"
            );
            Document::from_text(&text, "ok.yaml").unwrap();
        }
    }

    /// The specification's own Server Object example, in both versions.
    #[test]
    fn templated_server_urls_are_valid_and_broken_ones_are_not() {
        for v in ["3.0.3", "3.1.0"] {
            let text = format!(
                "openapi: {v}\ninfo: {{title: t, version: '1'}}\nservers:\n  - url: 'https://{{username}}.gigantic-server.com:{{port}}/{{basePath}}'\n    variables:\n      username: {{default: demo}}\n      port: {{enum: ['8443', '443'], default: '8443'}}\n      basePath: {{default: v2}}\npaths: {{}}\n"
            );
            Document::from_text(&text, "servers.yaml").unwrap();
            if v == "3.0.3" {
                continue; // 3.0's meta-schema gives server URLs no format.
            }
            let bad = format!(
                "openapi: {v}\ninfo: {{title: t, version: '1'}}\nservers: [{{url: 'http://a b/'}}]\npaths: {{}}\n"
            );
            let e = Document::from_text(&bad, "bad.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("/servers/0/url"), "{e}");
        }
        assert!(super::templated_uri_reference("/{a}/b{c}"));
        assert!(!super::templated_uri_reference("/a b"));
    }

    #[test]
    fn a_structural_error_names_file_and_line() {
        let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - name: q\n          schema: {type: string}\n      responses:\n        '200': {description: ok}\n";
        let e = Document::from_text(text, "bad.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml:7:"), "{e}");
        assert!(e.contains("/paths/~1a/get/parameters/0"), "{e}");
    }
}
