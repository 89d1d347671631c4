//! What a typed section must say about itself for the loader to check it: the one shape of
//! a broken rule ([`Invalid`]), the collector that puts each under its section's key
//! ([`Rules`]), and the [`Schema`] a set of sections implements.
//!
//! Each part owns its section type and its rules; the loader only types the merged tree,
//! runs the rules and locates what they report. So `config` knows no part.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ConfigDiagnostic, ConfigError};

/// A value that breaks a rule: the dotted key it sits at and what was expected.
///
/// The key is relative to whatever was checked: `wait_in_open` from a breaker's own
/// config, `clients.books.breaker.wait_in_open` once the loader has put it in place.
///
/// ```
/// use ms_chassis::config::Invalid;
/// let e = Invalid::new("wait_in_open", "expected a duration above zero, such as 30s");
/// assert_eq!(
///     e.under("breaker").to_string(),
///     "breaker.wait_in_open: expected a duration above zero, such as 30s",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
#[non_exhaustive]
pub struct Invalid {
    /// The dotted key path of the offending value.
    pub key: String,
    /// What was expected and, where it may be shown, what was found.
    pub message: String,
}

impl Invalid {
    /// The value at `key` breaks a rule; `message` says what was expected.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from the enclosing section: under `breaker`, the key
    /// `wait_in_open` reads `breaker.wait_in_open`.
    #[must_use]
    pub fn under(mut self, parent: &str) -> Self {
        self.key = join(parent, &self.key);
        self
    }
}

/// Where a broken rule's value came from, for the loader's report.
impl Invalid {
    pub(super) fn located(self, layered: &super::source::Layered) -> ConfigDiagnostic {
        ConfigDiagnostic {
            location: layered.origin_of(&self.key).map(ToString::to_string),
            ..self.into()
        }
    }
}

/// A broken rule whose origin is not known (a config built in code).
impl From<Invalid> for ConfigDiagnostic {
    fn from(e: Invalid) -> Self {
        Self {
            location: None,
            key: (!e.key.is_empty()).then_some(e.key),
            message: e.message,
        }
    }
}

/// A broken rule whose origin is not known (a config built in code).
impl From<Invalid> for ConfigError {
    fn from(e: Invalid) -> Self {
        Self::from_diagnostics(vec![e.into()])
    }
}

fn join(parent: &str, key: &str) -> String {
    match (parent.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => parent.to_owned(),
        _ => format!("{parent}.{key}"),
    }
}

/// Collects the rules a section breaks, each under the section's key.
///
/// A section's rules take one, with keys relative to the section; [`section`](Self::section)
/// hands a nested section its own. A rule that compares its key with another skips when
/// the other was [`defaulted`](Self::defaulted) after a type error: it would judge the
/// default, not what was written.
pub struct Rules<'a> {
    prefix: String,
    found: &'a mut Vec<Invalid>,
    defaulted: &'a dyn Fn(&str) -> bool,
}

impl<'a> Rules<'a> {
    pub(crate) fn new(found: &'a mut Vec<Invalid>, defaulted: &'a dyn Fn(&str) -> bool) -> Self {
        Self {
            prefix: String::new(),
            found,
            defaulted,
        }
    }

    /// The value at `key` (relative to this section) breaks a rule.
    pub fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.found
            .push(Invalid::new(join(&self.prefix, key), message));
    }

    /// Every problem in `found`, each put under this section's key.
    pub fn extend(&mut self, found: impl IntoIterator<Item = Invalid>) {
        let prefix = &self.prefix;
        self.found
            .extend(found.into_iter().map(|e| e.under(prefix)));
    }

    /// Whether the value at `key` (relative to this section) was dropped for a type error,
    /// and so reads as its default.
    pub fn defaulted(&self, key: &str) -> bool {
        (self.defaulted)(&join(&self.prefix, key))
    }

    /// The rules of the nested section `key`.
    pub fn section(&mut self, key: &str) -> Rules<'_> {
        Rules {
            prefix: join(&self.prefix, key),
            found: self.found,
            defaulted: self.defaulted,
        }
    }
}

/// A set of typed sections the loader reads the merged tree into and checks: the chassis's
/// own is [`ChassisConfig`](crate::ChassisConfig).
///
/// Every field must have a default (`#[serde(default)]`), so that a value dropped for its
/// type error can be typed as its default and the rest still checked; and serializing the
/// sections must give back every key they know, which is how unknown keys are found.
pub trait Schema:
    Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Mappings whose entry named `default` holds what each sibling entry leaves out, such
    /// as `clients.default`. A sibling inherits each key it does not set (recursively),
    /// except those listed, and errors in an inherited value are reported once, at the
    /// `default` entry.
    const INHERITING: &'static [Inheriting] = &[];

    /// Rules that types alone cannot express. Keys are relative to the whole config.
    fn validate(&self, rules: &mut Rules<'_>);
}

/// A mapping whose `default` entry its siblings inherit from: see [`Schema::INHERITING`].
#[derive(Debug, Clone, Copy)]
pub struct Inheriting {
    /// The mapping's top-level key, such as `clients`.
    pub section: &'static str,
    /// Keys of the `default` entry that are never inherited, such as `url`.
    pub except: &'static [&'static str],
}

/// The entry of an [`Inheriting`] mapping that its siblings inherit from.
pub const DEFAULTS_ENTRY: &str = "default";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::config::ConfigLoader;

    /// A schema that is not the chassis's: the loader knows nothing of what it reads.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Shop {
        queues: BTreeMap<String, Queue>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Queue {
        name: Option<String>,
        size: u32,
    }

    impl Schema for Shop {
        const INHERITING: &'static [Inheriting] = &[Inheriting {
            section: "queues",
            except: &["name"],
        }];

        fn validate(&self, rules: &mut Rules<'_>) {
            let mut queues = rules.section("queues");
            for (key, q) in &self.queues {
                if q.size == 0 {
                    queues.section(key).fail("size", "expected at least 1");
                }
            }
        }
    }

    #[test]
    fn the_loader_types_inherits_and_checks_any_schema() {
        let shop = ConfigLoader::new()
            .yaml("queues: { default: { size: 8, name: x }, orders: { name: o } }")
            .load_as::<Shop>()
            .unwrap();
        let orders = &shop.chassis().queues["orders"];
        assert_eq!((orders.size, orders.name.as_deref()), (8, Some("o")));

        let e = ConfigLoader::new()
            .yaml("queues:\n  orders: { size: 0, colour: red }\n")
            .load_as::<Shop>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inline config:2: queues.orders.size: expected at least 1"),
            "{e}"
        );
        assert!(e.contains("queues.orders.colour: unknown key"), "{e}");
    }
}
