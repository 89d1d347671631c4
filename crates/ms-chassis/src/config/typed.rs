//! A loaded configuration: the typed sections, the whole merged tree with the origin of
//! each value, and which values were decrypted, with the views of it that may be shown.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diff::{self, is_under};
use super::error::ConfigError;
use super::rules::Schema;
use super::secrets::{self, Secrets};
use super::source::{self, Layered};
use super::typing::deserialize_at;
use super::{inherit, view};

/// A loaded configuration: the typed sections `S` plus the whole merged tree. A service's is
/// [`ms_chassis::Config`](crate::Config), typed as [`ChassisConfig`](crate::ChassisConfig).
///
/// `Debug` shows the [redacted](Config::redacted) tree, so logging a `Config` (or a
/// `Service`) never shows a decrypted value.
pub struct Config<S> {
    pub(super) sections: Arc<S>,
    pub(super) layered: Arc<Layered>,
    pub(super) secrets: Arc<Secrets>,
    pub(super) profile: Option<String>,
}

/// A cheap clone: the parts are shared.
impl<S> Clone for Config<S> {
    fn clone(&self) -> Self {
        Self {
            sections: Arc::clone(&self.sections),
            layered: Arc::clone(&self.layered),
            secrets: Arc::clone(&self.secrets),
            profile: self.profile.clone(),
        }
    }
}

impl<S: Schema> std::fmt::Debug for Config<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("profile", &self.profile)
            .field("secret_paths", &self.secrets.paths().collect::<Vec<_>>())
            .field("effective", &self.redacted())
            .finish_non_exhaustive()
    }
}

impl<S: Schema> Config<S> {
    /// The typed sections: for a service, the chassis's own ([`ChassisConfig`](crate::ChassisConfig)).
    pub fn chassis(&self) -> &S {
        &self.sections
    }

    /// The active profile, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Reads the user's `app` section as `T`. A missing section reads as an empty mapping,
    /// so a `#[serde(default)]` type works without one.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct App { greeting: String }
    /// let cfg = ms_chassis::config::ConfigLoader::new()
    ///     .yaml("app: { greeting: hi }")
    ///     .load()?;
    /// assert_eq!(cfg.app::<App>()?.greeting, "hi");
    /// # Ok::<(), ms_chassis::config::ConfigError>(())
    /// ```
    pub fn app<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.get("app")
    }

    /// Reads any dotted key path (`server.limits`, `app.db`) as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        let mut node = &self.layered.value;
        for part in key.split('.') {
            node = node.get(part).unwrap_or(&Value::Null);
        }
        let empty = Value::Object(Default::default());
        let node = if node.is_null() { &empty } else { node };
        deserialize_at(node, key, &self.layered).map_err(|e| {
            let mut diagnostics = e.diagnostics().to_vec();
            self.secrets.scrub(&mut diagnostics, &self.layered.value);
            ConfigError::from_diagnostics(diagnostics)
        })
    }

    /// Where the value at `key` came from: `config.yaml:12`, `environment variable …`,
    /// `embedded defaults`. A decrypted value has the origin of its `enc_` key.
    pub fn origin_of(&self, key: &str) -> Option<String> {
        self.layered.origin_of(key).map(ToString::to_string)
    }

    /// The dotted paths of the values decrypted from `enc_` keys, without the prefix
    /// (`app.db.password`), sorted.
    pub fn secret_paths(&self) -> impl Iterator<Item = &str> {
        self.secrets.paths()
    }

    /// The effective merged tree (defaults and every layer), as it may be shown: every
    /// decrypted value, every non-null value under a key whose name contains password,
    /// passwd, secret, token, key, credential, authorization or cookie, or has the word
    /// auth (any case: `x-api-key`, `set-cookie`, `proxy-authorization`), and every value
    /// in a mapping of headers (`tracing.headers`, `*_headers`) is replaced by
    /// `"<redacted>"`, and so is the password of a URL. A `null` stays `null`: it shows
    /// that nothing is set, and hides nothing.
    ///
    /// ```
    /// let cfg = ms_chassis::config::ConfigLoader::new()
    ///     .yaml("tracing: { headers: { x-honeycomb-team: abc } }\napp: { x_api_key: k }")
    ///     .load()?;
    /// let shown = cfg.redacted();
    /// assert_eq!(shown["tracing"]["headers"]["x-honeycomb-team"], "<redacted>");
    /// assert_eq!(shown["app"]["x_api_key"], "<redacted>");
    /// # Ok::<(), ms_chassis::config::ConfigError>(())
    /// ```
    ///
    /// It shows every key in effect, defaults included: a `clients.<name>` block (an entry
    /// of any [inheriting](Schema::INHERITING) mapping) also lists the keys it leaves out,
    /// at their defaults (the embedded defaults have no clients to hold them).
    pub fn redacted(&self) -> Value {
        self.redacted_with_origins().0
    }

    /// [`redacted`](Self::redacted), and the origin of each of its values by dotted path:
    /// its layer, or the embedded defaults for a client key that no layer sets.
    fn redacted_with_origins(&self) -> (Value, impl Fn(&str) -> Option<String> + '_) {
        let mut tree = self.layered.value.clone();
        // Each entry of an inheriting mapping (`clients.<name>`) completed by the keys it
        // leaves out, at their defaults; `added` holds their dotted paths.
        let typed = serde_json::to_value(&*self.sections).unwrap_or_default();
        let added = inherit::complete_entries(&mut tree, &typed, S::INHERITING);
        let origin = move |path: &str| {
            if added.iter().any(|a| is_under(path, a)) {
                Some(source::Origin::defaults().to_string())
            } else {
                self.origin_of(path)
            }
        };
        (secrets::redact(&tree, &self.secrets), origin)
    }

    /// [`redacted`](Self::redacted) as block YAML, each value followed by a comment naming
    /// the layer it came from:
    ///
    /// ```text
    /// server:
    ///   port: 9000            # environment variable MS__SERVER__PORT
    /// app:
    ///   db:
    ///     password: "<redacted>"  # config.yaml:7
    /// ```
    pub fn annotated_yaml(&self) -> String {
        let (tree, origin) = self.redacted_with_origins();
        view::annotated_yaml(&tree, &origin)
    }

    /// The layer every value of [`redacted`](Self::redacted) came from, by dotted path. A
    /// value is a scalar, an empty mapping, or a list of scalars (listed whole).
    pub fn leaf_origins(&self) -> BTreeMap<String, String> {
        let (tree, origin) = self.redacted_with_origins();
        view::leaf_origins(&tree, &origin)
    }

    /// The dotted key paths whose effective values differ from `older`'s (paths only, so
    /// that a changed secret can be reported without showing it), sorted.
    pub(crate) fn changed_since(&self, older: &Self) -> Vec<String> {
        diff::changed_keys(&older.layered.value, &self.layered.value)
    }
}
