//! The live log filter: a base from `logging.level` (or `RUST_LOG`), with per-target and
//! root overrides set at run time, each optionally reverting after a while.
//!
//! The filter is process-wide, like the subscriber it sits in, and is swapped through
//! `tracing_subscriber::reload` handles on the log layer and on the span layer (which share
//! the directives but never one filter; see [`super::logs`]). Overrides are kept apart from
//! the base so that a config reload changes the base without undoing an operator's
//! override, and so that an override can revert to whatever the base is by then, as
//! Dropwizard's log-level task does.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The levels a directive may set, lowest verbosity last.
pub(crate) const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Where the base filter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum BaseSource {
    /// `logging.level`; config reloads change it.
    #[serde(rename = "logging.level")]
    Config,
    /// The `RUST_LOG` environment variable, which wins over `logging.level` for the life
    /// of the process.
    #[serde(rename = "RUST_LOG")]
    RustLog,
}

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The process's live log filter.
pub(crate) struct LogLevels {
    state: Mutex<State>,
    /// Installs a filter string in the subscriber.
    apply: Apply,
}

struct State {
    base: String,
    source: BaseSource,
    /// By directive key: the target (`hyper`, `ms_chassis::access`), or `""` for the root.
    overrides: BTreeMap<String, Override>,
    next_id: u64,
}

struct Override {
    level: &'static str,
    id: u64,
    reverts_at: Option<SystemTime>,
    revert: Option<AbortHandle>,
}

/// What `GET /admin/loggers` shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct LoggersView {
    /// The filter in effect, in `EnvFilter` syntax.
    pub(crate) filter: String,
    /// Where the base filter came from.
    pub(crate) base: BaseSource,
    /// The level of every target without a directive of its own.
    pub(crate) root: LoggerView,
    /// Targets with a directive of their own, by target (with any `[span]` part).
    pub(crate) targets: BTreeMap<String, LoggerView>,
}

/// One logger's level.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct LoggerView {
    pub(crate) level: String,
    /// `config` (the base filter) or `admin` (an override).
    pub(crate) source: &'static str,
    /// For an override: the level the base filter would give, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) configured: Option<String>,
    /// For an override with a duration: when it reverts (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reverts_at: Option<String>,
}

static GLOBAL: OnceLock<LogLevels> = OnceLock::new();

/// The live filter, if the chassis installed the process's subscriber.
pub(crate) fn get() -> Option<&'static LogLevels> {
    GLOBAL.get()
}

/// Registers the live filter of the subscriber just installed.
pub(crate) fn install(base: String, source: BaseSource, apply: Apply) {
    let _ = GLOBAL.set(LogLevels {
        state: Mutex::new(State {
            base,
            source,
            overrides: BTreeMap::new(),
            next_id: 0,
        }),
        apply,
    });
}

/// An `EnvFilter` from a filter string, as the chassis reads them everywhere: a string with
/// no directives enables errors only.
pub(crate) fn env_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .with_default_directive(LevelFilter::ERROR.into())
        .parse(filter)
        .map_err(|e| e.to_string())
}

/// The directives of a filter string as (key, level): key `""` for a bare level.
fn directives(filter: &str) -> Vec<(String, String)> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| match d.rsplit_once('=') {
            Some((key, level)) => (key.to_owned(), level.to_ascii_lowercase()),
            None => (String::new(), d.to_ascii_lowercase()),
        })
        .collect()
}

/// A level name as one of [`LEVELS`], in any case.
pub(crate) fn parse_level(level: &str) -> Option<&'static str> {
    LEVELS
        .iter()
        .copied()
        .find(|l| l.eq_ignore_ascii_case(level.trim()))
}

/// Whether `target` can be a directive's target: a module path such as
/// `ms_chassis::access` or `hyper_util`.
pub(crate) fn valid_target(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 200
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

impl State {
    fn effective(&self) -> Vec<(String, String)> {
        let mut dirs = directives(&self.base);
        for (key, o) in &self.overrides {
            match dirs.iter_mut().find(|(k, _)| k == key) {
                Some(d) => d.1 = o.level.to_owned(),
                None => dirs.push((key.clone(), o.level.to_owned())),
            }
        }
        dirs
    }

    fn filter(&self) -> String {
        self.effective()
            .iter()
            .map(|(k, l)| {
                if k.is_empty() {
                    l.clone()
                } else {
                    format!("{k}={l}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn view(&self) -> LoggersView {
        let base: BTreeMap<String, String> = directives(&self.base).into_iter().collect();
        let effective = self.effective();
        let entry = |key: &str, level: &str| match self.overrides.get(key) {
            Some(o) => LoggerView {
                level: level.to_owned(),
                source: "admin",
                configured: base.get(key).cloned(),
                reverts_at: o
                    .reverts_at
                    .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            },
            None => LoggerView {
                level: level.to_owned(),
                source: "config",
                configured: None,
                reverts_at: None,
            },
        };
        let root = match effective.iter().find(|(k, _)| k.is_empty()) {
            Some((k, l)) => entry(k, l),
            // EnvFilter: no directive at all enables errors; directives without a bare
            // level leave every other target off.
            None if effective.is_empty() => entry("", "error"),
            None => entry("", "off"),
        };
        LoggersView {
            filter: self.filter(),
            base: self.source,
            root,
            targets: effective
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, l)| (k.clone(), entry(k, l)))
                .collect(),
        }
    }
}

impl LogLevels {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The levels now.
    pub(crate) fn view(&self) -> LoggersView {
        self.lock().view()
    }

    /// Replaces the base with a new `logging.level`, keeping overrides. Returns false
    /// (and changes nothing) when `RUST_LOG` set the base.
    pub(crate) fn set_config_level(&self, level: &str) -> Result<bool, String> {
        let mut state = self.lock();
        if state.source == BaseSource::RustLog {
            return Ok(false);
        }
        if state.base == level {
            return Ok(true);
        }
        let previous = std::mem::replace(&mut state.base, level.to_owned());
        if let Err(e) = (self.apply)(&state.filter()) {
            state.base = previous;
            return Err(e);
        }
        Ok(true)
    }

    /// Sets (`Some(level)`) or removes (`None`) the override of `target`, or of the root
    /// when `target` is `None`. With `revert_after`, the override is removed after that
    /// long, unless replaced in the meantime; the timer stops at `shutdown`.
    pub(crate) fn set_override(
        &'static self,
        target: Option<&str>,
        level: Option<&'static str>,
        revert_after: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Result<LoggersView, String> {
        let key = target.unwrap_or_default().to_owned();
        let mut state = self.lock();
        let previous = match level {
            Some(level) => {
                let id = state.next_id;
                state.next_id += 1;
                let revert = revert_after.map(|after| {
                    let key = key.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = tokio::time::sleep(after) => self.revert(&key, id),
                            () = shutdown.cancelled() => {}
                        }
                    })
                    .abort_handle()
                });
                let o = Override {
                    level,
                    id,
                    reverts_at: revert_after.map(|after| SystemTime::now() + after),
                    revert,
                };
                state.overrides.insert(key.clone(), o)
            }
            None => state.overrides.remove(&key),
        };
        if let Some(revert) = previous.as_ref().and_then(|p| p.revert.as_ref()) {
            revert.abort();
        }
        if let Err(e) = (self.apply)(&state.filter()) {
            // Put things back as they were.
            match previous {
                Some(p) => state.overrides.insert(key, p),
                None => state.overrides.remove(&key),
            };
            return Err(e);
        }
        Ok(state.view())
    }

    /// Removes override `id` of `key` if it is still the one in place.
    fn revert(&self, key: &str, id: u64) {
        let mut state = self.lock();
        if state.overrides.get(key).is_none_or(|o| o.id != id) {
            return;
        }
        let Some(o) = state.overrides.remove(key) else {
            return;
        };
        match (self.apply)(&state.filter()) {
            Ok(()) => {
                let filter = state.filter();
                drop(state);
                tracing::info!(
                    target: "ms_chassis::admin",
                    logger = if key.is_empty() { "root" } else { key },
                    expired_level = o.level,
                    filter,
                    "log level override expired; reverted"
                );
            }
            Err(e) => {
                state.overrides.insert(key.to_owned(), o);
                drop(state);
                tracing::warn!(target: "ms_chassis::admin", error = %e, "cannot revert a log level override");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(base: &str) -> State {
        State {
            base: base.to_owned(),
            source: BaseSource::Config,
            overrides: BTreeMap::new(),
            next_id: 0,
        }
    }

    fn set(s: &mut State, key: &str, level: &'static str) {
        s.overrides.insert(
            key.to_owned(),
            Override {
                level,
                id: 0,
                reverts_at: None,
                revert: None,
            },
        );
    }

    #[test]
    fn overrides_replace_or_extend_the_base_directives() {
        let mut s = state("info,hyper=warn");
        set(&mut s, "hyper", "debug");
        set(&mut s, "my_app::db", "trace");
        assert_eq!(s.filter(), "info,hyper=debug,my_app::db=trace");
        set(&mut s, "", "error");
        assert_eq!(s.filter(), "error,hyper=debug,my_app::db=trace");
        env_filter(&s.filter()).unwrap();
    }

    #[test]
    fn the_view_says_where_each_level_comes_from() {
        let mut s = state("INFO,hyper=warn");
        set(&mut s, "hyper", "debug");
        let v = s.view();
        assert_eq!(v.root.level, "info");
        assert_eq!(v.root.source, "config");
        assert_eq!(v.targets["hyper"].level, "debug");
        assert_eq!(v.targets["hyper"].source, "admin");
        assert_eq!(v.targets["hyper"].configured.as_deref(), Some("warn"));
    }

    #[test]
    fn the_root_without_a_bare_level_is_off_or_error() {
        assert_eq!(state("hyper=warn").view().root.level, "off");
        assert_eq!(state("").view().root.level, "error");
    }

    #[test]
    fn levels_and_targets_are_checked() {
        assert_eq!(parse_level(" DEBUG "), Some("debug"));
        assert_eq!(parse_level("loud"), None);
        assert!(valid_target("ms_chassis::access"));
        for bad in ["", "a=b", "a,b", "a b", "a[span]"] {
            assert!(!valid_target(bad), "{bad:?}");
        }
    }
}
