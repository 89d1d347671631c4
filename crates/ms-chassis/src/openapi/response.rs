//! Response validation, off by default and meant for development and tests: the handler's
//! response is checked against the operation's documented status codes, headers (required
//! ones present, values read in `simple` style against their schemas), content types and
//! JSON schemas (with `writeOnly` properties not allowed).
//!
//! A spec that only describes requests lets the other half of the contract drift
//! silently; checking responses in tests catches that drift where it starts. It costs a
//! buffered response body, which is why it is off in production, and why only bodies of
//! known size within the body limit are buffered (a stream passes unchecked). Mismatches
//! are logged with the route and the JSON pointer, counted, and in `reject` mode replace
//! the response with a 500.

use axum::body::{Body, Bytes};
use axum::http::response::Parts;
use axum::http::{Response, StatusCode, header};
use axum::response::IntoResponse as _;
use http_body_util::Collected;

use super::compiled::Validator;
use super::validate::{OpIndex, ResponseValidation};
use super::violation::{Kind, Violations};
use super::{media, params};

/// A response whose body is being collected for checking.
pub(crate) struct Pending {
    validator: Validator,
    op: OpIndex,
    parts: Parts,
    code: usize,
    media: usize,
    violations: Violations,
}

/// What to do after the head of a response is checked.
pub(crate) enum Next {
    Done(Response<Body>),
    Collect(Body, Pending),
}

/// Checks the status and `Content-Type` of `res`.
pub(crate) fn check_head(validator: Validator, op: OpIndex, res: Response<Body>) -> Next {
    use http_body::Body as _;
    let operation = &validator.inner.compiled.paths[op.0].operations[op.1];
    let mut v = Violations::new(validator.inner.options.max_errors);
    let status = res.status();
    let code = status.as_str();
    let found = operation
        .responses
        .by_code
        .iter()
        .position(|(c, _)| c == code)
        .or_else(|| {
            // `2XX`: the class of the status.
            operation.responses.by_code.iter().position(|(c, _)| {
                c.len() == 3 && c.as_bytes()[0] == code.as_bytes()[0] && &c[1..] == "XX"
            })
        })
        .or_else(|| {
            operation
                .responses
                .by_code
                .iter()
                .position(|(c, _)| c == "DEFAULT")
        });
    let Some(ci) = found else {
        v.add(
            Kind::Status,
            "status",
            "status",
            "is not a documented response of this operation",
            Some(
                operation
                    .responses
                    .by_code
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Some(code),
        );
        return Next::Done(conclude(&validator, op, res, v));
    };
    params::check_headers(
        &operation.responses.by_code[ci].1.headers,
        res.headers(),
        &mut v,
    );
    let documented = &operation.responses.by_code[ci].1.media;
    if documented.is_empty() {
        return Next::Done(conclude(&validator, op, res, v));
    }
    let empty = res.body().size_hint().exact() == Some(0);
    let essence = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(media::essence)
        .map(|e| e.into_owned());
    let listed = || {
        documented
            .iter()
            .map(|m| m.range.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mi = match essence.as_deref() {
        None if empty => return Next::Done(conclude(&validator, op, res, v)),
        None => {
            v.add(
                Kind::ContentType,
                "header.content-type",
                "contentType",
                "is missing",
                Some(listed()),
                None,
            );
            return Next::Done(conclude(&validator, op, res, v));
        }
        Some(e) => match media::select(documented, e) {
            Some(mi) => mi,
            None => {
                v.add(
                    Kind::ContentType,
                    "header.content-type",
                    "contentType",
                    "is not a documented media type of this response",
                    Some(listed()),
                    Some(e),
                );
                return Next::Done(conclude(&validator, op, res, v));
            }
        },
    };
    let e = essence.unwrap_or_default();
    let small = res
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= validator.inner.options.body_limit as u64);
    if !media::parses_as_json(&e) || documented[mi].schema.is_none() || !small || empty {
        return Next::Done(conclude(&validator, op, res, v));
    }
    let (parts, body) = res.into_parts();
    Next::Collect(
        body,
        Pending {
            validator,
            op,
            parts,
            code: ci,
            media: mi,
            violations: v,
        },
    )
}

/// Checks the collected body of a pending response.
pub(crate) fn finish(
    p: Pending,
    collected: Result<Collected<Bytes>, axum::Error>,
) -> Response<Body> {
    let Pending {
        validator,
        op,
        parts,
        code,
        media: mi,
        mut violations,
    } = p;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "the response body failed while it was read for validation");
            return crate::server::Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
                .with_detail("the response failed")
                .into_response();
        }
    };
    let operation = &validator.inner.compiled.paths[op.0].operations[op.1];
    let m = &operation.responses.by_code[code].1.media[mi];
    media::check_json(m, &bytes, &mut violations, Kind::Body);
    let res = Response::from_parts(parts, Body::from(bytes));
    conclude(&validator, op, res, violations)
}

fn conclude(
    validator: &Validator,
    op: OpIndex,
    res: Response<Body>,
    v: Violations,
) -> Response<Body> {
    if v.is_empty() {
        return res;
    }
    let entry = &validator.inner.compiled.paths[op.0];
    let method = &entry.operations[op.1].method;
    for violation in &v.list {
        tracing::warn!(
            route = %entry.template,
            method = %method,
            status = res.status().as_u16(),
            location = %violation.location,
            keyword = %violation.keyword,
            "response breaks the API contract: {} {}",
            violation.location,
            violation.message,
        );
    }
    validator.count_response(&entry.template, v.kinds());
    if validator.inner.options.responses != ResponseValidation::Reject {
        return res;
    }
    v.problem(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("the service's response breaks its own API contract")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{Document, ValidationOptions};

    fn validator() -> Validator {
        let doc = Document::from_text(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        2XX: {description: ok, content: {text/plain: {}}}\n        '404': {description: gone}\n",
            "r.yaml",
        )
        .unwrap();
        let options = ValidationOptions {
            responses: ResponseValidation::Reject,
            ..ValidationOptions::default()
        };
        Validator::compile(&doc, options).unwrap()
    }

    fn status(v: &Validator, code: u16, content_type: Option<&str>) -> StatusCode {
        let mut res = Response::new(Body::from("x"));
        *res.status_mut() = StatusCode::from_u16(code).unwrap();
        if let Some(ct) = content_type {
            res.headers_mut()
                .insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        match check_head(v.clone(), (0, 0), res) {
            Next::Done(res) => res.status(),
            Next::Collect(..) => panic!("no JSON schema to collect for"),
        }
    }

    #[test]
    fn status_classes_and_media_types_are_documented_or_rejected() {
        let v = validator();
        assert_eq!(
            status(&v, 201, Some("text/plain; charset=utf-8")),
            StatusCode::CREATED
        );
        assert_eq!(status(&v, 404, None), StatusCode::NOT_FOUND);
        assert_eq!(
            status(&v, 201, Some("application/json")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(&v, 418, None), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
