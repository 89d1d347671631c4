//! The spec's `security` requirements: a request whose operation needs a credential and
//! carries none gets 401 before any other check, and a [`CredentialVerifier`] of the
//! user's may judge the credential's value.
//!
//! The chassis checks presence, which the spec states exactly, and leaves the value to
//! the service, which alone knows its tokens and keys: the verifier is the seam. It is a
//! plain synchronous function on purpose: it runs on the request path, before the handler,
//! and must not block (check a signature or a key set in memory, not a remote service).

use axum::http::{HeaderMap, HeaderValue, header};

use super::compiled::{In, Operation};
use super::params::Inputs;

/// A security scheme of the spec, compiled.
#[derive(Debug)]
pub(crate) struct Scheme {
    pub(crate) name: String,
    pub(crate) kind: SchemeKind,
}

#[derive(Debug)]
pub(crate) enum SchemeKind {
    /// `type: http, scheme: bearer`, and OAuth 2 / OpenID Connect.
    Bearer,
    /// `type: http, scheme: basic`.
    Basic,
    /// `type: apiKey`: a header (lower case), query parameter or cookie.
    ApiKey { location: In, name: String },
}

/// How a credential was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    /// `Authorization: Bearer <token>` (HTTP bearer, OAuth 2, OpenID Connect).
    Bearer,
    /// `Authorization: Basic <base64 user:password>`, still encoded.
    Basic,
    /// An API key in a header, query parameter or cookie.
    ApiKey,
}

/// A credential found in a request, for a [`CredentialVerifier`] to judge.
#[derive(Debug, Clone, Copy)]
pub struct Credential<'a> {
    /// The security scheme's name in `components.securitySchemes`.
    pub scheme: &'a str,
    /// How it was sent.
    pub kind: CredentialKind,
    /// The token, the still-encoded basic credentials, or the key.
    pub value: &'a str,
}

/// Judges the credentials of requests to operations that declare `security`.
///
/// It runs on the request path before the handler, so it must be fast and must not
/// block. Any `Fn(&Credential) -> bool` is one:
///
/// ```
/// use ms_chassis::openapi::{Credential, CredentialVerifier};
///
/// fn verifier() -> impl CredentialVerifier {
///     |c: &Credential<'_>| c.scheme != "apiKey" || c.value == "let-me-in"
/// }
/// # let _ = verifier();
/// ```
pub trait CredentialVerifier: Send + Sync + 'static {
    /// Whether `credential` is acceptable; `false` answers 401.
    fn verify(&self, credential: &Credential<'_>) -> bool;
}

impl<F> CredentialVerifier for F
where
    F: Fn(&Credential<'_>) -> bool + Send + Sync + 'static,
{
    fn verify(&self, credential: &Credential<'_>) -> bool {
        self(credential)
    }
}

/// Why a request is refused with 401.
#[derive(Debug)]
pub(crate) struct Unauthorized {
    pub(crate) detail: &'static str,
    /// The `WWW-Authenticate` challenges, if any scheme has one.
    pub(crate) challenge: Option<HeaderValue>,
}

/// Checks `op`'s security against the request.
pub(crate) fn check(
    op: &Operation,
    headers: &HeaderMap,
    inputs: &Inputs<'_>,
    verifier: Option<&dyn CredentialVerifier>,
) -> Result<(), Unauthorized> {
    let Some(alternatives) = &op.security else {
        return Ok(());
    };
    let mut present_but_refused = false;
    let mut some_present = false;
    for all in alternatives {
        let mut ok = true;
        // Every scheme is looked at, for the 401's detail; the verifier is asked only
        // while the alternative can still hold.
        for scheme in all {
            match credential(scheme, headers, inputs) {
                Some(c) => {
                    some_present = true;
                    if ok && verifier.is_some_and(|v| !v.verify(&c)) {
                        present_but_refused = true;
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
        if ok {
            return Ok(());
        }
    }
    // RFC 9110 §11.6.1: a 401 carries at least one challenge. An API key has no
    // registered scheme; `ApiKey in="header", name="X-API-Key"` says where it goes.
    let mut challenges: Vec<String> = Vec::new();
    for s in alternatives.iter().flatten() {
        let c = match &s.kind {
            SchemeKind::Bearer => "Bearer".to_owned(),
            SchemeKind::Basic => "Basic realm=\"api\"".to_owned(),
            SchemeKind::ApiKey { location, name } => {
                let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
                format!("ApiKey in=\"{}\", name=\"{quoted}\"", location.as_str())
            }
        };
        if !challenges.contains(&c) && HeaderValue::from_str(&c).is_ok() {
            challenges.push(c);
        }
    }
    Err(Unauthorized {
        detail: if present_but_refused {
            "the request's credentials were refused"
        } else if some_present {
            "the operation requires credentials (see its `security` in the API contract), \
             and the request carries only part of what any one of its alternatives needs"
        } else {
            "the operation requires credentials (see its `security` in the API contract), \
             and the request carries none"
        },
        challenge: (!challenges.is_empty())
            .then(|| HeaderValue::from_str(&challenges.join(", ")).ok())
            .flatten(),
    })
}

fn credential<'r>(
    scheme: &'r Scheme,
    headers: &'r HeaderMap,
    inputs: &'r Inputs<'_>,
) -> Option<Credential<'r>> {
    let auth = |prefix: &str| -> Option<&'r str> {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (s, rest) = v.split_once(' ')?;
        let rest = rest.trim();
        (s.eq_ignore_ascii_case(prefix) && !rest.is_empty()).then_some(rest)
    };
    let (kind, value): (CredentialKind, &'r str) = match &scheme.kind {
        SchemeKind::Bearer => (CredentialKind::Bearer, auth("bearer")?),
        SchemeKind::Basic => (CredentialKind::Basic, auth("basic")?),
        SchemeKind::ApiKey { location, name } => {
            let v: &'r str = match location {
                In::Header => headers.get(name.as_str())?.to_str().ok()?,
                In::Query => inputs.query_value(name)?,
                In::Cookie => inputs.cookie_value(name)?,
                In::Path => return None,
            };
            if v.is_empty() {
                return None;
            }
            (CredentialKind::ApiKey, v)
        }
    };
    Some(Credential {
        scheme: &scheme.name,
        kind,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::violation::Violations;
    use crate::openapi::{Document, ValidationOptions, Validator};

    fn validator() -> Validator {
        let doc = Document::from_text(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nsecurity: [{key: [], bearer: []}, {cookie: []}]\npaths:\n  /a:\n    get: {responses: {'200': {description: ok}}}\n  /open:\n    get: {security: [], responses: {'200': {description: ok}}}\n  /maybe:\n    get: {security: [{}, {basic: []}], responses: {'200': {description: ok}}}\ncomponents:\n  securitySchemes:\n    key: {type: apiKey, in: query, name: api_key}\n    bearer: {type: oauth2, flows: {}}\n    cookie: {type: apiKey, in: cookie, name: sid}\n    basic: {type: http, scheme: Basic}\n",
            "s.yaml",
        )
        .unwrap();
        Validator::compile(&doc, ValidationOptions::default()).unwrap()
    }

    fn run(
        v: &Validator,
        path: usize,
        query: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(), Unauthorized> {
        let mut map = HeaderMap::new();
        for (k, val) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(val).unwrap(),
            );
        }
        let mut violations = Violations::new(10);
        let inputs = Inputs::parse(query, Some(&map), &mut violations);
        check(
            &v.inner.compiled.paths[path].operations[0],
            &map,
            &inputs,
            None,
        )
    }

    #[test]
    fn every_scheme_of_one_alternative_is_needed() {
        let v = validator();
        let a = v.inner.compiled.by_template["/a"];
        let e = run(&v, a, Some("api_key=k"), &[]).unwrap_err();
        assert_eq!(
            e.challenge.unwrap(),
            r#"Bearer, ApiKey in="query", name="api_key", ApiKey in="cookie", name="sid""#
        );
        assert!(e.detail.contains("only part of"), "{}", e.detail);
        let e = run(&v, a, None, &[]).unwrap_err();
        assert!(e.detail.contains("carries none"), "{}", e.detail);
        assert!(run(&v, a, Some("api_key=k"), &[("authorization", "bearer t")]).is_ok());
        assert!(run(&v, a, None, &[("cookie", "x=1; sid=abc")]).is_ok());
        assert!(run(&v, a, None, &[("authorization", "Bearer ")]).is_err());
    }

    #[test]
    fn an_empty_requirement_or_list_lets_anyone_in() {
        let v = validator();
        assert!(run(&v, v.inner.compiled.by_template["/open"], None, &[]).is_ok());
        assert!(run(&v, v.inner.compiled.by_template["/maybe"], None, &[]).is_ok());
    }
}
