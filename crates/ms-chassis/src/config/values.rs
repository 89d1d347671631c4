//! Serde adapters for the human-written value types in config: durations (`30s`, `250ms`),
//! byte sizes (`2MiB`) and ports. Each error message says what was expected and what was found.

use std::time::Duration;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

fn describe(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `30s`, `250ms`, `5m`, `1h 30m`; a bare `0` means zero; at most [`MAX_DURATION`].
pub(crate) mod duration {
    use super::*;

    /// The longest duration config accepts: 365 days. Anything longer is a typo or an
    /// attempt to mean "never", and would overflow the deadlines computed from it
    /// (`Instant + d` panics); settings that can be off document `0` for that.
    pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    pub(crate) fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        if s == "0" {
            return Some(Duration::ZERO);
        }
        humantime::parse_duration(s).ok()
    }

    fn from_value<E: de::Error>(v: &serde_json::Value) -> Result<Duration, E> {
        let parsed = match v {
            serde_json::Value::String(s) => parse(s),
            serde_json::Value::Number(n) if n.as_u64() == Some(0) => Some(Duration::ZERO),
            _ => None,
        };
        match parsed {
            Some(d) if d <= MAX_DURATION => Ok(d),
            Some(_) => Err(E::custom(format!(
                "expected a duration of at most 365 days, found {}",
                describe(v)
            ))),
            None => Err(E::custom(format!(
                "expected a duration such as 30s, 250ms or 5m, found {}",
                describe(v)
            ))),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_value(&serde_json::Value::deserialize(d)?)
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
            from_value(&v).map(Some)
        }

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// `2MiB`, `512KiB`, `1000000`.
pub(crate) mod byte_size {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let parsed = match &v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => {
                s.trim().parse::<bytesize::ByteSize>().ok().map(|b| b.0)
            }
            _ => None,
        };
        parsed.ok_or_else(|| {
            de::Error::custom(format!(
                "expected a size such as 2MiB, 512KiB or a number of bytes, found {}",
                describe(&v)
            ))
        })
    }

    /// Exact, so that it reads back as the same number: `2MiB`, `1536KiB`, `1000000`.
    /// (A rounded `2.0M` would read back as 2,000,000 bytes.)
    pub(crate) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        match UNITS
            .iter()
            .find(|(size, _)| *n != 0 && n.is_multiple_of(*size))
        {
            Some((size, unit)) => format!("{}{unit}", n / size).serialize(s),
            None => n.serialize(s),
        }
    }
}

/// An IP address to bind. Host names are not resolved: binding must not depend on DNS.
pub(crate) mod ip {
    use std::net::IpAddr;

    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        v.as_str()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "expected an IP address such as 127.0.0.1, 0.0.0.0 or ::, found {} \
                     (host names are not resolved; write 127.0.0.1 for localhost)",
                    describe(&v)
                ))
            })
    }

    pub(crate) fn serialize<S: Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
        ip.to_string().serialize(s)
    }
}

/// A TCP port. `0` asks the OS for a free port (useful in tests); the bound port is logged.
pub(crate) mod port {
    use super::*;

    struct PortVisitor;

    const EXPECTED: &str = "an integer 0-65535";

    impl Visitor<'_> for PortVisitor {
        type Value = u16;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("expected {EXPECTED}, found {v}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("expected {EXPECTED}, found {v}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u16, E> {
            Err(E::invalid_type(Unexpected::Float(v), &self))
                .map_err(|_: E| E::custom(format!("expected {EXPECTED}, found {v}")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
            v.parse::<u16>()
                .map_err(|_| E::custom(format!("expected {EXPECTED}, found {v:?}")))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<u16, E> {
            Err(E::custom(format!("expected {EXPECTED}, found {v}")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<u16, E> {
            Err(E::custom(format!("expected {EXPECTED}, found null")))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        d.deserialize_any(PortVisitor)
    }

    pub(crate) fn serialize<S: Serializer>(p: &u16, s: S) -> Result<S::Ok, S::Error> {
        p.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(with = "duration")]
        d: Duration,
    }

    #[derive(Serialize, Deserialize, Debug)]
    struct B {
        #[serde(with = "byte_size")]
        b: u64,
    }

    #[test]
    fn byte_sizes_round_trip_exactly() {
        for (n, shown) in [
            (2 * 1024 * 1024, json!("2MiB")),
            (1536 * 1024, json!("1536KiB")),
            (1_000_000, json!(1_000_000)),
            (0, json!(0)),
        ] {
            let v = serde_json::to_value(B { b: n }).unwrap();
            assert_eq!(v["b"], shown);
            assert_eq!(serde_json::from_value::<B>(v).unwrap().b, n);
        }
    }

    #[test]
    fn absurd_durations_are_errors_not_overflows() {
        let t: T = serde_json::from_value(json!({"d": "365days"})).unwrap();
        assert_eq!(t.d, duration::MAX_DURATION);
        for absurd in ["366days", "1000years", "100000000years"] {
            let e = serde_json::from_value::<T>(json!({ "d": absurd })).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("expected a duration of at most 365 days, found"),
                "{absurd}: {e}"
            );
        }
    }

    #[test]
    fn durations_parse_and_reject_parsecs() {
        let t: T = serde_json::from_value(json!({"d": "250ms"})).unwrap();
        assert_eq!(t.d, Duration::from_millis(250));
        let e = serde_json::from_value::<T>(json!({"d": "30 parsecs"})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("expected a duration such as 30s, 250ms or 5m, found \"30 parsecs\""),
            "{e}"
        );
    }
}
