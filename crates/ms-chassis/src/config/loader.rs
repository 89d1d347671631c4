//! Where the layers come from (files, profile, YAML given in code, the environment) and
//! how they become a [`Config`]: merged, decrypted, inherited, typed and checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfigDiagnostic, ConfigError};
use super::rules::{Rules, Schema};
use super::secrets::{self, KEY_FILE_VAR};
use super::source::{self, Source};
use super::typing::{type_collecting, unknown_keys};
use super::{CONFIG_FILE_VAR, Config, PROFILE_VAR, diff::is_under, inherit};

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

    /// Loads, merges, decrypts, types as `S` and validates every layer. Every problem
    /// found is reported, not just the first. A service's config is
    /// [`load`](Self::load)ed, as the chassis's sections; this reads any other [`Schema`].
    pub fn load_as<S: Schema>(self) -> Result<Config<S>, ConfigError> {
        let defaults = serde_json::to_value(S::default()).expect("defaults always serialize");
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
        let inherited = inherit::inherit(&mut layered, S::INHERITING);

        // One run shows as much as possible: typos, every type error, and the rules that
        // types cannot express.
        let typed = type_collecting::<S>(&layered);
        // A bad key or value in `clients.default` is reported there, not again for every
        // client that inherited it.
        let own = |d: &ConfigDiagnostic| {
            let key = d.key.as_deref().unwrap_or_default();
            !inherited.iter().any(|p| is_under(key, p))
        };
        // A map entry dropped for its type error is gone from the typed config: it is
        // reported for its type, not again as unknown.
        diagnostics.extend(
            unknown_keys(&layered, &typed.sections)
                .into_iter()
                .filter(own)
                .filter(|d| !typed.defaulted(d.key.as_deref().unwrap_or_default())),
        );
        diagnostics.extend(typed.errors.iter().filter(|d| own(d)).cloned());
        // A dropped value was typed as its default: rules about it would judge the default.
        let mut broken = Vec::new();
        typed
            .sections
            .validate(&mut Rules::new(&mut broken, &|k| typed.defaulted(k)));
        diagnostics.extend(
            broken
                .into_iter()
                .filter(|e| !typed.defaulted(&e.key))
                .map(|e| e.located(&layered)),
        );
        if !diagnostics.is_empty() {
            secrets.scrub(&mut diagnostics, &layered.value);
            return Err(ConfigError::from_diagnostics(diagnostics));
        }
        Ok(Config {
            sections: Arc::new(typed.sections),
            layered: Arc::new(layered),
            secrets: Arc::new(secrets),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
