//! RFC 7807 `application/problem+json` bodies for the errors the chassis itself produces.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value};

/// Media type of RFC 7807 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Builds a problem response: `type` is `about:blank`, so `title` is the status phrase.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    problem_with(status, detail, Map::new())
}

/// [`problem`] with extension members (`"field": "level"`) beside the standard ones.
pub(crate) fn problem_with(
    status: StatusCode,
    detail: &str,
    extensions: Map<String, Value>,
) -> Response<Body> {
    problem_response(status, problem_body(status, detail, extensions))
}

/// The JSON body of a problem response.
pub(crate) fn problem_body(
    status: StatusCode,
    detail: &str,
    extensions: Map<String, Value>,
) -> Bytes {
    let mut body = extensions;
    body.insert("type".into(), "about:blank".into());
    body.insert(
        "title".into(),
        status.canonical_reason().unwrap_or("Error").into(),
    );
    body.insert("status".into(), status.as_u16().into());
    body.insert("detail".into(), detail.into());
    Value::Object(body).to_string().into()
}

/// A problem response around a body from [`problem_body`]: for an answer given so often
/// under load (a shed request) that rendering its body once pays.
pub(crate) fn problem_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}
