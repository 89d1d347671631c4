//! `GET /admin/loggers` and `POST /admin/loggers`: read and change log levels while the
//! service runs, for the root or one target, optionally for a while (as Dropwizard's
//! log-level task does).
//!
//! ```text
//! POST /admin/loggers {"target": "hyper", "level": "debug", "duration": "10m"}
//! POST /admin/loggers {"target": null, "level": "warn"}       # the root, until changed
//! POST /admin/loggers {"target": "hyper", "level": null}      # back to the config's level
//! ```
//!
//! The answer is the new state, as `GET` shows it. Bad input gets a 400 problem+json whose
//! `field` member names the field.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};

use super::Admin;
use crate::server::{problem, problem_with};
use crate::telemetry::levels::{self, LogLevels};

/// The longest override `duration` accepted.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A validated change.
#[derive(Debug, PartialEq)]
struct Change {
    target: Option<String>,
    /// `None` removes the override.
    level: Option<&'static str>,
    duration: Option<Duration>,
}

fn bad(field: &str, detail: String) -> Box<Response<Body>> {
    let mut ext = Map::new();
    ext.insert("field".into(), field.into());
    Box::new(problem_with(StatusCode::BAD_REQUEST, &detail, ext))
}

fn parse(body: &[u8]) -> Result<Change, Box<Response<Body>>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected a JSON object such as {{\"target\": \"hyper\", \"level\": \"debug\", \
                 \"duration\": \"10m\"}}: {e}"
            ),
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "expected a JSON object with `level`, and optionally `target` and `duration`",
        )));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !["target", "level", "duration"].contains(&k.as_str()))
    {
        return Err(bad(
            unknown,
            format!("unknown field `{unknown}`; expected target, level and duration"),
        ));
    }
    let target = match map.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if levels::valid_target(t.trim()) => Some(t.trim().to_owned()),
        Some(other) => {
            return Err(bad(
                "target",
                format!(
                    "target: expected a target such as `hyper` or `my_app::db` (letters, \
                     digits, `_`, `-`, `.` and `::`), or null for the root; found {other}"
                ),
            ));
        }
    };
    let level = match map.get("level") {
        None => {
            return Err(bad(
                "level",
                "level: required; one of trace, debug, info, warn, error, off, or null to \
                 return to the configured level"
                    .to_owned(),
            ));
        }
        Some(Value::Null) => None,
        Some(Value::String(l)) if levels::parse_level(l).is_some() => levels::parse_level(l),
        Some(other) => {
            return Err(bad(
                "level",
                format!(
                    "level: expected one of trace, debug, info, warn, error, off, or null to \
                     return to the configured level; found {other}"
                ),
            ));
        }
    };
    let duration = match map.get("duration") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => match humantime::parse_duration(d.trim()) {
            Ok(d) if !d.is_zero() && d <= MAX_DURATION => Some(d),
            _ => {
                return Err(bad(
                    "duration",
                    format!(
                        "duration: expected a duration from 1ms to 24h such as 30s or 10m, \
                         found {d:?}"
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(bad(
                "duration",
                format!("duration: expected a string such as \"10m\", found {other}"),
            ));
        }
    };
    if level.is_none() && duration.is_some() {
        return Err(bad(
            "duration",
            "duration: only with a level; removing an override is immediate".to_owned(),
        ));
    }
    Ok(Change {
        target,
        level,
        duration,
    })
}

fn levels_or_unavailable() -> Result<&'static LogLevels, Box<Response<Body>>> {
    levels::get().ok_or_else(|| {
        Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "log levels are managed by the application's own tracing subscriber",
        ))
    })
}

pub(super) async fn get() -> Response<Body> {
    match levels_or_unavailable() {
        Ok(l) => axum::Json(l.view()).into_response(),
        Err(res) => *res,
    }
}

pub(super) async fn post(State(admin): State<Admin>, body: Bytes) -> Response<Body> {
    let change = match parse(&body) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let levels = match levels_or_unavailable() {
        Ok(l) => l,
        Err(res) => return *res,
    };
    match levels.set_override(
        change.target.as_deref(),
        change.level,
        change.duration,
        admin.shutdown(),
    ) {
        Ok(view) => {
            tracing::info!(
                target: "ms_chassis::admin",
                logger = change.target.as_deref().unwrap_or("root"),
                log_level = change.level.unwrap_or("(configured)"),
                duration = change
                    .duration
                    .map(|d| humantime::format_duration(d).to_string()),
                filter = %view.filter,
                "log level changed"
            );
            axum::Json(view).into_response()
        }
        Err(e) => problem(
            StatusCode::BAD_REQUEST,
            &format!("the resulting filter is invalid: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(res: Response<Body>) -> Option<String> {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body =
            futures_util::FutureExt::now_or_never(axum::body::to_bytes(res.into_body(), 4096))
                .unwrap()
                .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["field"].as_str().map(str::to_owned)
    }

    #[test]
    fn a_valid_change_reads_whole() {
        assert_eq!(
            parse(br#"{"target": "hyper", "level": "DEBUG", "duration": "10m"}"#).unwrap(),
            Change {
                target: Some("hyper".into()),
                level: Some("debug"),
                duration: Some(Duration::from_secs(600)),
            }
        );
        assert_eq!(
            parse(br#"{"level": null, "target": null}"#).unwrap(),
            Change {
                target: None,
                level: None,
                duration: None,
            }
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        for (body, field) in [
            (&br#"{"level": "loud"}"#[..], Some("level")),
            (br#"{"target": "a=b", "level": "info"}"#, Some("target")),
            (br#"{"target": 3, "level": "info"}"#, Some("target")),
            (br#"{"target": "x"}"#, Some("level")),
            (
                br#"{"level": "info", "duration": "soon"}"#,
                Some("duration"),
            ),
            (br#"{"level": "info", "duration": "0s"}"#, Some("duration")),
            (br#"{"level": "info", "duration": "25h"}"#, Some("duration")),
            (br#"{"level": null, "duration": "1m"}"#, Some("duration")),
            (br#"{"level": "info", "levle": "x"}"#, Some("levle")),
            (br#"["info"]"#, None),
            (br#"not json"#, None),
        ] {
            let res = *parse(body).unwrap_err();
            assert_eq!(
                field_of(res).as_deref(),
                field,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
