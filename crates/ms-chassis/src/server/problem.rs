//! [`Problem`]: RFC 9457 (formerly RFC 7807) `application/problem+json` error responses, for
//! the errors the chassis produces and for the user's own handlers.
//!
//! One type for both, so every error a service answers with has the same shape, whether it
//! comes from the chassis's limits, from a failed call to another service
//! (`From<ClientError>`), or from the handler's own checks.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Map, Value};

/// Media type of RFC 9457 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The members RFC 9457 defines; an extension may not take their names.
const STANDARD_MEMBERS: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// An RFC 9457 problem detail: a JSON error body with `type`, `title`, `status`, `detail`,
/// `instance` and extension members, answered as `application/problem+json`.
///
/// `type` defaults to `about:blank`, and then `title` defaults to the status's reason
/// phrase, as the RFC asks. Return it from a handler, alone or as the error of a `Result`:
///
/// ```
/// use ms_chassis::prelude::*;
///
/// async fn book(Path(id): Path<u32>) -> Result<Json<serde_json::Value>, Problem> {
///     if id == 0 {
///         return Err(Problem::new(StatusCode::BAD_REQUEST)
///             .with_detail("book ids start at 1")
///             .with_extension("field", "id"));
///     }
///     Ok(Json(serde_json::json!({ "id": id })))
/// }
/// # let _: Router = Router::new().route("/books/{id}", get(book));
/// ```
///
/// A failed call to another service converts with `?`: see
/// [`ClientError`](crate::client::ClientError)'s `From` impl, which answers 502, 503 or 504
/// with a detail that names no internal client or cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(Box<Members>);

/// Boxed, so that a `Result<T, Problem>` stays small (clippy's `result_large_err` warns on
/// an error of 128 bytes or more in every user's crate); a problem is the rare path.
#[derive(Debug, Clone, PartialEq)]
struct Members {
    status: StatusCode,
    kind: Option<Cow<'static, str>>,
    title: Option<Cow<'static, str>>,
    detail: Option<Cow<'static, str>>,
    instance: Option<Cow<'static, str>>,
    extensions: Map<String, Value>,
}

impl Problem {
    /// A problem with `status`, `type` `about:blank` and the status's reason as `title`.
    pub fn new(status: StatusCode) -> Self {
        Self(Box::new(Members {
            status,
            kind: None,
            title: None,
            detail: None,
            instance: None,
            extensions: Map::new(),
        }))
    }

    /// The `type` URI reference that identifies the kind of problem (default
    /// `about:blank`).
    #[must_use]
    pub fn with_type(mut self, uri: impl Into<Cow<'static, str>>) -> Self {
        self.0.kind = Some(uri.into());
        self
    }

    /// A short summary of the kind of problem (default: the status's reason phrase).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.0.title = Some(title.into());
        self
    }

    /// An explanation of this occurrence, for the client.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// A URI reference that identifies this occurrence.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<Cow<'static, str>>) -> Self {
        self.0.instance = Some(instance.into());
        self
    }

    /// An extension member beside the standard ones, such as `"errors": [...]`. A name of
    /// a standard member (`type`, `title`, `status`, `detail`, `instance`) is ignored: those
    /// are set with their own methods.
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        if !STANDARD_MEMBERS.contains(&name.as_str()) {
            self.0.extensions.insert(name, value.into());
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The `type` member.
    pub fn problem_type(&self) -> &str {
        self.0.kind.as_deref().unwrap_or("about:blank")
    }

    /// The `title` member.
    pub fn title(&self) -> &str {
        self.0
            .title
            .as_deref()
            .unwrap_or_else(|| self.0.status.canonical_reason().unwrap_or("Error"))
    }

    /// The `detail` member, if set.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The `instance` member, if set.
    pub fn instance(&self) -> Option<&str> {
        self.0.instance.as_deref()
    }

    /// The extension members.
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.0.extensions
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        let mut body = self.0.extensions.clone();
        body.insert("type".into(), self.problem_type().into());
        body.insert("title".into(), self.title().into());
        body.insert("status".into(), self.0.status.as_u16().into());
        if let Some(d) = &self.0.detail {
            body.insert("detail".into(), d.as_ref().into());
        }
        if let Some(i) = &self.0.instance {
            body.insert("instance".into(), i.as_ref().into());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.title())?;
        if let Some(d) = &self.0.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl From<StatusCode> for Problem {
    fn from(status: StatusCode) -> Self {
        Self::new(status)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        problem_response(self.0.status, self.to_json().to_string().into())
    }
}

/// Builds a problem response: `type` is `about:blank`, so `title` is the status phrase.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    problem_with(status, detail, Map::new())
}

/// The problem for axum's empty 405, keeping its `Allow`.
pub(crate) fn method_not_allowed(allow: Option<HeaderValue>) -> Response<Body> {
    let mut res = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take this method (see Allow)",
    );
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
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
    let mut p = Problem::new(status).with_detail(detail.to_owned());
    p.0.extensions = extensions;
    p.to_json().to_string().into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_rfc() {
        let p = Problem::new(StatusCode::NOT_FOUND);
        assert_eq!(
            p.to_json(),
            serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404})
        );
        assert_eq!(p.to_string(), "404 Not Found");
    }

    #[test]
    fn every_member_and_extensions_but_never_over_a_standard_one() {
        let p = Problem::new(StatusCode::CONFLICT)
            .with_type("https://example.com/probs/out-of-stock")
            .with_title("Out of stock")
            .with_detail("book 7 has 0 copies left")
            .with_instance("/orders/12")
            .with_extension("book", 7)
            .with_extension("status", 200);
        assert_eq!(
            p.to_json(),
            serde_json::json!({
                "type": "https://example.com/probs/out-of-stock",
                "title": "Out of stock",
                "status": 409,
                "detail": "book 7 has 0 copies left",
                "instance": "/orders/12",
                "book": 7,
            })
        );
        let res = p.into_response();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
