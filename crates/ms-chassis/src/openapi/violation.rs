//! Violations of the contract, and the 400 problem+json that lists every one of them.
//!
//! A client fixing a bad request wants the whole list at once, not one round trip per
//! mistake (Connexion reports only the first), so every check appends here and the answer
//! is built once at the end. Each entry says where (`query.limit`, `body/items/3/price`),
//! which rule, what was expected and what was found — the found value cut short, and
//! never shown for credentials or cookies.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::http::StatusCode;
use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Value, json};

use super::dialect::INTEGER_LITERAL;
use crate::server::Problem;

/// The kind of place a violation is in: the bounded `location` label of the failure
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Path,
    Query,
    Header,
    Cookie,
    Body,
    ContentType,
    Security,
    /// A response's status code (response validation only).
    Status,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Path,
        Kind::Query,
        Kind::Header,
        Kind::Cookie,
        Kind::Body,
        Kind::ContentType,
        Kind::Security,
        Kind::Status,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Path => "path",
            Kind::Query => "query",
            Kind::Header => "header",
            Kind::Cookie => "cookie",
            Kind::Body => "body",
            Kind::ContentType => "content_type",
            Kind::Security => "security",
            Kind::Status => "status",
        }
    }

    /// Whether the found value may be shown: never a cookie's.
    fn shows_values(self) -> bool {
        !matches!(self, Kind::Cookie | Kind::Security)
    }
}

/// How much of a found value is shown.
const FOUND_CHARS: usize = 64;

/// One violation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Violation {
    pub(crate) kind: Kind,
    pub(crate) location: String,
    pub(crate) keyword: Cow<'static, str>,
    pub(crate) message: String,
    pub(crate) expected: Option<String>,
    pub(crate) found: Option<String>,
}

/// The violations of one request (or response), at most `max` of them.
#[derive(Debug)]
pub(crate) struct Violations {
    pub(crate) list: Vec<Violation>,
    max: usize,
    /// More were found than kept.
    pub(crate) truncated: bool,
    /// An instance was too big for every violation in it to be listed.
    too_big_to_list: bool,
}

/// The most JSON values (every member and item counts) an instance may have for each of its
/// violations to be listed; a bigger one that breaks its schema gets its first only.
const LISTED_VALUES: usize = 16_384;

/// Whether `v` holds more than `budget` values, itself included; stops counting there.
fn more_values_than(v: &Value, budget: usize) -> bool {
    let mut left = budget;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let Some(l) = left.checked_sub(1) else {
            return true;
        };
        left = l;
        let n = match v {
            Value::Array(items) => items.len(),
            Value::Object(members) => members.len(),
            _ => 0,
        };
        if n > left {
            return true;
        }
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(members) => stack.extend(members.values()),
            _ => {}
        }
    }
    false
}

impl Violations {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            list: Vec::new(),
            max: max.max(1),
            truncated: false,
            too_big_to_list: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether there is room for more.
    pub(crate) fn room(&self) -> usize {
        self.max.saturating_sub(self.list.len())
    }

    pub(crate) fn push(&mut self, v: Violation) {
        if self.list.len() < self.max {
            self.list.push(v);
        } else {
            self.truncated = true;
        }
    }

    /// Drops the found values of the violations added since the list had `start` of them:
    /// they were a credential's.
    pub(crate) fn conceal_since(&mut self, start: usize) {
        for v in self.list.iter_mut().skip(start) {
            v.found = None;
        }
    }

    /// A violation with no schema behind it (a required parameter is missing, bad
    /// percent-encoding…).
    pub(crate) fn add(
        &mut self,
        kind: Kind,
        location: impl Into<String>,
        keyword: &'static str,
        message: impl Into<String>,
        expected: Option<String>,
        found: Option<&str>,
    ) {
        let found = found.filter(|_| kind.shows_values()).map(truncate);
        self.push(Violation {
            kind,
            location: location.into(),
            keyword: Cow::Borrowed(keyword),
            message: message.into(),
            expected,
            found,
        });
    }

    /// The errors of `validator` on `instance`, under `location` (`query.ids`, `body`).
    /// Call only after `is_valid` said no: this is the slow path.
    pub(crate) fn schema_errors(
        &mut self,
        kind: Kind,
        location: &str,
        validator: &jsonschema::Validator,
        instance: &Value,
    ) {
        // `iter_errors` collects every error before it yields the first, each a few hundred
        // bytes: on a big instance that breaks its schema everywhere (a 2 MiB array of
        // bad strings) that is hundreds of MB. Past the budget, only the first is listed.
        // The instance itself is not one of its members and items.
        if more_values_than(instance, LISTED_VALUES + 1) {
            if let Err(e) = validator.validate(instance) {
                let v = from_schema_error(kind, location, &e);
                self.push(v);
            }
            self.truncated = true;
            self.too_big_to_list = true;
            return;
        }
        let room = self.room();
        for (n, e) in validator.iter_errors(instance).enumerate() {
            if n == room {
                self.truncated = true;
                break;
            }
            let v = from_schema_error(kind, location, &e);
            self.push(v);
        }
    }

    /// The kinds present, each once.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|k| self.list.iter().any(|v| v.kind == *k))
    }

    /// The problem listing every violation. Its `type` is `about:blank`, so its title is
    /// the status's phrase (RFC 9457 §4.2.1); what went wrong is in `detail` and `errors`.
    pub(crate) fn problem(&self, status: StatusCode) -> Problem {
        let errors: Vec<Value> = self.list.iter().map(Violation::to_json).collect();
        let detail = if self.too_big_to_list {
            format!(
                "the request breaks the API contract; a value of more than {LISTED_VALUES} \
                 members and items is checked only up to its first violation, so {} listed",
                if self.list.len() == 1 {
                    "1 is"
                } else {
                    "these are"
                }
            )
        } else if self.truncated {
            format!(
                "the request breaks the API contract in more than {} ways; the first {} are listed",
                self.list.len(),
                self.list.len()
            )
        } else if self.list.len() == 1 {
            "the request breaks the API contract in 1 way".to_owned()
        } else {
            format!(
                "the request breaks the API contract in {} ways",
                self.list.len()
            )
        };
        let mut p = Problem::new(status)
            .with_detail(detail)
            .with_extension("errors", errors);
        if self.truncated {
            p = p.with_extension("truncated", true);
        }
        p
    }
}

impl Violation {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "location": self.location,
            "keyword": self.keyword,
            "message": self.message,
        });
        if let Some(e) = &self.expected {
            v["expected"] = Value::String(e.clone());
        }
        if let Some(f) = &self.found {
            v["found"] = Value::String(f.clone());
        }
        v
    }
}

/// `s` cut to [`FOUND_CHARS`] characters, with `…` when cut.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(FOUND_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A JSON value as found, cut short: a string as itself, anything else as JSON, and a big
/// container only by its shape (never serialized whole).
fn found_value(v: &Value) -> String {
    match v {
        Value::String(s) => truncate(s),
        Value::Array(a) if a.len() > 8 => format!("an array of {} items", a.len()),
        Value::Object(o) if o.len() > 8 => format!("an object of {} members", o.len()),
        other => {
            let mut s = String::new();
            let _ = write!(s, "{other}");
            truncate(&s)
        }
    }
}

fn types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn value_text(v: &Value) -> String {
    truncate(&v.to_string())
}

/// One `jsonschema` error as a violation: its own message, written here so that it never
/// echoes a whole (possibly huge) instance.
fn from_schema_error(kind: Kind, location: &str, e: &ValidationError<'_>) -> Violation {
    let pointer = e.instance_path().as_str();
    let location = match kind {
        Kind::Body => format!("body{pointer}"),
        _ => format!("{location}{pointer}"),
    };
    use ValidationErrorKind as K;
    let (message, expected): (Cow<'static, str>, Option<String>) = match e.kind() {
        K::Type { kind } => ("has the wrong type".into(), Some(types(kind))),
        K::Required { property } => (
            format!("is missing the required property {property}").into(),
            Some(format!("property {property}")),
        ),
        K::AdditionalProperties { unexpected } => (
            format!(
                "has properties the schema does not allow: {}",
                truncate(&unexpected.join(", "))
            )
            .into(),
            Some("no additional properties".into()),
        ),
        K::Minimum { limit } => ("is below the minimum".into(), Some(format!(">= {limit}"))),
        K::Maximum { limit } => ("is above the maximum".into(), Some(format!("<= {limit}"))),
        K::ExclusiveMinimum { limit } => {
            ("is not above the exclusive minimum".into(), Some(format!("> {limit}")))
        }
        K::ExclusiveMaximum { limit } => {
            ("is not below the exclusive maximum".into(), Some(format!("< {limit}")))
        }
        K::MinLength { limit } => (
            "is too short".into(),
            Some(format!("at least {limit} characters")),
        ),
        K::MaxLength { limit } => (
            "is too long".into(),
            Some(format!("at most {limit} characters")),
        ),
        K::MinItems { limit } => ("has too few items".into(), Some(format!("at least {limit} items"))),
        K::MaxItems { limit } => ("has too many items".into(), Some(format!("at most {limit} items"))),
        K::MinProperties { limit } => (
            "has too few properties".into(),
            Some(format!("at least {limit} properties")),
        ),
        K::MaxProperties { limit } => (
            "has too many properties".into(),
            Some(format!("at most {limit} properties")),
        ),
        K::Pattern { pattern } => (
            "does not match the pattern".into(),
            Some(format!("a match of {}", truncate(pattern))),
        ),
        K::Format { format } => (
            format!("is not a valid {format}").into(),
            Some(format.clone()),
        ),
        K::Enum { options } => ("is not one of the allowed values".into(), Some(value_text(options))),
        K::Constant { expected_value } => {
            ("is not the required value".into(), Some(value_text(expected_value)))
        }
        K::MultipleOf { multiple_of } => (
            "is not a multiple of the step".into(),
            Some(format!("a multiple of {multiple_of}")),
        ),
        K::UniqueItems => ("has duplicate items".into(), Some("unique items".into())),
        K::FalseSchema => (
            "is not allowed here (a readOnly property in a request, or a writeOnly one in a response)"
                .into(),
            None,
        ),
        K::OneOfNotValid { .. } => ("matches none of the oneOf schemas".into(), None),
        K::OneOfMultipleValid { .. } => ("matches more than one of the oneOf schemas".into(), None),
        K::AnyOf { .. } => ("matches none of the anyOf schemas".into(), None),
        K::Not { .. } => ("matches a schema it must not match".into(), None),
        K::Contains => ("contains no item matching the schema".into(), None),
        K::UnevaluatedProperties { unexpected } | K::UnevaluatedItems { unexpected } => (
            format!("has unevaluated members: {}", truncate(&unexpected.join(", "))).into(),
            None,
        ),
        K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            ("could not be checked against the pattern".into(), None)
        }
        // 3.0's draft-4 integer: reported as the type error it is.
        K::Custom { keyword, .. } if keyword == INTEGER_LITERAL => {
            ("has the wrong type".into(), Some("integer".into()))
        }
        _ => {
            let mut m = e.to_string();
            m = truncate(&m);
            (m.into(), None)
        }
    };
    let found = kind.shows_values().then(|| found_value(e.instance()));
    let keyword = match e.kind().keyword() {
        INTEGER_LITERAL => "type",
        other => other,
    };
    Violation {
        kind,
        location,
        keyword: Cow::Owned(keyword.to_owned()),
        message: message.into_owned(),
        expected,
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_listed_up_to_the_cap() {
        let v = jsonschema::validator_for(
            &json!({"type": "array", "items": {"type": "string", "pattern": "^a"}}),
        )
        .unwrap();
        let instance = Value::Array((0..100).map(|i| json!(format!("b{i}"))).collect());
        let mut all = Violations::new(10);
        all.schema_errors(Kind::Body, "body", &v, &instance);
        assert_eq!(all.list.len(), 10);
        assert!(all.truncated);
        assert_eq!(all.list[3].location, "body/3");
        assert_eq!(all.list[3].keyword, "pattern");
        assert_eq!(all.list[3].found.as_deref(), Some("b3"));
        let p = all.problem(StatusCode::BAD_REQUEST).to_json();
        assert_eq!(p["errors"].as_array().unwrap().len(), 10);
        assert_eq!(p["truncated"], true);
        assert_eq!(
            (p["type"].as_str(), p["title"].as_str()),
            (Some("about:blank"), Some("Bad Request")),
            "about:blank has the status phrase for its title (RFC 9457)"
        );
    }

    #[test]
    fn a_value_too_big_to_list_gets_its_first_violation_only() {
        let v = jsonschema::validator_for(
            &json!({"type": "array", "items": {"type": "string", "pattern": "^a"}}),
        )
        .unwrap();
        let at_budget = Value::Array(vec![json!("b"); LISTED_VALUES]);
        assert!(!more_values_than(&at_budget, LISTED_VALUES + 1));
        let mut all = Violations::new(100);
        all.schema_errors(Kind::Body, "body", &v, &at_budget);
        assert_eq!(all.list.len(), 100, "listed up to max_errors");
        assert!(!all.too_big_to_list);

        let over = Value::Array(vec![json!("b"); LISTED_VALUES + 1]);
        assert!(more_values_than(&over, LISTED_VALUES + 1));
        let nested =
            json!({"a": [[{"b": vec![1; LISTED_VALUES / 2]}], vec![2; LISTED_VALUES / 2]]});
        assert!(
            more_values_than(&nested, LISTED_VALUES + 1),
            "members of members count"
        );
        let mut all = Violations::new(100);
        all.schema_errors(Kind::Body, "body", &v, &over);
        assert_eq!(all.list.len(), 1);
        assert_eq!(all.list[0].location, "body/0");
        assert!(all.truncated);
        let p = all.problem(StatusCode::BAD_REQUEST).to_json();
        assert_eq!(p["truncated"], true);
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("first violation, so 1 is listed"),
            "{detail}"
        );
    }

    #[test]
    fn a_concealed_violation_shows_no_value() {
        let mut all = Violations::new(10);
        all.add(
            Kind::Header,
            "header.a",
            "pattern",
            "m",
            None,
            Some("shown"),
        );
        all.add(
            Kind::Header,
            "header.key",
            "pattern",
            "m",
            None,
            Some("k-secret"),
        );
        all.conceal_since(1);
        assert_eq!(all.list[0].found.as_deref(), Some("shown"));
        assert_eq!(all.list[1].found, None);
    }

    #[test]
    fn found_values_are_cut_and_never_shown_for_cookies() {
        let long = "x".repeat(500);
        let mut all = Violations::new(10);
        all.add(
            Kind::Query,
            "query.q",
            "maxLength",
            "too long",
            None,
            Some(&long),
        );
        all.add(
            Kind::Cookie,
            "cookie.session",
            "pattern",
            "bad",
            None,
            Some("secret"),
        );
        assert_eq!(
            all.list[0].found.as_ref().unwrap().chars().count(),
            FOUND_CHARS + 1
        );
        assert_eq!(all.list[1].found, None);
    }
}
