//! Which keys differ between two effective config trees.
//!
//! A reload reports what changed as dotted key paths, never as values, so that the report
//! can be logged and returned by the admin endpoint even when a secret changed. Paths are as
//! precise as the trees allow: a scalar or a list is one key (`tracing.propagation`), and a
//! section that appears or disappears is listed by its leaves (`server.management.port`), so
//! that a subscriber to `app.greeting` notices when the whole `app` section first appears.

use serde_json::Value;

/// The dotted paths at which `old` and `new` differ, sorted.
pub(crate) fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(old, new, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// Whether `inner` is `outer` or lies under it (`app` holds `app.db.user` and `app.list[0]`).
pub(crate) fn is_under(inner: &str, outer: &str) -> bool {
    outer.is_empty()
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn walk(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !o.is_empty() || !n.is_empty() => {
            for (k, ov) in o {
                match n.get(k) {
                    Some(nv) => walk(ov, nv, &join(path, k), out),
                    None => leaves(ov, &join(path, k), out),
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    leaves(nv, &join(path, k), out);
                }
            }
        }
        (o, n) if o == n => {}
        (o, n) => {
            let before = out.len();
            for side in [o, n] {
                if side.is_object() {
                    leaves(side, path, out);
                }
            }
            if out.len() == before {
                out.push(path.to_owned());
            }
        }
    }
}

/// Every one-line value under `v`: a scalar, a list, or an empty mapping.
fn leaves(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                leaves(child, &join(path, k), out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_lists_are_one_key_each() {
        let old = json!({"server": {"port": 80, "host": "::"}, "tracing": {"propagation": ["a"]}});
        let new =
            json!({"server": {"port": 81, "host": "::"}, "tracing": {"propagation": ["a", "b"]}});
        assert_eq!(
            changed_keys(&old, &new),
            ["server.port", "tracing.propagation"]
        );
        assert!(changed_keys(&old, &old).is_empty());
    }

    #[test]
    fn a_section_that_appears_is_listed_by_its_leaves() {
        let old = json!({"app": null, "server": {"management": null}});
        let new = json!({"app": {"greeting": "hi", "db": {"user": "u"}},
                         "server": {"management": {"port": 1, "host": "::1"}}});
        assert_eq!(
            changed_keys(&old, &new),
            [
                "app.db.user",
                "app.greeting",
                "server.management.host",
                "server.management.port"
            ]
        );
        // And the reverse: it disappears.
        assert_eq!(changed_keys(&new, &old).len(), 4);
    }

    #[test]
    fn keys_that_appear_or_go_are_changes() {
        let old = json!({"app": {"a": 1, "gone": {"x": 1}}});
        let new = json!({"app": {"a": 1, "new": 2}});
        assert_eq!(changed_keys(&old, &new), ["app.gone.x", "app.new"]);
    }

    #[test]
    fn under_means_the_key_or_below_it() {
        assert!(is_under("app.greeting", "app"));
        assert!(is_under("app", "app"));
        assert!(is_under("app.list[0]", "app.list"));
        assert!(!is_under("application", "app"));
        assert!(!is_under("app", "app.greeting"));
        assert!(is_under("anything", ""));
    }
}
