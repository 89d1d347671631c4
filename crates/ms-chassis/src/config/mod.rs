//! Externalized, layered, typed configuration.
//!
//! Layers, lowest precedence first: embedded defaults, `config.yaml` (path from
//! `MS_CONFIG_FILE`, a file or a directory; `./config.yaml` otherwise),
//! `config.<profile>.yaml` beside it (profile from `MS_PROFILE`), YAML given in code, and
//! environment variables (`MS__SERVER__PORT=9000` sets `server.port`).
//!
//! The chassis sections are typed ([`ChassisConfig`]); an unknown key in them is an error
//! with a "did you mean". The user's `app` section is read with [`Config::app`] as the
//! user's own `serde` type. Every error names the file and line (or env var), the key path
//! and what was expected:
//!
//! ```text
//! config.yaml:3: server.port: expected an integer 0-65535, found "eighty"
//! ```

mod error;
mod sections;
mod source;
mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{ConfigDiagnostic, ConfigError};
pub use sections::{
    ChassisConfig, HealthSection, LimitsSection, LogFormat, LoggingSection, ManagementSection,
    MetricsSection, OtlpProtocol, SamplerKind, SamplerSection, ServerSection, ServiceSection,
    ShutdownSection, TraceExporter, TracingSection,
};
use source::{Layered, Source};

/// Env var naming the config file or directory.
pub const CONFIG_FILE_VAR: &str = "MS_CONFIG_FILE";
/// Env var naming the active profile.
pub const PROFILE_VAR: &str = "MS_PROFILE";

/// The loaded configuration: typed chassis sections plus the whole merged tree.
#[derive(Debug, Clone)]
pub struct Config {
    chassis: Arc<ChassisConfig>,
    layered: Arc<Layered>,
    profile: Option<String>,
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
        deserialize_at(node, key, &self.layered)
    }

    /// Where the value at `key` came from: `config.yaml:12`, `environment variable …`,
    /// `embedded defaults`.
    pub fn origin_of(&self, key: &str) -> Option<String> {
        self.layered.origin_of(key).map(ToString::to_string)
    }
}

/// Builds a [`Config`] from its layers.
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    file: FileChoice,
    profile: Option<String>,
    inline: Vec<String>,
    env: Vec<(String, String)>,
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
    /// `./config.yaml` if present), profile from `MS_PROFILE`, and `MS__*` overrides.
    pub fn from_env() -> Self {
        let file = match std::env::var_os(CONFIG_FILE_VAR) {
            Some(p) if !p.is_empty() => FileChoice::Explicit(p.into(), CONFIG_FILE_VAR),
            _ => FileChoice::Default,
        };
        Self {
            file,
            profile: std::env::var(PROFILE_VAR).ok().filter(|p| !p.is_empty()),
            inline: Vec::new(),
            env: std::env::vars().collect(),
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
        self
    }

    /// Loads, merges, types and validates every layer.
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

        let chassis = match deserialize_at::<ChassisConfig>(&layered.value, "", &layered) {
            Ok(chassis) => chassis,
            Err(type_error) => {
                // Report typos too, checked against the defaults' shape, so one run shows
                // as much as possible.
                let mut diagnostics = unknown_keys(&layered, &ChassisConfig::default());
                diagnostics.extend(type_error.diagnostics().iter().cloned());
                return Err(ConfigError::from_diagnostics(diagnostics));
            }
        };
        let mut diagnostics = unknown_keys(&layered, &chassis);
        diagnostics.extend(validate(&chassis, &layered));
        if !diagnostics.is_empty() {
            return Err(ConfigError::from_diagnostics(diagnostics));
        }
        Ok(Config {
            chassis: Arc::new(chassis),
            layered: Arc::new(layered),
            profile: self.profile,
        })
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
    serde_path_to_error::deserialize(value).map_err(|e| {
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
        let location = layered.origin_of(&key).map(ToString::to_string);
        let key = (!key.is_empty()).then_some(key);
        ConfigError::new(location, key, reword(&e.inner().to_string()))
    })
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

/// Rules that types alone cannot express.
fn validate(c: &ChassisConfig, layered: &Layered) -> Vec<ConfigDiagnostic> {
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
    {
        fail(
            "server.management.port",
            format!("must differ from server.port ({})", c.server.port),
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
    fn reword_puts_expectation_first() {
        assert_eq!(
            reword("invalid type: string \"x\", expected a boolean"),
            "expected a boolean, found string \"x\""
        );
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
