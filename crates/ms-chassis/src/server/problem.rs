//! RFC 7807 `application/problem+json` bodies for the errors the chassis itself produces.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

/// Media type of RFC 7807 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Builds a problem response: `type` is `about:blank`, so `title` is the status phrase.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}
