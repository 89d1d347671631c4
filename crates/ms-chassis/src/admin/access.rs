//! Who may call the protected admin endpoints.
//!
//! The rule, in order:
//! 1. served on a management port bound to a loopback address (`server.management.host`
//!    is `127.0.0.1` or `::1`): open, since only processes on the machine can connect;
//! 2. else, with `admin.token` set: `Authorization: Bearer <token>` is required — 401
//!    without it, 403 with another token;
//! 3. else: off — 404, as if the endpoint did not exist, with a detail saying how to turn it
//!    on.
//!
//! The token is read from the live config on every call, so a reload can rotate it, and is
//! compared in time that does not depend on where the first wrong byte is. The same rule
//! decides who sees the health checks' details (`health.show_details: when_authorized`);
//! there a refusal hides the details instead of answering 401, 403 or 404.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::ConfigWatch;
use crate::server::problem;

/// How the protected endpoints are reached, fixed when the listeners are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// On a management listener bound to loopback.
    LoopbackManagement,
    /// Anywhere else: the main listener, or a management listener on a routable address.
    Reachable,
}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Neither a token nor a loopback management port: the endpoints are off.
    Off,
    /// A token is set and the request has no bearer token.
    NoToken,
    /// The request's bearer token is not the admin token.
    WrongToken,
}

/// Decides one request, without building an answer.
fn decide(exposure: Exposure, watch: &ConfigWatch, headers: &HeaderMap) -> Result<(), Refusal> {
    if exposure == Exposure::LoopbackManagement {
        return Ok(());
    }
    let config = watch.current();
    let Some(token) = config.chassis().admin.token.as_deref() else {
        return Err(Refusal::Off);
    };
    let Some(presented) = bearer(headers) else {
        return Err(Refusal::NoToken);
    };
    if !same_secret(presented.as_bytes(), token.as_bytes()) {
        return Err(Refusal::WrongToken);
    }
    Ok(())
}

/// Whether the request is let in (for the health checks' details, which are shown or not
/// rather than refused).
pub(crate) fn allowed(exposure: Exposure, watch: &ConfigWatch, headers: &HeaderMap) -> bool {
    decide(exposure, watch, headers).is_ok()
}

/// Decides one request; a refusal is the problem+json answer to send.
pub(crate) fn authorize(
    exposure: Exposure,
    watch: &ConfigWatch,
    headers: &HeaderMap,
) -> Result<(), Box<Response<Body>>> {
    let refusal = match decide(exposure, watch, headers) {
        Ok(()) => return Ok(()),
        Err(r) => r,
    };
    Err(Box::new(match refusal {
        Refusal::Off => problem(
            StatusCode::NOT_FOUND,
            "this admin endpoint is off: set admin.token (and send it as a bearer token), or \
             serve the chassis endpoints on a loopback management port (server.management)",
        ),
        Refusal::NoToken => {
            let mut res = problem(
                StatusCode::UNAUTHORIZED,
                "this admin endpoint requires `Authorization: Bearer <admin.token>`",
            );
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ms-chassis admin\""),
            );
            res
        }
        Refusal::WrongToken => problem(
            StatusCode::FORBIDDEN,
            "the bearer token is not the admin token",
        ),
    }))
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `presented` equals `secret`, in time that depends only on the secret's length:
/// every byte of the secret is compared, whatever the presented value.
fn same_secret(presented: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!s);
        diff |= std::hint::black_box(p ^ s);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cretX", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }

    #[test]
    fn only_a_bearer_token_is_read() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer   abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic YWxhZGRpbg==".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
