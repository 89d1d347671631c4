//! Views of the effective config for people: the merged tree with secrets redacted, and the
//! layer every value came from.
//!
//! Operators ask two questions of a running config: "what is it?" and "who set that?". Both
//! `ms-chassis config check --print` and the admin config endpoint answer with the same
//! views, built here from the redacted tree so that no view can show a secret.

use std::borrow::Cow;
use std::collections::BTreeMap;

use saphyr::Scalar;
use serde_json::{Map, Value};

/// A value shown on one line: a scalar, an empty mapping, or a list of scalars.
fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.iter().all(|i| !i.is_object() && !i.is_array()),
        _ => true,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Every one-line value of `tree` (see [`is_leaf`]) by dotted path, with `origin` of it.
pub(crate) fn leaf_origins(
    tree: &Value,
    origin: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    fn walk(
        v: &Value,
        path: &str,
        origin: &dyn Fn(&str) -> Option<String>,
        out: &mut BTreeMap<String, String>,
    ) {
        if is_leaf(v) && !path.is_empty() {
            out.insert(path.to_owned(), origin(path).unwrap_or_default());
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    walk(child, &join(path, k), origin, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), origin, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(tree, "", origin, &mut out);
    out
}

/// `tree` as block YAML, each one-line value followed by `# <origin>`.
pub(crate) fn annotated_yaml(tree: &Value, origin: &dyn Fn(&str) -> Option<String>) -> String {
    let mut lines = Vec::new();
    if let Value::Object(map) = tree {
        let mut w = Writer {
            origin,
            lines: &mut lines,
        };
        w.map(map, "", 0, None);
    }
    const MAX_COLUMN: usize = 56;
    let column = lines
        .iter()
        .filter(|(_, comment)| comment.is_some())
        .map(|(text, _)| text.chars().count())
        .filter(|&n| n <= MAX_COLUMN)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (text, comment) in lines {
        out.push_str(&text);
        if let Some(comment) = comment {
            let pad = column.saturating_sub(text.chars().count()) + 2;
            out.push_str(&" ".repeat(pad));
            out.push_str("# ");
            out.push_str(&comment);
        }
        out.push('\n');
    }
    out
}

struct Writer<'a> {
    origin: &'a dyn Fn(&str) -> Option<String>,
    lines: &'a mut Vec<(String, Option<String>)>,
}

impl Writer<'_> {
    fn leaf(&mut self, text: String, path: &str) {
        let comment = (self.origin)(path).filter(|o| !o.is_empty());
        self.lines.push((text, comment));
    }

    /// A mapping at `indent`; its first line starts with `first` instead (`- ` of a list item).
    fn map(&mut self, map: &Map<String, Value>, path: &str, indent: usize, first: Option<String>) {
        let mut first = first;
        for (key, value) in map {
            let start = first.take().unwrap_or_else(|| "  ".repeat(indent));
            let p = join(path, key);
            let key = scalar_text(&Value::String(key.clone()));
            if is_leaf(value) {
                self.leaf(format!("{start}{key}: {}", flow(value)), &p);
                continue;
            }
            self.lines.push((format!("{start}{key}:"), None));
            match value {
                Value::Object(child) => self.map(child, &p, indent + 1, None),
                Value::Array(items) => self.seq(items, &p, indent + 1),
                _ => unreachable!("scalars are leaves"),
            }
        }
    }

    fn seq(&mut self, items: &[Value], path: &str, indent: usize) {
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let dash = format!("{}- ", "  ".repeat(indent));
            match item {
                Value::Object(map) if !map.is_empty() => self.map(map, &p, indent + 1, Some(dash)),
                // A list of lists: JSON is valid YAML flow.
                Value::Array(_) if !is_leaf(item) => self.leaf(format!("{dash}{item}"), &p),
                _ => self.leaf(format!("{dash}{}", flow(item)), &p),
            }
        }
    }
}

/// A one-line value in YAML.
fn flow(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(scalar_text).collect();
            format!("[{}]", items.join(", "))
        }
        _ => scalar_text(v),
    }
}

/// A scalar in YAML: plain when that reads back as the same string, else double-quoted
/// (a JSON string is a valid YAML double-quoted scalar).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) if plain_is_safe(s) => s.clone(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

fn plain_is_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-+:@".contains(c))
        && !s.ends_with(':')
        && matches!(Scalar::parse_from_cow(Cow::Borrowed(s)), Scalar::String(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::{Source, parse_yaml};

    #[test]
    fn annotated_yaml_reads_back_as_the_same_tree() {
        let tree = serde_json::json!({
            "a": {"b": 1, "c": "30s", "d": "true", "e": "<redacted>", "f": null, "g": {},
                  "h": ["x", "y z"], "url": "http://127.0.0.1:4317", "n": "1.5", "colon": "a:"},
            "list": [{"k": "v", "m": 2}, "plain", [[1]]],
            "empty": [],
        });
        let yaml = annotated_yaml(&tree, &|p| Some(format!("origin of {p}")));
        let back = parse_yaml(&yaml, Source::Inline).unwrap();
        assert_eq!(back.value, tree, "{yaml}");
        assert!(yaml.contains("# origin of a.b\n"), "{yaml}");
        assert!(yaml.contains("  - k: v"), "{yaml}");
    }

    #[test]
    fn leaves_are_one_line_values() {
        let tree = serde_json::json!({"a": {"b": [1, 2], "c": {}}, "l": [{"k": 1}]});
        let leaves = leaf_origins(&tree, &|_| Some("here".into()));
        assert_eq!(leaves.keys().collect::<Vec<_>>(), ["a.b", "a.c", "l[0].k"]);
    }
}
