//! Request validation against the spec, as a tower middleware ([`ValidationLayer`]) that
//! runs after the request guard has admitted a request and before the handler.
//!
//! It exists because an OpenAPI document that nothing enforces is documentation only: here
//! every operation's inputs are checked — path, query, headers, cookies, security,
//! `Content-Type` and the JSON body — and a bad request gets one 400 problem+json listing
//! every violation. Requests are checked in two steps, head then body, so that a request
//! whose operation has no JSON body to check is passed on without being buffered or
//! moved into a second future; the body, when it is checked, is collected up to the
//! configured limit and handed on to the handler as the same bytes.
//!
//! ```
//! use ms_chassis::axum::{Router, routing::post};
//! use ms_chassis::openapi::{Document, ValidationOptions, Validator};
//!
//! let doc = Document::from_text(r#"
//! openapi: 3.0.3
//! info: {title: shop, version: "1"}
//! paths:
//!   /orders:
//!     post:
//!       requestBody:
//!         required: true
//!         content:
//!           application/json:
//!             schema:
//!               type: object
//!               required: [sku, quantity]
//!               properties:
//!                 sku: {type: string, pattern: "^[A-Z]{3}-[0-9]+$"}
//!                 quantity: {type: integer, minimum: 1, maximum: 100}
//!       responses:
//!         "201": {description: created}
//! "#, "api.yaml")?;
//! let options = ValidationOptions { strict: true, ..ValidationOptions::default() };
//! let validator = Validator::compile(&doc, options)?;
//! let app: Router = Router::new()
//!     .route("/orders", post(|| async { "created" }))
//!     .layer(validator.layer());
//! # let _ = app;
//! # Ok::<(), ms_chassis::openapi::SpecError>(())
//! ```

mod future;
mod layer;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use prometheus::IntCounterVec;

pub use future::ResponseFuture;
pub use layer::{ValidationLayer, ValidationService};

use super::compiled::{MULTIPART, Validator};
use super::violation::{Kind, Violations};
use super::{media, params, security};
use crate::server::Problem;

pub use crate::openapi::config::ResponseValidation;

/// How requests (and responses) are validated; `openapi.validation` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOptions {
    /// Check requests (default true).
    pub requests: bool,
    /// Refuse query parameters the operation does not declare, as Connexion's
    /// `strict_validation` does (default false).
    pub strict: bool,
    /// At most this many violations are listed in one 400 (default 50).
    pub max_errors: usize,
    /// Response validation (default off).
    pub responses: ResponseValidation,
    /// The largest body collected for checking, in bytes; a larger one is answered 413.
    /// Set it to `server.limits.body_size` (default 2 MiB, the chassis default).
    pub body_limit: usize,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            requests: true,
            strict: false,
            max_errors: 50,
            responses: ResponseValidation::Off,
            body_limit: 2 * 1024 * 1024,
        }
    }
}

/// `ms_chassis_openapi_request_validation_failures_total` and its response twin.
#[derive(Debug, Clone)]
pub(crate) struct ValidationMetrics {
    requests: IntCounterVec,
    responses: IntCounterVec,
}

impl ValidationMetrics {
    pub(crate) fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            prometheus::Opts::new(
                "ms_chassis_openapi_request_validation_failures_total",
                "Requests refused for breaking the OpenAPI contract, by route template and \
                 kind of location (path, query, header, cookie, body, content_type, security); \
                 a request with violations in two kinds counts in both.",
            ),
            &["http_route", "location"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let responses = IntCounterVec::new(
            prometheus::Opts::new(
                "ms_chassis_openapi_response_validation_failures_total",
                "Responses that broke the OpenAPI contract, by route template and kind of \
                 location (status, content_type, body).",
            ),
            &["http_route", "location"],
        )?;
        registry.register(Box::new(responses.clone()))?;
        Ok(Self {
            requests,
            responses,
        })
    }

    fn count(&self, responses: bool, route: &str, kinds: impl Iterator<Item = Kind>) {
        let vec = if responses {
            &self.responses
        } else {
            &self.requests
        };
        for k in kinds {
            vec.with_label_values(&[route, k.label()]).inc();
        }
    }
}

/// Where a request's operation is in the compiled spec: (path index, operation index).
pub(crate) type OpIndex = (usize, usize);

/// What the head of a request decides.
pub(crate) enum Decision {
    /// Call the handler; check its response if `Some`.
    Pass(Option<OpIndex>),
    /// Answer without calling the handler.
    Respond(Response<Body>),
    /// Collect the body, check it against media type `media` of the operation, then
    /// decide with the violations found so far.
    Body {
        op: OpIndex,
        media: usize,
        violations: Violations,
    },
}

impl Validator {
    fn respond_counted(&self, route: &str, kinds: &[Kind], res: Response<Body>) -> Decision {
        if let Some(m) = &self.inner.metrics {
            m.count(false, route, kinds.iter().copied());
        }
        Decision::Respond(res)
    }

    /// Checks everything but the body.
    pub(crate) fn check_head(&self, req: &Request<Body>) -> Decision {
        let opts = &self.inner.options;
        if !opts.requests && opts.responses == ResponseValidation::Off {
            return Decision::Pass(None);
        }
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let path = req.uri().path();
        let Some(pi) = self.inner.compiled.find(matched, path) else {
            return Decision::Pass(None);
        };
        let entry = &self.inner.compiled.paths[pi];
        let Some(oi) = entry
            .operations
            .iter()
            .position(|o| o.method == req.method())
            .or_else(|| {
                (req.method() == Method::HEAD)
                    .then(|| {
                        entry
                            .operations
                            .iter()
                            .position(|o| o.method == Method::GET)
                    })
                    .flatten()
            })
        else {
            // CORS preflights are not in specs, and must not be refused.
            if req.method() == Method::OPTIONS || !opts.requests {
                return Decision::Pass(None);
            }
            let mut res = Problem::new(StatusCode::METHOD_NOT_ALLOWED)
                .with_detail(format!(
                    "{} is not an operation of {} in the API contract",
                    req.method(),
                    entry.template
                ))
                .into_response();
            res.headers_mut().insert(header::ALLOW, entry.allow.clone());
            return Decision::Respond(res);
        };
        let checks_response = (opts.responses != ResponseValidation::Off).then_some((pi, oi));
        if !opts.requests {
            return Decision::Pass(checks_response);
        }
        let op = &entry.operations[oi];
        // Nothing declared, so nothing to check, and no unknown query parameter to reject:
        // the common parameterless GET skips the parse of the query, cookies and headers.
        if op.params.is_empty() && op.security.is_none() && op.body.is_none() && !opts.strict {
            return Decision::Pass(checks_response);
        }
        let route = entry.route.as_ref();
        let headers = req.headers();
        let mut v = Violations::new(opts.max_errors);
        let cookies = op.reads_cookies.then_some(headers);
        let inputs = params::Inputs::parse(req.uri().query(), cookies, &mut v);
        if let Err(u) = security::check(op, headers, &inputs, self.inner.verifier.as_deref()) {
            let mut res = Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail(u.detail)
                .into_response();
            if let Some(c) = u.challenge {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
            }
            return self.respond_counted(route, &[Kind::Security], res);
        }
        params::check(op, entry, path, &inputs, headers, opts.strict, &mut v);
        if let Some(body) = &op.body {
            use http_body::Body as _;
            let empty = req.body().size_hint().exact() == Some(0);
            match headers.get(header::CONTENT_TYPE).and_then(media::essence) {
                None if empty => {
                    if body.required {
                        missing_body(&mut v, body.listed.clone());
                    }
                }
                None => {
                    let res = unsupported(None, &body.listed);
                    return self.respond_counted(route, &[Kind::ContentType], res);
                }
                Some(essence) => match media::select(&body.media, &essence) {
                    None => {
                        let res = unsupported(Some(&essence), &body.listed);
                        return self.respond_counted(route, &[Kind::ContentType], res);
                    }
                    Some(_) if empty => {
                        if body.required {
                            missing_body(&mut v, essence.into_owned());
                        }
                    }
                    Some(mi) if media::is_checked(&body.media[mi], &essence) => {
                        return Decision::Body {
                            op: (pi, oi),
                            media: mi,
                            violations: v,
                        };
                    }
                    Some(_) => {}
                },
            }
        }
        self.verdict(pi, v)
            .map_or(Decision::Pass(checks_response), Decision::Respond)
    }

    /// The 400 for `v`, if it holds any violation (counted).
    pub(crate) fn verdict(&self, pi: usize, v: Violations) -> Option<Response<Body>> {
        if v.is_empty() {
            return None;
        }
        let route = self.inner.compiled.paths[pi].route.as_ref();
        if let Some(m) = &self.inner.metrics {
            m.count(false, route, v.kinds());
        }
        Some(v.problem(StatusCode::BAD_REQUEST).into_response())
    }

    /// Checks a collected body, then decides.
    pub(crate) fn check_body(
        &self,
        (pi, oi): OpIndex,
        mi: usize,
        content_type: Option<&HeaderValue>,
        bytes: &Bytes,
        mut v: Violations,
    ) -> Option<Response<Body>> {
        let op = &self.inner.compiled.paths[pi].operations[oi];
        if let Some(body) = &op.body {
            let m = &body.media[mi];
            if bytes.is_empty() {
                if body.required {
                    missing_body(&mut v, m.range.clone());
                }
            } else if m.range == MULTIPART && m.form.is_some() {
                media::check_multipart(m, content_type, bytes, &mut v);
            } else if m.form.is_some() && !media::parses_as_json(&m.range) {
                media::check_form(m, bytes, &mut v);
            } else {
                media::check_json(m, bytes, &mut v, Kind::Body);
            }
        }
        self.verdict(pi, v)
    }

    /// Whether responses of `op` are checked.
    pub(crate) fn checks_responses(&self) -> bool {
        self.inner.options.responses != ResponseValidation::Off
    }

    pub(crate) fn count_response(&self, route: &str, kinds: impl Iterator<Item = Kind>) {
        if let Some(m) = &self.inner.metrics {
            m.count(true, route, kinds);
        }
    }
}

/// The 415 answer.
fn unsupported(essence: Option<&str>, listed: &str) -> Response<Body> {
    let found = essence.map(super::violation::truncate);
    let detail = match &found {
        Some(e) => {
            format!("the request's Content-Type {e:?} is not one this operation accepts ({listed})")
        }
        None => {
            format!("the request has a body but no Content-Type; this operation accepts {listed}")
        }
    };
    let mut error = serde_json::json!({
        "location": "header.content-type",
        "keyword": "contentType",
        "message": "is not an accepted media type",
        "expected": listed,
    });
    if let Some(f) = found {
        error["found"] = f.into();
    }
    Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .with_detail(detail)
        .with_extension("errors", vec![error])
        .into_response()
}

/// A 413 for a body over the limit.
pub(crate) fn too_large(limit: usize) -> Response<Body> {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE)
        .with_detail(format!(
            "the request body exceeds the limit of {limit} bytes (server.limits.body_size)"
        ))
        .into_response()
}

/// The violation of a required request body that was not sent; `expected` names the media
/// types the operation takes.
fn missing_body(v: &mut Violations, expected: String) {
    v.add(
        Kind::Body,
        "body",
        "required",
        "is required",
        Some(expected),
        None,
    );
}
