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
use crate::resilience::breaker::CircuitBreakerSnapshot;
use crate::server::{problem, problem_with};

/// The states an operator may ask for.
const STATES: &str = "forced_open, closed, disabled, reset";

/// What an operator asks of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Override {
    /// Reject every call.
    ForcedOpen,
    /// Let calls flow, judged afresh.
    Closed,
    /// Let calls flow, record nothing.
    Disabled,
    /// As new: CLOSED, waits reset.
    Reset,
}

impl Override {
    /// Case and surrounding space aside; `open` is taken for `forced_open`.
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "forced_open" | "open" => Some(Self::ForcedOpen),
            "closed" => Some(Self::Closed),
            "disabled" => Some(Self::Disabled),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ForcedOpen => "forced_open",
            Self::Closed => "closed",
            Self::Disabled => "disabled",
            Self::Reset => "reset",
        }
    }
}

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
        Override::ForcedOpen => breaker.force_open(),
        Override::Closed => breaker.force_closed(),
        Override::Disabled => breaker.disable(),
        Override::Reset => breaker.reset(),
    }
    tracing::warn!(
        breaker = %name,
        state = state.name(),
        "circuit breaker state forced through /admin/breakers"
    );
    axum::Json(breaker.snapshot()).into_response()
}

fn parse(body: &[u8]) -> Result<Override, Box<Response<Body>>> {
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
    match map
        .get("state")
        .and_then(Value::as_str)
        .and_then(Override::parse)
    {
        Some(state) => Ok(state),
        None => Err(bad(format!(
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
        let ok = |b: &[u8]| parse(b).unwrap();
        assert_eq!(ok(br#"{"state":"FORCED_OPEN"}"#), Override::ForcedOpen);
        assert_eq!(ok(br#"{"state":"open"}"#), Override::ForcedOpen);
        assert_eq!(ok(br#"{"state":" closed "}"#), Override::Closed);
        assert_eq!(ok(br#"{"state":"disabled"}"#), Override::Disabled);
        assert_eq!(ok(br#"{"state":"reset"}"#), Override::Reset);
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
