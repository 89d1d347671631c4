//! Inheritance from a mapping's `default` entry ([`Schema::INHERITING`](super::Schema)),
//! such as `clients.default`: each sibling gets the keys it leaves out, with the default's
//! origins, so errors and `config check --print` point at the line that set them.

use serde_json::{Map, Value};

use super::rules::{DEFAULTS_ENTRY, Inheriting};
use super::source::Layered;

/// Gives every sibling entry of each inheriting mapping each key of its `default` entry
/// that it does not set itself, recursively (an entry's own value, a list included,
/// replaces the default's). Returns the dotted paths added.
pub(super) fn inherit(layered: &mut Layered, inheriting: &[Inheriting]) -> Vec<String> {
    let mut added = Vec::new();
    for rule in inheriting {
        let section = rule.section;
        let Some(Value::Object(entries)) = layered.value.get_mut(section) else {
            continue;
        };
        let Some(Value::Object(mut defaults)) = entries.get(DEFAULTS_ENTRY).cloned() else {
            continue;
        };
        for key in rule.except {
            defaults.remove(*key);
        }
        let start = added.len();
        for (name, entry) in entries.iter_mut() {
            if name != DEFAULTS_ENTRY
                && let Value::Object(entry) = entry
            {
                fill_missing(
                    entry,
                    defaults.clone(),
                    &format!("{section}.{name}"),
                    &mut added,
                );
            }
        }
        let from = format!("{section}.{DEFAULTS_ENTRY}");
        for path in &added[start..] {
            // `<section>.<name>.<rest>` came from `<section>.default.<rest>`.
            let rest = path
                .strip_prefix(section)
                .and_then(|p| p.strip_prefix('.'))
                .and_then(|p| p.split_once('.'))
                .map_or("", |(_, rest)| rest);
            layered.copy_origins(&format!("{from}.{rest}"), path);
        }
    }
    added
}

/// Completes each entry of every inheriting mapping in `tree` with the keys it leaves
/// out, from the same entry of `typed` (the sections serialized: written values and
/// defaults), so a shown config lists every key in effect. Returns the dotted paths added.
pub(super) fn complete_entries(
    tree: &mut Value,
    typed: &Value,
    inheriting: &[Inheriting],
) -> Vec<String> {
    let mut added = Vec::new();
    for rule in inheriting {
        let section = rule.section;
        let (Some(Value::Object(entries)), Some(Value::Object(full))) =
            (tree.get_mut(section), typed.get(section))
        else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            if let (Some(Value::Object(full)), Value::Object(written)) = (full.get(name), entry) {
                fill_missing(
                    written,
                    full.clone(),
                    &format!("{section}.{name}"),
                    &mut added,
                );
            }
        }
    }
    added
}

/// Adds to `into` (at dotted `path`) every key of `from` it lacks, recursively, keeping
/// what `into` has; pushes the path of each key added onto `added`.
fn fill_missing(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    path: &str,
    added: &mut Vec<String>,
) {
    for (key, value) in from {
        let at = format!("{path}.{key}");
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
                added.push(at);
            }
            (Some(Value::Object(have)), Value::Object(more)) => {
                fill_missing(have, more, &at, added)
            }
            _ => {}
        }
    }
}
