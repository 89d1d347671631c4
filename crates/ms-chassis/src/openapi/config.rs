//! The `openapi` section: where the spec in effect comes from and is published, the
//! Swagger UI, and how requests and responses are checked against the spec; and the rules
//! types alone cannot express.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Rules;

/// `openapi:` the service's contract, its publication and its enforcement.
///
/// ```
/// use ms_chassis::config::ConfigLoader;
/// let cfg = ConfigLoader::new()
///     .yaml("openapi: { path: /v3/api-docs.json, ui: { path: /swagger-ui } }")
///     .load()?;
/// let openapi = &cfg.chassis().openapi;
/// assert_eq!(openapi.path, "/v3/api-docs.json");
/// assert_eq!(openapi.yaml_path(), "/v3/api-docs.yaml");
/// assert!(openapi.ui.enabled);
/// # Ok::<(), ms_chassis::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OpenApiSection {
    /// A hand-written spec (spec-first), OpenAPI 3.0.x or 3.1, JSON or YAML. Default
    /// `null`: the code-first spec given to
    /// [`Service::with_openapi`](crate::Service::with_openapi), if any.
    pub file: Option<String>,
    /// Where the spec in effect is served as JSON; it must end in `.json`, and the YAML
    /// twin is served at the same stem with `.yaml`. Default `/openapi.json`.
    pub path: String,
    /// A fixed public path prefix the service is reached under (`/api`), for the spec's
    /// `servers` when a request carries no valid `X-Forwarded-Prefix`. Default `null`.
    pub base_path: Option<String>,
    /// Describe the health and metrics endpoints in the published spec too. Default false.
    pub include_chassis: bool,
    /// Serve the spec and the Swagger UI on the management listener, with the other
    /// chassis endpoints, rather than on the main one. Default false: the docs stay on the
    /// main listener, where the routes they describe are, so "Try it out" reaches them.
    /// Needs `server.management`.
    pub management: bool,
    /// The Swagger UI.
    pub ui: UiSection,
    /// Checking requests and responses against the spec.
    pub validation: ValidationSection,
    /// Make operations of the spec that no route serves, and routes that no operation
    /// describes, a startup error rather than warnings. Default false.
    pub strict_routes: bool,
}

impl Default for OpenApiSection {
    fn default() -> Self {
        Self {
            file: None,
            path: "/openapi.json".to_owned(),
            base_path: None,
            include_chassis: false,
            management: false,
            ui: UiSection::default(),
            validation: ValidationSection::default(),
            strict_routes: false,
        }
    }
}

/// `openapi.ui:` the Swagger UI page, served offline from embedded assets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct UiSection {
    /// Serve the Swagger UI whenever a spec is in effect. Default true.
    pub enabled: bool,
    /// Where the page is served; `/docs` redirects to `/docs/`, and its assets are under
    /// it. Default `/docs`.
    pub path: String,
}

impl Default for UiSection {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/docs".to_owned(),
        }
    }
}

/// `openapi.validation:` what is checked against the spec in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ValidationSection {
    /// Check every request's parameters and body before the handler; a request that fails
    /// gets 400 problem+json. Default true.
    pub requests: bool,
    /// Check responses against the spec: `off` (default), `log` or `reject`.
    pub responses: ResponseValidation,
    /// Reject query parameters the operation does not declare. Default false.
    pub strict: bool,
    /// Most violations listed in one problem response. Default 100.
    pub max_errors: usize,
}

impl Default for ValidationSection {
    fn default() -> Self {
        Self {
            requests: true,
            responses: ResponseValidation::Off,
            strict: false,
            max_errors: 100,
        }
    }
}

/// `openapi.validation.responses`: what a response that breaks the spec leads to.
///
/// ```
/// use ms_chassis::{config::ConfigLoader, openapi::ResponseValidation};
/// let cfg = ConfigLoader::new().yaml("openapi: { validation: { responses: log } }").load()?;
/// assert_eq!(cfg.chassis().openapi.validation.responses, ResponseValidation::Log);
/// let e = ConfigLoader::new()
///     .yaml("openapi: { validation: { responses: loud } }")
///     .load()
///     .unwrap_err();
/// assert!(e.to_string().contains("expected one of off, log, reject"), "{e}");
/// # Ok::<(), ms_chassis::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseValidation {
    /// Responses are not checked (the default).
    #[default]
    Off,
    /// A mismatch is logged, with the route and the JSON pointer, and counted.
    Log,
    /// A mismatch is logged, counted, and replaced by a 500 problem+json.
    Reject,
}

/// Says what was expected and what was found, as the other config values do. `false`
/// reads as `off`, for YAML 1.1 habits.
impl<'de> Deserialize<'de> for ResponseValidation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::String(s) if s == "off" => Ok(Self::Off),
            Value::Bool(false) => Ok(Self::Off),
            Value::String(s) if s == "log" => Ok(Self::Log),
            Value::String(s) if s == "reject" => Ok(Self::Reject),
            _ => {
                let found = match &v {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                Err(serde::de::Error::custom(format!(
                    "expected one of off, log, reject, found {found}"
                )))
            }
        }
    }
}

/// Longest path accepted for `openapi.path`, `openapi.ui.path` and `openapi.base_path`.
const MAX_PATH_LEN: usize = 256;

/// Most violations `openapi.validation.max_errors` may ask for.
const MAX_ERRORS_LIMIT: usize = 10_000;

impl OpenApiSection {
    /// Where the YAML twin of the spec is served: [`path`](Self::path) with `.yaml` for
    /// `.json`.
    pub fn yaml_path(&self) -> String {
        let stem = self.path.strip_suffix(".json").unwrap_or(&self.path);
        format!("{stem}.yaml")
    }

    /// `base_path` as the spec's `servers` URL: without a trailing `/`, `None` for `/`.
    pub(crate) fn base_prefix(&self) -> Option<&str> {
        let b = self.base_path.as_deref()?.trim_end_matches('/');
        (!b.is_empty()).then_some(b)
    }

    /// Every path the section makes the chassis serve, given the spec is in effect, except
    /// the UI's assets, which live under `ui.path`.
    fn served_paths(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("path", self.path.clone()), ("path", self.yaml_path())];
        if self.ui.enabled {
            out.push(("ui.path", self.ui.path.clone()));
        }
        out
    }

    /// Rules that types alone cannot express; keys relative to `openapi`. `taken` lists
    /// the other chassis endpoints' paths (exact, or prefixes ending in `/`) with their
    /// keys, for collisions.
    /// `management_listener` says whether `server.management` is set.
    pub(crate) fn validate(
        &self,
        rules: &mut Rules<'_>,
        taken: &[(String, String)],
        management_listener: bool,
    ) {
        if self.management && !management_listener {
            rules.fail(
                "management",
                "expected false without a management listener: true moves the spec and the \
                 Swagger UI to the listener `server.management` configures, and it is not set",
            );
        }
        if let Some(file) = &self.file
            && file.trim().is_empty()
        {
            rules.fail(
                "file",
                "expected the path of a spec file, such as api.yaml, or null",
            );
        }
        let path_ok = check_path(rules, "path", &self.path);
        if path_ok && (!self.path.ends_with(".json") || self.path.len() <= ".json".len() + 1) {
            rules.fail(
                "path",
                format!(
                    "expected a path ending in `.json` (the YAML twin is served at the same \
                     stem with `.yaml`), such as /openapi.json, found {:?}",
                    self.path
                ),
            );
        }
        let ui_ok = check_path(rules, "ui.path", &self.ui.path);
        if ui_ok && self.ui.path.ends_with('/') {
            rules.fail(
                "ui.path",
                format!(
                    "expected a path without a trailing `/`, such as /docs (the page is \
                     served at /docs/), found {:?}",
                    self.ui.path
                ),
            );
        }
        if let Some(base) = &self.base_path {
            check_path(rules, "base_path", base);
        }
        if self.validation.max_errors == 0 || self.validation.max_errors > MAX_ERRORS_LIMIT {
            rules.fail(
                "validation.max_errors",
                format!(
                    "expected a number from 1 to {MAX_ERRORS_LIMIT}, found {}",
                    self.validation.max_errors
                ),
            );
        }
        if !path_ok || !ui_ok {
            return;
        }
        // Collisions with the other chassis endpoints, and between ours.
        let ui_dir = format!("{}/", self.ui.path);
        for (key, path) in self.served_paths() {
            if let Some((other_key, _)) = taken.iter().find(|(_, p)| covers(p, &path)) {
                rules.fail(
                    key,
                    format!("{path} is already served by the chassis ({other_key})"),
                );
            }
            if self.ui.enabled && key == "path" && path == self.ui.path {
                rules.fail(key, format!("{path} is also ui.path"));
            }
            if self.ui.enabled && key == "path" && path.starts_with(&ui_dir) {
                rules.fail(
                    key,
                    format!(
                        "{path} is under ui.path ({}), where the UI's assets are",
                        self.ui.path
                    ),
                );
            }
        }
        if self.ui.enabled
            && let Some((other_key, p)) = taken.iter().find(|(_, p)| p.starts_with(&ui_dir))
        {
            rules.fail(
                "ui.path",
                format!(
                    "the UI's pages under {ui_dir} would hide {p}, served by the chassis \
                     ({other_key})"
                ),
            );
        }
    }
}

/// Whether the chassis path `taken` (exact, or a prefix ending in `/`) serves `path`.
fn covers(taken: &str, path: &str) -> bool {
    taken == path || (taken.ends_with('/') && path.starts_with(taken))
}

/// Checks a configured URL path: starts with `/`, bounded, only unreserved characters
/// and `/`, no empty, `.` or `..` segment. Reports at `key` and says whether it passed.
fn check_path(rules: &mut Rules<'_>, key: &str, path: &str) -> bool {
    let problem = if !path.starts_with('/') {
        Some("expected a path starting with `/`")
    } else if path.len() < 2 {
        Some("expected a path below the root, not `/` alone")
    } else if path.len() > MAX_PATH_LEN {
        Some("expected a path of at most 256 characters")
    } else if !path.bytes().all(is_path_byte) {
        Some("expected only letters, digits, `-`, `.`, `_`, `~` and `/` in the path")
    } else if path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("expected no empty, `.` or `..` segment in the path")
    } else {
        None
    };
    match problem {
        Some(p) => {
            let shown: String = path.chars().take(64).collect();
            rules.fail(key, format!("{p}, found {shown:?}"));
            false
        }
        None => true,
    }
}

/// The bytes a configured or forwarded path may hold: RFC 3986 unreserved and `/`.
pub(crate) fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigLoader;

    fn errors(yaml: &str) -> Vec<(String, String)> {
        let e = ConfigLoader::new().yaml(yaml).load().unwrap_err();
        e.diagnostics()
            .iter()
            .map(|d| (d.key.clone().unwrap_or_default(), d.message.clone()))
            .collect()
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let cfg = ConfigLoader::new().load().unwrap();
        let o = &cfg.chassis().openapi;
        assert_eq!(o.file, None);
        assert_eq!(
            (o.path.as_str(), o.yaml_path().as_str()),
            ("/openapi.json", "/openapi.yaml")
        );
        assert_eq!(o.base_path, None);
        assert!(!o.include_chassis && !o.strict_routes && !o.management);
        assert!(o.ui.enabled);
        assert_eq!(o.ui.path, "/docs");
        assert!(o.validation.requests && !o.validation.strict);
        assert_eq!(o.validation.responses, super::ResponseValidation::Off);
        assert_eq!(o.validation.max_errors, 100);
        let shown = &cfg.redacted()["openapi"];
        assert_eq!(shown["file"], serde_json::Value::Null, "null, not left out");
        assert_eq!(shown["base_path"], serde_json::Value::Null);
        let off = ConfigLoader::new()
            .yaml("openapi: { validation: { responses: false } }")
            .load()
            .unwrap();
        assert_eq!(
            off.chassis().openapi.validation.responses,
            super::ResponseValidation::Off
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_a_suggestion() {
        let found = errors("openapi:\n  ui: { enabled: true, pth: /x }\n  include_chasis: true\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "openapi.include_chasis");
        assert!(
            found[0].1.contains("did you mean `include_chassis`?"),
            "{found:?}"
        );
        assert_eq!(found[1].0, "openapi.ui.pth");
        assert!(found[1].1.contains("did you mean `path`?"), "{found:?}");
    }

    #[test]
    fn every_bad_value_is_named() {
        let found = errors(
            "openapi:\n  file: ''\n  path: openapi.json\n  base_path: '/api/../x'\n  \
             ui: { path: /docs/ }\n  validation: { max_errors: 0, responses: loud }\n",
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "openapi.validation.responses",
                "openapi.file",
                "openapi.path",
                "openapi.ui.path",
                "openapi.base_path",
                "openapi.validation.max_errors",
            ],
            "{found:?}"
        );
        assert!(found[2].1.contains("starting with `/`"), "{found:?}");
        assert!(found[4].1.contains("`..` segment"), "{found:?}");
        for (yaml, key, says) in [
            (
                "openapi: { path: /openapi }",
                "openapi.path",
                "ending in `.json`",
            ),
            (
                "openapi: { path: '/a b.json' }",
                "openapi.path",
                "only letters",
            ),
            (
                "openapi: { ui: { path: / } }",
                "openapi.ui.path",
                "below the root",
            ),
            (
                "openapi: { base_path: 'http://x' }",
                "openapi.base_path",
                "starting with `/`",
            ),
            (
                "openapi: { management: true }",
                "openapi.management",
                "`server.management` configures, and it is not set",
            ),
        ] {
            let found = errors(yaml);
            assert_eq!(found.len(), 1, "{yaml}: {found:?}");
            assert_eq!(found[0].0, key, "{yaml}");
            assert!(found[0].1.contains(says), "{yaml}: {found:?}");
        }
    }

    #[test]
    fn paths_must_not_collide_with_the_chassis_endpoints() {
        for (yaml, key, says) in [
            (
                "openapi: { ui: { path: /metrics } }",
                "openapi.ui.path",
                "metrics.path",
            ),
            (
                "metrics: { path: /docs }\nopenapi: {}",
                "openapi.ui.path",
                "metrics.path",
            ),
            (
                "openapi: { ui: { path: /health } }",
                "openapi.ui.path",
                "(health)",
            ),
            (
                "openapi: { ui: { path: /admin } }",
                "openapi.ui.path",
                "hide /admin/info",
            ),
            (
                "openapi: { path: /admin/breakers/x.json }",
                "openapi.path",
                "(admin)",
            ),
            (
                "openapi: { path: /docs/openapi.json }",
                "openapi.path",
                "under ui.path",
            ),
            (
                "openapi: { path: /docs.json, ui: { path: /docs.yaml } }",
                "openapi.path",
                "",
            ),
        ] {
            let found = errors(yaml);
            assert!(!found.is_empty(), "{yaml}");
            assert_eq!(found[0].0, key, "{yaml}: {found:?}");
            assert!(found[0].1.contains(says), "{yaml}: {found:?}");
        }
        // With metrics off, its path is free; with the UI off, its path is.
        for yaml in [
            "metrics: { enabled: false, path: /docs }",
            "openapi: { ui: { enabled: false, path: /metrics } }",
            "openapi: { path: /docs/openapi.json, ui: { enabled: false } }",
        ] {
            ConfigLoader::new().yaml(yaml).load().unwrap();
        }
    }
}
