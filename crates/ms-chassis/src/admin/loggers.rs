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

use std::fmt;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
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

/// The body as sent. serde checks each field's type and value (and refuses unknown
/// fields); [`parse`] then checks what depends on more than one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sent {
    #[serde(default, deserialize_with = "target")]
    target: Option<String>,
    /// `Some(None)` is `null` (back to the configured level); `None`, absent, is refused.
    #[serde(default, deserialize_with = "level")]
    level: Option<Option<&'static str>>,
    #[serde(default, deserialize_with = "duration")]
    duration: Option<Duration>,
}

const LEVEL_EXPECTED: &str =
    "one of trace, debug, info, warn, error, off, or null to return to the configured level";

fn target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(NullOr {
        expecting: "a target such as `hyper` or `my_app::db` (letters, digits, `_`, `-`, `.` \
                    and `::`), or null for the root",
        parse: |t| {
            let t = t.trim();
            levels::valid_target(t).then(|| t.to_owned())
        },
    })
}

fn level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<&'static str>>, D::Error> {
    d.deserialize_option(NullOr {
        expecting: LEVEL_EXPECTED,
        parse: levels::parse_level,
    })
    .map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_option(NullOr {
        expecting: "a duration from 1ms to 24h such as \"30s\" or \"10m\"",
        parse: |d| {
            humantime::parse_duration(d.trim())
                .ok()
                .filter(|d| !d.is_zero() && *d <= MAX_DURATION)
        },
    })
}

/// Reads a JSON string with `parse`, or `null` as `None`; anything else fails with what
/// was expected and what was found.
struct NullOr<T> {
    expecting: &'static str,
    parse: fn(&str) -> Option<T>,
}

impl<'de, T> Visitor<'de> for NullOr<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match (self.parse)(v) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

fn bad(field: &str, detail: String) -> Box<Response<Body>> {
    let mut ext = Map::new();
    ext.insert("field".into(), field.into());
    Box::new(problem_with(StatusCode::BAD_REQUEST, &detail, ext))
}

fn parse(body: &[u8]) -> Result<Change, Box<Response<Body>>> {
    // An object first: serde would also read a struct from an array, by position.
    let object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected a JSON object such as {{\"target\": \"hyper\", \"level\": \"debug\", \
                 \"duration\": \"10m\"}}: {e}"
            ),
        ))
    })?;
    let sent: Sent = serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        // The path names the field whose value is wrong, or that does not exist.
        match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => {
                bad(key, format!("{key}: {}", e.inner()))
            }
            _ => Box::new(problem(StatusCode::BAD_REQUEST, &e.to_string())),
        }
    })?;
    let Some(level) = sent.level else {
        return Err(bad("level", format!("level: required; {LEVEL_EXPECTED}")));
    };
    if level.is_none() && sent.duration.is_some() {
        return Err(bad(
            "duration",
            "duration: only with a level; removing an override is immediate".to_owned(),
        ));
    }
    Ok(Change {
        target: sent.target,
        level,
        duration: sent.duration,
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

    /// The problem's `field` and `detail`.
    fn field_of(res: Response<Body>) -> (Option<String>, String) {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body =
            futures_util::FutureExt::now_or_never(axum::body::to_bytes(res.into_body(), 4096))
                .unwrap()
                .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let detail = v["detail"].as_str().unwrap().to_owned();
        (v["field"].as_str().map(str::to_owned), detail)
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
    fn each_bad_field_is_named_with_what_was_expected() {
        for (body, field, says) in [
            (
                &br#"{"level": "loud"}"#[..],
                Some("level"),
                r#"level: invalid value: string "loud", expected one of trace, debug"#,
            ),
            (
                br#"{"target": "a=b", "level": "info"}"#,
                Some("target"),
                r#"target: invalid value: string "a=b", expected a target such as `hyper`"#,
            ),
            (
                br#"{"target": 3, "level": "info"}"#,
                Some("target"),
                "target: invalid type: integer `3`, expected a target such as `hyper`",
            ),
            (
                br#"{"target": "x"}"#,
                Some("level"),
                "level: required; one of trace",
            ),
            (
                br#"{"level": "info", "duration": "soon"}"#,
                Some("duration"),
                r#"duration: invalid value: string "soon", expected a duration from 1ms to 24h"#,
            ),
            (
                br#"{"level": "info", "duration": "0s"}"#,
                Some("duration"),
                "expected a duration from 1ms to 24h",
            ),
            (
                br#"{"level": "info", "duration": "25h"}"#,
                Some("duration"),
                "expected a duration from 1ms to 24h",
            ),
            (
                br#"{"level": "info", "duration": 60}"#,
                Some("duration"),
                "duration: invalid type: integer `60`, expected a duration",
            ),
            (
                br#"{"level": null, "duration": "1m"}"#,
                Some("duration"),
                "duration: only with a level",
            ),
            (
                br#"{"level": "info", "levle": "x"}"#,
                Some("levle"),
                "levle: unknown field `levle`, expected one of `target`, `level`, `duration`",
            ),
            (br#"["info"]"#, None, "expected a JSON object such as"),
            (br#"not json"#, None, "expected a JSON object such as"),
        ] {
            let (found, detail) = field_of(*parse(body).unwrap_err());
            let body = String::from_utf8_lossy(body);
            assert_eq!(found.as_deref(), field, "{body}");
            assert!(detail.contains(says), "{body}: {detail}");
        }
    }
}
