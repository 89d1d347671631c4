//! A code-first spec (utoipa's, or any serializable OpenAPI document) made into the
//! service's own: `info.title` and `info.version` from the `service` section, and the
//! fields the OpenAPI schema requires that generators leave out.

use serde_json::{Map, Value};

use crate::ServiceSection;

/// The HTTP methods a path item can hold operations for.
pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// utoipa-axum's own package description, which `OpenApiRouter::new()` puts in `info`.
const UTOIPA_AXUM_DESCRIPTION: &str = "Utoipa's axum bindings for seamless integration for the two";

/// The OpenAPI version a document without one is given.
pub(crate) const OPENAPI_VERSION: &str = "3.1.0";

/// Makes `doc` the service's spec: its `info.title` and `info.version` are the service's
/// name and version (utoipa's defaults are the crate's), utoipa-axum's own description,
/// contact and license are dropped, it has an `openapi` version
/// (3.1.0 when it had none) and `paths`, and every response has the `description` the
/// schema requires. Fails when `doc` is not a JSON object.
pub(crate) fn prepare(mut doc: Value, service: &ServiceSection) -> Result<Value, String> {
    let Value::Object(root) = &mut doc else {
        return Err(format!(
            "the code-first spec must serialize to a JSON object, found {}",
            kind(&doc)
        ));
    };
    if !root.get("openapi").is_some_and(Value::is_string) {
        root.insert("openapi".into(), OPENAPI_VERSION.into());
    }
    let info = root
        .entry("info")
        .or_insert_with(|| Value::Object(Map::new()));
    if !info.is_object() {
        *info = Value::Object(Map::new());
    }
    if let Value::Object(info) = info {
        if info.get("description").and_then(Value::as_str) == Some(UTOIPA_AXUM_DESCRIPTION) {
            // `OpenApiRouter::new()` derives its `info` inside utoipa-axum, so it names that
            // crate's description, authors and license: not the service's.
            for key in ["description", "contact", "license"] {
                info.remove(key);
            }
        }
        info.insert("title".into(), service.name.clone().into());
        info.insert("version".into(), service.version.clone().into());
    }
    if !["paths", "components", "webhooks"]
        .iter()
        .any(|k| root.contains_key(*k))
    {
        root.insert("paths".into(), Value::Object(Map::new()));
    }
    fill_descriptions(root);
    Ok(doc)
}

/// Gives every response object without a `description` (or with an empty one) the reason
/// phrase of its status code, in operations and in `components.responses`.
pub(crate) fn fill_descriptions(root: &mut Map<String, Value>) {
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(item) = item else { continue };
            for method in METHODS {
                if let Some(Value::Object(op)) = item.get_mut(method)
                    && let Some(Value::Object(responses)) = op.get_mut("responses")
                {
                    for (code, response) in responses.iter_mut() {
                        fill_description(code, response);
                    }
                }
            }
        }
    }
    if let Some(Value::Object(components)) = root.get_mut("components")
        && let Some(Value::Object(responses)) = components.get_mut("responses")
    {
        for response in responses.values_mut() {
            fill_description("", response);
        }
    }
}

fn fill_description(code: &str, response: &mut Value) {
    let Value::Object(r) = response else { return };
    if r.contains_key("$ref") {
        return;
    }
    let missing = r
        .get("description")
        .is_none_or(|d| d.as_str().is_none_or(str::is_empty));
    if missing {
        r.insert("description".into(), reason(code).into());
    }
}

/// The description a response without one gets: the reason phrase of `code`.
fn reason(code: &str) -> String {
    if code.eq_ignore_ascii_case("default") || code.is_empty() {
        return "Default response".to_owned();
    }
    code.parse::<u16>()
        .ok()
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .and_then(|s| s.canonical_reason())
        .map_or_else(|| format!("{code} response"), ToOwned::to_owned)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service() -> ServiceSection {
        ServiceSection {
            name: "books".into(),
            version: "1.2.3".into(),
        }
    }

    #[test]
    fn info_comes_from_the_service_section_and_descriptions_are_filled() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "some-crate", "version": "0.1.0", "license": {"name": "MIT"}},
            "paths": {"/books/{id}": {"get": {"responses": {
                "200": {"description": ""},
                "404": {},
                "default": {"content": {}},
                "418": {"description": "a teapot"},
                "5XX": {},
            }}}},
            "components": {"responses": {"Oops": {}, "Ref": {"$ref": "#/x"}}},
        });
        let doc = prepare(doc, &service()).unwrap();
        assert_eq!(doc["info"]["title"], "books");
        assert_eq!(doc["info"]["version"], "1.2.3");
        assert_eq!(doc["info"]["license"]["name"], "MIT", "the rest is kept");
        let r = &doc["paths"]["/books/{id}"]["get"]["responses"];
        assert_eq!(r["200"]["description"], "OK");
        assert_eq!(r["404"]["description"], "Not Found");
        assert_eq!(r["default"]["description"], "Default response");
        assert_eq!(r["418"]["description"], "a teapot");
        assert_eq!(r["5XX"]["description"], "5XX response");
        assert_eq!(
            doc["components"]["responses"]["Oops"]["description"],
            "Default response"
        );
        assert!(
            doc["components"]["responses"]["Ref"]
                .get("description")
                .is_none()
        );
    }

    #[test]
    fn a_bare_document_gets_a_version_info_and_paths() {
        let doc = prepare(json!({}), &service()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "books");
        assert_eq!(doc["paths"], json!({}));
        let utoipa_axum = json!({"info": {
            "title": "utoipa-axum", "version": "0.3.0", "description": UTOIPA_AXUM_DESCRIPTION,
            "contact": {"name": "Juha Kukkonen"}, "license": {"name": "MIT OR Apache-2.0"},
        }});
        let doc = prepare(utoipa_axum, &service()).unwrap();
        assert_eq!(doc["info"], json!({"title": "books", "version": "1.2.3"}));
        let e = prepare(json!([1]), &service()).unwrap_err();
        assert!(e.contains("found an array"), "{e}");
    }
}
