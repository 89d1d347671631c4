//! Externalized, layered, typed configuration.
//!
//! Layers, lowest precedence first: embedded defaults, `config.yaml` (path from
//! `MS_CONFIG_FILE`, a file or a directory; `./config.yaml` otherwise),
//! `config.<profile>.yaml` beside it (profile from `MS_PROFILE`), YAML given in code, and
//! environment variables (`MS__SERVER__PORT=9000` sets `server.port`). An `MS_*` variable
//! that is not valid UTF-8 is an error naming it (its value is never shown); other
//! variables that are not UTF-8 are ignored, as the chassis reads none of them.
//!
//! The chassis sections are typed ([`ChassisConfig`]); an unknown key in them is an error
//! with a "did you mean". The user's `app` section is read with [`Config::app`] as the
//! user's own `serde` type. Every error names the file and line (or env var), the key path
//! and what was expected:
//!
//! ```text
//! config.yaml:3: server.port: expected an integer 0-65535, found "eighty"
//! ```
//!
//! A key starting with `enc_` (any case, any depth, any layer) holds a Fernet token, as in
//! PyMS: once the layers are merged it is decrypted with the key file (`MS_KEY_FILE`, else
//! `./key.key`) and exposed without the prefix, so `app.db.enc_password` is read as
//! `app.db.password`. See [`SecretKey`].
//!
//! Config is shown to people in several places (`ms-chassis config check --print`,
//! `/admin/config`, `Debug`, error messages), so one view decides what may be shown, and
//! every place uses it: [`Config::redacted`] replaces decrypted values, values under keys
//! named like credentials (password, secret, token, key, authorization, cookie…), every
//! value of a header mapping such as `tracing.headers`, and URL passwords, by
//! `<redacted>`. An error about a key never quotes a value that view hides.

mod diff;
mod error;
mod live;
mod secrets;
mod sections;
mod source;
mod values;
mod view;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resilience::LoadSheddingConfig;

pub(crate) use diff::is_under;
pub use error::{ConfigDiagnostic, ConfigError};
pub use live::Live;
use secrets::Secrets;
pub(crate) use secrets::shown_url;
pub use secrets::{DEFAULT_KEY_FILE, KEY_FILE_VAR, SecretError, SecretKey, key_file_from_env};
pub use sections::{
    AdminSection, ChassisConfig, HealthSection, Http2Section, LimitsSection, LogFormat,
    LoggingSection, ManagementSection, MetricsSection, OtlpProtocol, SamplerKind, SamplerSection,
    ServerSection, ServiceSection, ShowDetails, ShutdownSection, TraceExporter, TracingSection,
};
use source::{Layered, Source};
pub(crate) use values::{byte_size, duration};
pub use watch::ConfigWatch;

/// Env var naming the config file or directory.
pub const CONFIG_FILE_VAR: &str = "MS_CONFIG_FILE";
/// Env var naming the active profile.
pub const PROFILE_VAR: &str = "MS_PROFILE";

/// The loaded configuration: typed chassis sections plus the whole merged tree.
///
/// `Debug` shows the [redacted](Config::redacted) tree, so logging a `Config` (or a
/// `Service`) never shows a decrypted value.
#[derive(Clone)]
pub struct Config {
    chassis: Arc<ChassisConfig>,
    layered: Arc<Layered>,
    secrets: Arc<Secrets>,
    profile: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("profile", &self.profile)
            .field("secret_paths", &self.secrets.paths().collect::<Vec<_>>())
            .field("effective", &self.redacted())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The typed chassis sections.
    pub fn chassis(&self) -> &ChassisConfig {
        &self.chassis
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
    /// It shows every key in effect, defaults included: a `clients.<name>` block also lists
    /// the client keys it leaves out, at their defaults (the embedded defaults have no
    /// clients to hold them).
    pub fn redacted(&self) -> Value {
        self.redacted_with_origins().0
    }

    /// [`redacted`](Self::redacted), and the origin of each of its values by dotted path:
    /// its layer, or the embedded defaults for a client key that no layer sets.
    fn redacted_with_origins(&self) -> (Value, impl Fn(&str) -> Option<String> + '_) {
        let mut tree = self.layered.value.clone();
        // Each `clients.<name>` block completed by the keys it leaves out, at their
        // defaults; `added` holds their dotted paths.
        let mut added = Vec::new();
        if let Some(Value::Object(clients)) = tree.get_mut("clients") {
            for (name, block) in clients.iter_mut() {
                if let (Some(typed), Value::Object(written)) =
                    (self.chassis.clients.get(name), block)
                    && let Ok(Value::Object(full)) = serde_json::to_value(typed)
                {
                    fill_missing(written, full, &format!("clients.{name}"), &mut added);
                }
            }
        }
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
    pub(crate) fn changed_since(&self, older: &Config) -> Vec<String> {
        diff::changed_keys(&older.layered.value, &self.layered.value)
    }
}

/// The name under `clients` of the settings every client inherits.
pub const CLIENT_DEFAULTS: &str = "default";

/// Gives every `clients.<name>` block each key of `clients.default` that it does not set
/// itself, recursively (a client's own value, a list included, replaces the default's),
/// with the default's origins, so errors and `config check --print` point at the line in
/// `clients.default`. `url` is never inherited. Returns the dotted paths added.
fn inherit_client_defaults(layered: &mut Layered) -> Vec<String> {
    let Some(Value::Object(clients)) = layered.value.get_mut("clients") else {
        return Vec::new();
    };
    let Some(Value::Object(mut defaults)) = clients.get(CLIENT_DEFAULTS).cloned() else {
        return Vec::new();
    };
    defaults.remove("url");
    let mut added = Vec::new();
    for (name, block) in clients.iter_mut() {
        if name != CLIENT_DEFAULTS
            && let Value::Object(block) = block
        {
            fill_missing(
                block,
                defaults.clone(),
                &format!("clients.{name}"),
                &mut added,
            );
        }
    }
    let from = format!("clients.{CLIENT_DEFAULTS}");
    for path in &added {
        // `clients.<name>.<rest>` came from `clients.default.<rest>`.
        let rest = path
            .strip_prefix("clients.")
            .and_then(|p| p.split_once('.'))
            .map_or("", |(_, rest)| rest);
        layered.copy_origins(&format!("{from}.{rest}"), path);
    }
    added
}

/// Adds to `into` (at dotted `path`) every key of `from` it lacks, recursively, keeping
/// what `into` has; pushes the path of each key added onto `added`.
fn fill_missing(
    into: &mut serde_json::Map<String, Value>,
    from: serde_json::Map<String, Value>,
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

/// Builds a [`Config`] from its layers.
///
/// `Debug` shows where the config comes from, not what it holds: the file, the profile,
/// the key file, how many YAML documents were given in code (not their text, which may
/// hold secrets), and the names of the `MS_*` environment variables (not their values,
/// nor any other variable: the process environment holds other programs' credentials).
#[derive(Clone, Default)]
pub struct ConfigLoader {
    file: FileChoice,
    profile: Option<String>,
    inline: Vec<String>,
    env: Vec<(String, String)>,
    /// `MS_*` variables whose name or value is not UTF-8: each is an error at load.
    unreadable_env: Vec<UnreadableVar>,
    key_file: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut env: Vec<&str> = self
            .env
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.unreadable_env.iter().map(|v| v.name.as_str()))
            .filter(|k| is_chassis_var(k))
            .collect();
        env.sort_unstable();
        f.debug_struct("ConfigLoader")
            .field("file", &self.file)
            .field("profile", &self.profile)
            .field("inline_yaml_documents", &self.inline.len())
            .field("env_names", &env)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// Whether an environment variable is one the chassis reads: `MS_*`, which includes the
/// `MS__*` overrides.
fn is_chassis_var(name: &str) -> bool {
    name.starts_with("MS_")
}

/// The `MS_*` variables read as paths, with `var_os`: on Unix a path need not be UTF-8.
const PATH_VARS: [&str; 2] = [CONFIG_FILE_VAR, KEY_FILE_VAR];

/// An `MS_*` environment variable that is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UnreadableVar {
    /// Its name; if the name itself is not UTF-8, with `U+FFFD` for the bytes that are not.
    name: String,
    /// Whether the name is UTF-8 (then only the value is not).
    name_is_utf8: bool,
}

impl UnreadableVar {
    /// The error: it names the variable, and the key an `MS__*` override would set, never
    /// the value.
    fn diagnostic(&self) -> ConfigDiagnostic {
        let key = self
            .name
            .strip_prefix(source::ENV_PREFIX)
            .filter(|rest| self.name_is_utf8 && !rest.is_empty())
            .map(|rest| {
                let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
                parts.join(".")
            });
        let what = if self.name_is_utf8 {
            "its value is not"
        } else {
            "its name is not"
        };
        ConfigDiagnostic {
            location: Some(format!("environment variable {}", self.name)),
            key,
            message: format!(
                "expected UTF-8 text, but {what} (the value is not shown); set it as UTF-8 \
                 or unset it"
            ),
        }
    }
}

/// The process environment as UTF-8 pairs, and the `MS_*` variables (other than
/// [`PATH_VARS`]) that are not UTF-8. Other variables that are not UTF-8 are ignored: the
/// chassis reads none of them (and `std::env::vars` would panic on them).
fn environment() -> (Vec<(String, String)>, Vec<UnreadableVar>) {
    let mut env = Vec::new();
    let mut unreadable = Vec::new();
    for (name, value) in std::env::vars_os() {
        let var = match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => {
                env.push((name, value));
                continue;
            }
            (Ok(name), Err(_)) => UnreadableVar {
                name,
                name_is_utf8: true,
            },
            (Err(name), _) => UnreadableVar {
                name: name.to_string_lossy().into_owned(),
                name_is_utf8: false,
            },
        };
        if is_chassis_var(&var.name) && !PATH_VARS.contains(&var.name.as_str()) {
            unreadable.push(var);
        }
    }
    unreadable.sort_unstable();
    (env, unreadable)
}

#[derive(Debug, Clone, Default)]
enum FileChoice {
    /// No file layer at all.
    #[default]
    None,
    /// `./config.yaml` (or `./config.yml`) if present.
    Default,
    /// Named explicitly: missing is an error. The string says who named it.
    Explicit(PathBuf, &'static str),
}

impl ConfigLoader {
    /// A loader with only the embedded defaults: no file, no environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The loader `Service::from_env` uses: file from `MS_CONFIG_FILE` (else
    /// `./config.yaml` if present), profile from `MS_PROFILE`, `MS__*` overrides, and the
    /// key file for `enc_` values from `MS_KEY_FILE` (else `./key.key`).
    pub fn from_env() -> Self {
        let file = match std::env::var_os(CONFIG_FILE_VAR) {
            Some(p) if !p.is_empty() => FileChoice::Explicit(p.into(), CONFIG_FILE_VAR),
            _ => FileChoice::Default,
        };
        let (env, unreadable_env) = environment();
        // A profile that is not UTF-8 is in `unreadable_env`, an error at load.
        let profile = env
            .iter()
            .find(|(k, _)| k == PROFILE_VAR)
            .map(|(_, v)| v.clone())
            .filter(|p| !p.is_empty());
        Self {
            file,
            profile,
            inline: Vec::new(),
            env,
            unreadable_env,
            key_file: Some(secrets::key_file_from_env()),
        }
    }

    /// Reads this file (or `config.yaml` in this directory). A missing path is an error.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = FileChoice::Explicit(path.into(), "the config file setting");
        self
    }

    /// Activates a profile: `config.<profile>.yaml` is layered over the file.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Adds YAML given in code, above the files and below the environment.
    pub fn yaml(mut self, yaml: impl Into<String>) -> Self {
        self.inline.push(yaml.into());
        self
    }

    /// Replaces the environment variables considered for `MS__*` overrides.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.unreadable_env.clear();
        self
    }

    /// Decrypts `enc_` values with this key file instead of `./key.key` (what `MS_KEY_FILE`
    /// sets for [`from_env`](Self::from_env)). It is read only if some `enc_` key exists.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// The files whose contents decide the config: the config file (both `config.yaml`
    /// and `config.yml` where either may be read) and the profile file candidates beside
    /// it. Reload watches these.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match &self.file {
            FileChoice::None => Vec::new(),
            FileChoice::Default => vec!["config.yaml".into(), "config.yml".into()],
            FileChoice::Explicit(path, _) if path.is_dir() => {
                vec![path.join("config.yaml"), path.join("config.yml")]
            }
            FileChoice::Explicit(path, _) => vec![path.clone()],
        };
        if let Some(profile) = &self.profile {
            let dir = files
                .first()
                .and_then(|f| f.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            files.extend(["yaml", "yml"].map(|ext| dir.join(format!("config.{profile}.{ext}"))));
        }
        files
    }

    /// Loads, merges, decrypts, types and validates every layer. Every problem found is
    /// reported, not just the first.
    pub fn load(self) -> Result<Config, ConfigError> {
        let defaults =
            serde_json::to_value(ChassisConfig::default()).expect("defaults always serialize");
        let mut layered = source::defaults_layer(defaults);

        let base = match &self.file {
            FileChoice::None => None,
            FileChoice::Default => ["config.yaml", "config.yml"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
            FileChoice::Explicit(path, named_by) => Some(resolve_explicit(path, named_by)?),
        };
        if let Some(base) = &base {
            layered.merge(source::read_yaml_file(base)?);
        }
        if let Some(profile) = &self.profile {
            let dir = base
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or_else(|| Path::new(""));
            let candidates = ["yaml", "yml"].map(|ext| dir.join(format!("config.{profile}.{ext}")));
            if let Some(p) = candidates.iter().find(|p| p.is_file()) {
                layered.merge(source::read_yaml_file(p)?);
            }
        }
        for text in &self.inline {
            layered.merge(source::parse_yaml(text, Source::Inline)?);
        }
        layered.merge(source::otel_env_layer(&self.env)?);
        layered.merge(source::env_layer(self.env));

        let key_file = self
            .key_file
            .unwrap_or_else(|| PathBuf::from(secrets::DEFAULT_KEY_FILE));
        let (secrets, mut diagnostics) = secrets::decrypt_in_place(&mut layered, &key_file);
        diagnostics.splice(
            0..0,
            self.unreadable_env.iter().map(UnreadableVar::diagnostic),
        );
        let inherited = inherit_client_defaults(&mut layered);

        // One run shows as much as possible: typos, every type error, and the rules that
        // types cannot express.
        let typed = type_collecting(&layered);
        // A bad key or value in `clients.default` is reported there, not again for every
        // client that inherited it.
        let own = |d: &ConfigDiagnostic| {
            let key = d.key.as_deref().unwrap_or_default();
            !inherited.iter().any(|p| is_under(key, p))
        };
        // A map entry dropped for its type error is gone from the typed config: it is
        // reported for its type, not again as unknown.
        diagnostics.extend(
            unknown_keys(&layered, &typed.chassis)
                .into_iter()
                .filter(own)
                .filter(|d| !typed.defaulted(d.key.as_deref().unwrap_or_default())),
        );
        diagnostics.extend(typed.errors.iter().filter(|d| own(d)).cloned());
        // A dropped value was typed as its default: rules about it would judge the default.
        diagnostics.extend(
            validate(&typed.chassis, &layered, &|k| typed.defaulted(k))
                .into_iter()
                .filter(|d| !typed.defaulted(d.key.as_deref().unwrap_or_default())),
        );
        if !diagnostics.is_empty() {
            secrets.scrub(&mut diagnostics, &layered.value);
            return Err(ConfigError::from_diagnostics(diagnostics));
        }
        Ok(Config {
            chassis: Arc::new(typed.chassis),
            layered: Arc::new(layered),
            secrets: Arc::new(secrets),
            profile: self.profile,
        })
    }
}

/// The chassis sections typed, with every type error rather than only serde's first.
struct Typed {
    chassis: ChassisConfig,
    errors: Vec<ConfigDiagnostic>,
    /// Keys dropped because of a type error, so typed as their defaults; `""` for all.
    dropped: Vec<String>,
}

impl Typed {
    /// Whether the value at `key` was typed as its default after a type error.
    fn defaulted(&self, key: &str) -> bool {
        self.dropped.iter().any(|p| {
            key.strip_prefix(p.as_str())
                .is_some_and(|rest| p.is_empty() || rest.is_empty() || rest.starts_with('.'))
        })
    }
}

/// Types the merged tree; on a type error, records it, drops the offending key (every
/// chassis field has a default) and tries again, so each bad value is reported once.
fn type_collecting(layered: &Layered) -> Typed {
    const MAX_ERRORS: usize = 64;
    let mut input = layered.value.clone();
    let mut errors = Vec::new();
    let mut dropped = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, ChassisConfig>(&input) {
            Ok(chassis) => {
                return Typed {
                    chassis,
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
                chassis: ChassisConfig::default(),
                errors,
                dropped: vec![String::new()],
            };
        }
        dropped.push(keys.join("."));
    }
}

fn resolve_explicit(path: &Path, named_by: &str) -> Result<PathBuf, ConfigError> {
    let file = if path.is_dir() {
        let yaml = path.join("config.yaml");
        if yaml.is_file() {
            yaml
        } else {
            path.join("config.yml")
        }
    } else {
        path.to_path_buf()
    };
    if file.is_file() {
        Ok(file)
    } else {
        Err(ConfigError::new(
            Some(file.display().to_string()),
            None,
            format!("config file not found (named by {named_by})"),
        ))
    }
}

fn deserialize_at<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
    layered: &Layered,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| ConfigError::from_diagnostics(vec![located(&e, prefix, layered)]))
}

/// A serde error with its key path (under `prefix`) and the line it came from.
fn located(
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
fn reword(msg: &str) -> String {
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
fn unknown_keys(layered: &Layered, chassis: &ChassisConfig) -> Vec<ConfigDiagnostic> {
    let known = serde_json::to_value(chassis).expect("config always serializes");
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

/// The largest `server.limits.header_size`: HTTP/2's header list size is a `u32`, and heads
/// this large are an attack rather than a request.
const MAX_HEADER_SIZE: u64 = 16 * 1024 * 1024;

/// Rules that types alone cannot express. A rule that reads a key besides its own skips when
/// that key was `defaulted` after a type error.
fn validate(
    c: &ChassisConfig,
    layered: &Layered,
    defaulted: &dyn Fn(&str) -> bool,
) -> Vec<ConfigDiagnostic> {
    let mut out = Vec::new();
    let mut fail = |key: &str, message: String| {
        out.push(ConfigDiagnostic {
            location: layered.origin_of(key).map(ToString::to_string),
            key: Some(key.to_owned()),
            message,
        })
    };
    if let Err(reason) = check_log_filter(&c.logging.level) {
        fail(
            "logging.level",
            format!(
                "expected a level (error, warn, info, debug, trace, off) or a filter such as \
                 `info,hyper=warn`, found {:?} ({reason})",
                c.logging.level
            ),
        );
    }
    if !c.metrics.path.starts_with('/') || c.metrics.path.len() < 2 {
        fail(
            "metrics.path",
            format!(
                "expected a path starting with `/`, found {:?}",
                c.metrics.path
            ),
        );
    }
    if let Some(m) = &c.server.management
        && m.port != 0
        && m.port == c.server.port
        && !defaulted("server.port")
    {
        fail(
            "server.management.port",
            format!("must differ from server.port ({})", c.server.port),
        );
    }
    let limits = &c.server.limits;
    if !(crate::server::MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&limits.header_size) {
        fail(
            "server.limits.header_size",
            format!(
                "expected a size from 8KiB to 16MiB, found {} bytes",
                limits.header_size
            ),
        );
    }
    if limits.http2.max_concurrent_streams == 0 {
        fail(
            "server.limits.http2.max_concurrent_streams",
            "expected at least 1 stream, such as 256".to_owned(),
        );
    }
    if !limits.http2.keep_alive_interval.is_zero() && limits.http2.keep_alive_timeout.is_zero() {
        fail(
            "server.limits.http2.keep_alive_timeout",
            "expected a duration above zero, such as 20s, while keep_alive_interval is on"
                .to_owned(),
        );
    }
    if let Some(r) = c.tracing.sampler.ratio
        && !(0.0..=1.0).contains(&r)
    {
        fail(
            "tracing.sampler.ratio",
            format!("expected a number from 0.0 to 1.0, found {r}"),
        );
    }
    if let Some(e) = &c.tracing.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        fail(
            "tracing.endpoint",
            format!("expected a URL such as http://127.0.0.1:4317, found {e:?}"),
        );
    }
    if c.tracing.queue_size == 0 {
        fail(
            "tracing.queue_size",
            "expected a queue size above zero, such as 2048".to_owned(),
        );
    }
    for (name, client) in &c.clients {
        if name == CLIENT_DEFAULTS {
            if client.url.is_some() {
                fail(
                    "clients.default.url",
                    "expected no url here: clients.default holds what every client inherits, \
                     and a base URL belongs to one client (clients.<name>.url)"
                        .to_owned(),
                );
            }
            for (key, message) in client.validate(name) {
                if key != "url" {
                    fail(&format!("clients.{name}.{key}"), message);
                }
            }
            continue;
        }
        for (key, message) in client.validate(name) {
            fail(&format!("clients.{name}.{key}"), message);
        }
    }
    if let Err(e) = c.resilience.load_shedding.validate("server") {
        // The limit rules compare three keys: none may stand for a dropped value.
        let compared = LoadSheddingConfig::LIMIT_FIELDS.contains(&e.field);
        let dropped = LoadSheddingConfig::LIMIT_FIELDS
            .iter()
            .any(|f| defaulted(&format!("resilience.load_shedding.{f}")));
        if !(compared && dropped) {
            fail(&format!("resilience.load_shedding.{}", e.field), e.message);
        }
    }
    if c.admin
        .token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        fail(
            "admin.token",
            "expected a non-empty token, or null for none".to_owned(),
        );
    }
    if c.server.limits.body_size == 0 {
        fail(
            "server.limits.body_size",
            "expected a size above zero, such as 2MiB".to_owned(),
        );
    }
    out
}

/// Stricter than `EnvFilter` alone, which reads a bare word such as `loud` as a target name:
/// in config, every directive must end in a level.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("`{level}` is not a level"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_config_shows_every_client_key_and_where_it_came_from() {
        let cfg = ConfigLoader::new()
            .yaml(
                "clients:\n  books:\n    url: http://books:8080\n    timeout: 3s\n    \
                 retry: { max_attempts: 5 }\n",
            )
            .load()
            .unwrap();
        let books = &cfg.redacted()["clients"]["books"];
        assert_eq!(books["timeout"], "3s", "written: kept as written");
        assert_eq!(books["connect_timeout"], "1s", "left out: its default");
        assert_eq!(books["retry"]["max_attempts"], 5);
        assert_eq!(books["retry"]["enabled"], true);
        assert_eq!(books["rate_limit"]["enabled"], false);
        assert_eq!(books["pool"]["max_idle_per_host"], 32);
        let origins = cfg.leaf_origins();
        assert_eq!(origins["clients.books.timeout"], "inline config:4");
        assert_eq!(
            origins["clients.books.retry.max_attempts"],
            "inline config:5"
        );
        assert_eq!(
            origins["clients.books.connect_timeout"],
            "embedded defaults"
        );
        assert_eq!(origins["clients.books.retry.enabled"], "embedded defaults");
        assert_eq!(
            origins["clients.books.pool.idle_timeout"],
            "embedded defaults"
        );
        let yaml = cfg.annotated_yaml();
        assert!(
            yaml.lines()
                .any(|l| l.contains("connect_timeout: 1s") && l.ends_with("# embedded defaults")),
            "{yaml}"
        );
    }

    #[test]
    fn every_client_inherits_what_it_leaves_out_from_clients_default() {
        let cfg = ConfigLoader::new()
            .yaml(
                "clients:\n  default:\n    timeout: 3s\n    retry: { max_attempts: 5 }\n    \
                 propagate_headers: [x-tenant-id]\n  books:\n    url: http://books\n    \
                 timeout: 1s\n    propagate_headers: []\n  authors:\n    url: http://authors\n",
            )
            .env_vars([("MS__CLIENTS__DEFAULT__CONNECT_TIMEOUT", "250ms")])
            .load()
            .unwrap();
        let clients = &cfg.chassis().clients;
        let (books, authors) = (&clients["books"], &clients["authors"]);
        use std::time::Duration;
        assert_eq!(books.timeout, Duration::from_secs(1), "its own value wins");
        assert_eq!(authors.timeout, Duration::from_secs(3), "inherited");
        assert_eq!(
            books.retry.config.max_attempts, 5,
            "inherited inside a block"
        );
        assert_eq!(authors.retry.config.max_attempts, 5);
        assert!(books.retry.enabled);
        assert_eq!(
            books.connect_timeout,
            Duration::from_millis(250),
            "from any layer"
        );
        assert!(
            books.propagate_headers.is_empty(),
            "a list replaces, not appends"
        );
        assert_eq!(authors.propagate_headers, ["x-tenant-id"]);
        assert_eq!(authors.url.as_deref(), Some("http://authors"));
        let origins = cfg.leaf_origins();
        assert_eq!(origins["clients.authors.timeout"], "inline config:3");
        assert_eq!(origins["clients.books.timeout"], "inline config:8");
        assert_eq!(
            origins["clients.authors.retry.max_attempts"],
            "inline config:4"
        );
        assert_eq!(
            origins["clients.authors.connect_timeout"],
            "environment variable MS__CLIENTS__DEFAULT__CONNECT_TIMEOUT"
        );
    }

    #[test]
    fn clients_default_is_checked_once_and_holds_no_url() {
        let e = ConfigLoader::new()
            .yaml(
                "clients:\n  default:\n    url: http://everyone\n    timeout: 3 parsecs\n    \
                 retry: { max_atempts: 2 }\n  books: { url: http://books }\n  \
                 authors: { url: http://authors }\n",
            )
            .load()
            .unwrap_err();
        let keys: Vec<_> = e
            .diagnostics()
            .iter()
            .map(|d| d.key.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "clients.default.retry.max_atempts",
                "clients.default.timeout",
                "clients.default.url"
            ],
            "{e}"
        );
        assert!(e.to_string().contains("inline config:4"), "{e}");
        // A rule broken by a client's own value and an inherited one names the client.
        let e = ConfigLoader::new()
            .yaml(
                "clients:\n  default: { total_timeout: 1s }\n  \
                 books: { url: http://books, timeout: 2s }\n",
            )
            .load()
            .unwrap_err();
        assert!(e.to_string().contains("clients.books.total_timeout"), "{e}");
    }

    #[test]
    fn debug_of_the_loader_and_the_builder_shows_ms_names_only() {
        let loader = ConfigLoader::new()
            .yaml("app: { password: inline-yaml-secret }")
            .env_vars([
                ("MS__APP__TOKEN", "env-override-secret"),
                ("MS_PROFILE", "prod"),
                ("AWS_SECRET_ACCESS_KEY", "someone-elses-secret"),
            ]);
        let mut loader = loader;
        loader.unreadable_env.push(UnreadableVar {
            name: "MS__APP__BYTES".into(),
            name_is_utf8: true,
        });
        let builder = crate::Service::builder_from(loader.clone());
        for shown in [
            format!("{loader:?}"),
            format!("{builder:?}"),
            format!("{loader:#?}"),
        ] {
            for hidden in [
                "inline-yaml-secret",
                "env-override-secret",
                "prod",
                "AWS_SECRET_ACCESS_KEY",
                "someone-elses-secret",
            ] {
                assert!(!shown.contains(hidden), "{hidden} in {shown}");
            }
            for name in ["MS__APP__TOKEN", "MS_PROFILE", "MS__APP__BYTES"] {
                assert!(shown.contains(name), "{name} not in {shown}");
            }
            assert!(shown.contains("inline_yaml_documents: 1"), "{shown}");
        }
    }

    #[test]
    fn an_ms_variable_that_is_not_utf8_is_an_error_naming_it() {
        let mut loader = ConfigLoader::new().env_vars([("MS__SERVER__PORT", "9000")]);
        loader.unreadable_env = vec![
            UnreadableVar {
                name: "MS__APP__GREETING".into(),
                name_is_utf8: true,
            },
            UnreadableVar {
                name: "MS__APP__\u{FFFD}".into(),
                name_is_utf8: false,
            },
        ];
        let e = loader.load().unwrap_err();
        assert_eq!(
            e.to_string().lines().collect::<Vec<_>>(),
            [
                "environment variable MS__APP__GREETING: app.greeting: expected UTF-8 text, but \
                 its value is not (the value is not shown); set it as UTF-8 or unset it",
                "environment variable MS__APP__\u{FFFD}: expected UTF-8 text, but its name is \
                 not (the value is not shown); set it as UTF-8 or unset it",
            ]
        );
        // `env_vars` replaces the whole environment, the unreadable part too.
        let mut loader = ConfigLoader::new();
        loader.unreadable_env.push(UnreadableVar {
            name: "MS_PROFILE".into(),
            name_is_utf8: true,
        });
        assert!(loader.env_vars([("MS__SERVER__PORT", "1")]).load().is_ok());
    }

    #[test]
    fn a_type_error_on_a_secret_key_does_not_quote_the_value() {
        let e = ConfigLoader::new()
            .yaml("admin: { token: 123456789 }\ntracing: { headers: { x-api-key: 55667788 } }")
            .env_vars([("MS__TRACING__ENDPOINT", "ftp://u:hunter2@collector")])
            .load()
            .unwrap_err();
        let text = e.to_string();
        for secret in ["123456789", "55667788", "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("admin.token: expected a string, found integer <redacted>"),
            "{text}"
        );
        assert!(
            text.contains("tracing.headers.x-api-key: expected a string"),
            "{text}"
        );
        assert!(text.contains("ftp://u:<redacted>@collector"), "{text}");
        // A user's own key, read with `get`.
        let cfg = ConfigLoader::new()
            .yaml("app: { db: { password: not-a-number } }")
            .load()
            .unwrap();
        let e = cfg.get::<u32>("app.db.password").unwrap_err().to_string();
        assert!(!e.contains("not-a-number"), "{e}");
        assert!(e.contains("app.db.password"), "{e}");
    }

    #[test]
    fn a_map_entry_of_the_wrong_type_is_not_also_unknown() {
        let e = ConfigLoader::new()
            .yaml("tracing: { headers: { x-api-key: 12345, ok: fine } }")
            .load()
            .unwrap_err();
        assert_eq!(e.diagnostics().len(), 1, "{e}");
        assert_eq!(
            e.diagnostics()[0].key.as_deref(),
            Some("tracing.headers.x-api-key")
        );
    }

    #[test]
    fn reword_puts_expectation_first() {
        assert_eq!(
            reword("invalid type: string \"x\", expected a boolean"),
            "expected a boolean, found string \"x\""
        );
    }

    #[test]
    fn every_type_error_is_reported_with_typos_and_rules() {
        let e = ConfigLoader::new()
            .yaml(
                "server:\n  port: eighty\n  limits: { request_timeout: 30 parsecs, body_size: 0 }\n\
                 logging: { access: maybe, level: loud }\ntracing: { propagation: [w3c], prot: 1 }\n",
            )
            .load()
            .unwrap_err();
        let keys: Vec<_> = e
            .diagnostics()
            .iter()
            .map(|d| d.key.clone().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "tracing.prot",
                "logging.access",
                "server.limits.request_timeout",
                "server.port",
                "tracing.propagation[0]",
                "logging.level",
                "server.limits.body_size",
            ],
            "{e}"
        );
    }

    #[test]
    fn a_rule_about_a_value_dropped_for_its_type_is_not_reported() {
        // server.port is typed as its default (8080) after its type error; the management
        // port rule must not then judge that default.
        let e = ConfigLoader::new()
            .yaml("server: { port: [1], management: { port: 8080 } }")
            .load()
            .unwrap_err();
        assert_eq!(e.diagnostics().len(), 1, "{e}");
    }

    #[test]
    fn load_shedding_rules_name_their_key() {
        let e = ConfigLoader::new()
            .yaml("resilience:\n  load_shedding: { min_limit: 50 }\n  load_shedings: {}\n")
            .load()
            .unwrap_err();
        let found: Vec<_> = e
            .diagnostics()
            .iter()
            .map(|d| (d.key.clone().unwrap(), d.location.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "resilience.load_shedings".to_owned(),
                    Some("inline config:3".to_owned())
                ),
                (
                    "resilience.load_shedding.initial_limit".to_owned(),
                    Some("embedded defaults".to_owned())
                ),
            ],
            "{e}"
        );
        assert!(e.diagnostics()[1].message.contains("min_limit (50)"), "{e}");
        let e = ConfigLoader::new()
            .yaml("resilience: { load_shedding: { smoothing: 2, wndow: 1s } }")
            .load()
            .unwrap_err();
        assert_eq!(
            e.to_string().lines().collect::<Vec<_>>(),
            [
                "inline config:1: resilience.load_shedding.wndow: unknown key in \
                 `resilience.load_shedding`; did you mean `window`? (valid: enabled, \
                 initial_limit, max_limit, min_limit, retry_after, smoothing, tolerance, window)",
                "inline config:1: resilience.load_shedding.smoothing: expected a number in (0, 1]",
            ]
        );
        // A limit dropped for its type is not also judged against the others.
        let e = ConfigLoader::new()
            .yaml("resilience: { load_shedding: { max_limit: lots, min_limit: 2000 } }")
            .load()
            .unwrap_err();
        assert_eq!(e.diagnostics().len(), 1, "{e}");
        let on = "resilience: { load_shedding: { enabled: true, min_limit: 1, initial_limit: 4 } }";
        let c = ConfigLoader::new().yaml(on).load().unwrap();
        assert!(c.chassis().resilience.load_shedding.enabled);
    }

    #[test]
    fn typo_gets_a_suggestion() {
        let e = ConfigLoader::new()
            .yaml("server:\n  prot: 1\n")
            .load()
            .unwrap_err();
        let d = &e.diagnostics()[0];
        assert_eq!(d.key.as_deref(), Some("server.prot"));
        assert_eq!(d.location.as_deref(), Some("inline config:2"));
        assert!(d.message.contains("did you mean `port`?"), "{e}");
    }
}
