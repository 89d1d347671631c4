//! Reading the merged tree into the typed sections, with every type error and every
//! unknown key located, rather than only serde's first error.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ConfigDiagnostic, ConfigError};
use super::rules::Schema;
use super::source::Layered;

/// The sections typed, with every type error rather than only serde's first.
pub(super) struct Typed<S> {
    pub(super) sections: S,
    pub(super) errors: Vec<ConfigDiagnostic>,
    /// Keys dropped because of a type error, so typed as their defaults; `""` for all.
    dropped: Vec<String>,
}

impl<S> Typed<S> {
    /// Whether the value at `key` was typed as its default after a type error.
    pub(super) fn defaulted(&self, key: &str) -> bool {
        self.dropped.iter().any(|p| {
            key.strip_prefix(p.as_str())
                .is_some_and(|rest| p.is_empty() || rest.is_empty() || rest.starts_with('.'))
        })
    }
}

/// Types the merged tree; on a type error, records it, drops the offending key (every
/// field has a default) and tries again, so each bad value is reported once.
pub(super) fn type_collecting<S: Schema>(layered: &Layered) -> Typed<S> {
    const MAX_ERRORS: usize = 64;
    let mut input = layered.value.clone();
    let mut errors = Vec::new();
    let mut dropped = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, S>(&input) {
            Ok(sections) => {
                return Typed {
                    sections,
                    errors,
                    dropped,
                };
            }
            Err(e) => e,
        };
        errors.push(located(&error, "", layered));
        // Drop the mapping entry that holds the bad value: a whole list for a bad item.
        let mut keys = Vec::new();
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => keys.push(key.clone()),
                _ => break,
            }
        }
        let removed = keys.split_last().is_some_and(|(last, parents)| {
            let mut node = &mut input;
            for k in parents {
                match node.get_mut(k.as_str()) {
                    Some(child) => node = child,
                    None => return false,
                }
            }
            node.as_object_mut()
                .is_some_and(|map| map.remove(last.as_str()).is_some())
        });
        if !removed || errors.len() >= MAX_ERRORS {
            // Cannot narrow it down further: check the rest against the defaults.
            return Typed {
                sections: S::default(),
                errors,
                dropped: vec![String::new()],
            };
        }
        dropped.push(keys.join("."));
    }
}

pub(super) fn deserialize_at<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
    layered: &Layered,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| ConfigError::from_diagnostics(vec![located(&e, prefix, layered)]))
}

/// A serde error with its key path (under `prefix`) and the line it came from.
pub(super) fn located(
    e: &serde_path_to_error::Error<serde_json::Error>,
    prefix: &str,
    layered: &Layered,
) -> ConfigDiagnostic {
    let mut key = prefix.to_owned();
    for seg in e.path().iter() {
        use serde_path_to_error::Segment;
        match seg {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {}
        }
    }
    ConfigDiagnostic {
        location: layered.origin_of(&key).map(ToString::to_string),
        key: (!key.is_empty()).then_some(key),
        message: reword(&e.inner().to_string()),
    }
}

/// serde says "invalid type: string \"x\", expected a boolean"; we say what was expected first.
pub(super) fn reword(msg: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(lead)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return format!("expected {expected}, found {found}");
        }
    }
    msg.to_owned()
}

/// Keys present in the input but absent once the typed config is serialized back: the
/// serde model ignored them, so they are typos or misplaced.
pub(super) fn unknown_keys<S: Schema>(layered: &Layered, sections: &S) -> Vec<ConfigDiagnostic> {
    let known = serde_json::to_value(sections).expect("config always serializes");
    let mut out = Vec::new();
    walk_unknown(&layered.value, &known, "", layered, &mut out);
    out
}

fn walk_unknown(
    input: &Value,
    known: &Value,
    path: &str,
    layered: &Layered,
    out: &mut Vec<ConfigDiagnostic>,
) {
    let (Value::Object(input), Value::Object(known)) = (input, known) else {
        return;
    };
    for (key, value) in input {
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            Some(k) => walk_unknown(value, k, &p, layered, out),
            None => {
                let suggestion = known
                    .keys()
                    .map(|k| (strsim::jaro_winkler(k, key), k))
                    .filter(|(score, _)| *score >= 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                let valid: Vec<&str> = known.keys().map(String::as_str).collect();
                let scope = if path.is_empty() {
                    "top-level section".to_owned()
                } else {
                    format!("key in `{path}`")
                };
                out.push(ConfigDiagnostic {
                    location: layered.origin_of(&p).map(ToString::to_string),
                    key: Some(p.clone()),
                    message: format!("unknown {scope}{suggestion} (valid: {})", valid.join(", ")),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reword_puts_expectation_first() {
        assert_eq!(
            reword("invalid type: string \"x\", expected a boolean"),
            "expected a boolean, found string \"x\""
        );
    }
}
