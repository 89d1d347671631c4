//! Serde adapters for durations in resilience settings, written like the rest of the config:
//! `30s`, `250ms`, `5m`; a bare `0` means zero. (The same rules as `config::values`, whose
//! helpers are private to the config module.)

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

fn parse(v: &serde_json::Value) -> Option<Duration> {
    match v {
        serde_json::Value::String(s) if s.trim() == "0" => Some(Duration::ZERO),
        serde_json::Value::String(s) => humantime::parse_duration(s.trim()).ok(),
        serde_json::Value::Number(n) if n.as_u64() == Some(0) => Some(Duration::ZERO),
        _ => None,
    }
}

fn invalid<E: de::Error>(v: &serde_json::Value) -> E {
    let found = match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    E::custom(format!(
        "expected a duration such as 30s, 250ms or 5m, found {found}"
    ))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    parse(&v).ok_or_else(|| invalid(&v))
}

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    humantime::format_duration(*d).to_string().serialize(s)
}

/// The same, for an optional duration: `null` is `None`.
pub(crate) mod option {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        parse(&v).map(Some).ok_or_else(|| invalid(&v))
    }

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
