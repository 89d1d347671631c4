//! `GET /admin/breakers` and `POST /admin/breakers/{name}`: see every client's circuit
//! breaker, and force one open, closed or disabled — Resilience4j's operator overrides.
//!
//! ```text
//! GET  /admin/breakers                                  # [{"name","state","metrics"}, ...]
//! POST /admin/breakers/books {"state": "forced_open"}   # reject every call to books
//! POST /admin/breakers/books {"state": "closed"}        # calls flow, judged afresh
//! POST /admin/breakers/books {"state": "disabled"}      # calls flow, nothing recorded
//! POST /admin/breakers/books {"state": "reset"}         # as new: CLOSED, waits reset
//! ```
//!
//! A forced state holds until the next override or a config reload that changes the
//! client's `breaker` settings. The answer is the breaker as `GET` shows it. An unknown
//! breaker is a 404, bad input a 400 problem+json whose `field` member names the field.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};

use super::Admin;
use crate::resilience::CircuitBreakerSnapshot;
use crate::server::{problem, problem_with};

/// The states an operator may ask for.
const STATES: &str = "forced_open, closed, disabled, reset";

pub(super) async fn list(State(admin): State<Admin>) -> Response<Body> {
    let snapshots: Vec<CircuitBreakerSnapshot> = admin
        .inner
        .clients
        .breakers()
        .iter()
        .map(|b| b.snapshot())
        .collect();
    axum::Json(snapshots).into_response()
}

pub(super) async fn force(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response<Body> {
    let breakers = admin.inner.clients.breakers();
    let Some(breaker) = breakers.iter().find(|b| b.name() == name) else {
        let known: Vec<&str> = breakers.iter().map(|b| b.name()).collect();
        return problem(
            StatusCode::NOT_FOUND,
            &format!(
                "no breaker named {name:?}; the breakers are: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    };
    let state = match parse(&body) {
        Ok(s) => s,
        Err(res) => return *res,
    };
    match state {
        "forced_open" => breaker.force_open(),
        "closed" => breaker.force_closed(),
        "disabled" => breaker.disable(),
        _ => breaker.reset(),
    }
    tracing::warn!(breaker = %name, state, "circuit breaker state forced through /admin/breakers");
    axum::Json(breaker.snapshot()).into_response()
}

fn parse(body: &[u8]) -> Result<&'static str, Box<Response<Body>>> {
    let bad = |detail: String| {
        let mut ext = Map::new();
        ext.insert("field".into(), "state".into());
        Box::new(problem_with(StatusCode::BAD_REQUEST, &detail, ext))
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            &format!("expected a JSON object such as {{\"state\": \"forced_open\"}}: {e}"),
        ))
    })?;
    let Some(map) = value.as_object() else {
        return Err(bad(format!(
            "expected a JSON object with `state`: one of {STATES}"
        )));
    };
    if let Some(unknown) = map.keys().find(|k| *k != "state") {
        let mut ext = Map::new();
        ext.insert("field".into(), unknown.as_str().into());
        return Err(Box::new(problem_with(
            StatusCode::BAD_REQUEST,
            &format!("unknown field `{unknown}`; expected only `state`"),
            ext,
        )));
    }
    let requested = map
        .get("state")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase());
    match requested.as_deref() {
        Some("forced_open" | "open") => Ok("forced_open"),
        Some("closed") => Ok("closed"),
        Some("disabled") => Ok("disabled"),
        Some("reset") => Ok("reset"),
        _ => Err(bad(format!(
            "state: expected one of {STATES}; found {}",
            map.get("state")
                .map_or("nothing".to_owned(), Value::to_string)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_states_and_names_the_field_on_bad_input() {
        assert_eq!(parse(br#"{"state":"FORCED_OPEN"}"#).unwrap(), "forced_open");
        assert_eq!(parse(br#"{"state":"open"}"#).unwrap(), "forced_open");
        assert_eq!(parse(br#"{"state":" closed "}"#).unwrap(), "closed");
        assert_eq!(parse(br#"{"state":"disabled"}"#).unwrap(), "disabled");
        assert_eq!(parse(br#"{"state":"reset"}"#).unwrap(), "reset");
        for bad in [
            &br#"{"state":"half_open"}"#[..],
            br#"{"state":1}"#,
            b"{}",
            b"[]",
            b"nope",
        ] {
            let res = parse(bad).unwrap_err();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            parse(br#"{"state":"closed","x":1}"#).unwrap_err().status(),
            400
        );
    }
}
