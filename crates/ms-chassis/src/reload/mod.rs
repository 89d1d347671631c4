//! Validated hot reload: load the config again from the same inputs, check it, apply what
//! can change live, and say what needs a restart.
//!
//! A reload starts from a change to the config files (see [`watcher`]) or from
//! `POST /admin/config/reload`. The new config goes through the whole loader — files,
//! profile, environment as captured at startup, decryption, types, rules — and then through
//! every typed subscriber of [`ConfigWatch`](crate::config::ConfigWatch); if anything
//! rejects it, the old config stays, the error is logged, and
//! `ms_chassis_config_reloads_total{result="error"}` counts it. Otherwise the parts that can
//! change live take their new settings, subscribers get their new values, and the keys that
//! differ from what the process started with but cannot change live are reported as
//! `restart_required` until a restart (or a revert) clears them.
//!
//! A part that takes its new settings live can still refuse them once the config is in:
//! a client whose new settings cannot be built keeps its previous ones. The report lists
//! it under `failed`, with the reason, and its keys are not `applied`: an operator reading
//! "applied" must be able to trust that the service runs with those values.
//!
//! Reloads are serialized: a file change and an admin call never interleave.

pub(crate) mod watcher;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntCounterVec;
use serde::Serialize;

use crate::client::Clients;
use crate::config::{ConfigError, ConfigLoader, Invalid, is_under};
use crate::health::Health;
use crate::resilience::shedding::AdaptiveLimit;
use crate::telemetry::{levels, otel};
use crate::{Config, ConfigWatch};

/// Keys the chassis applies live. Everything else it owns needs a restart; the user's keys
/// are live where a [`ConfigWatch`] subscriber follows them.
const LIVE: [&str; 11] = [
    "logging.level",
    "logging.access",
    "health",
    "tracing.sampler",
    "admin",
    // The adaptive limit's tuning; `enabled`, `initial_limit` and `retry_after` need a
    // restart.
    "resilience.load_shedding.min_limit",
    "resilience.load_shedding.max_limit",
    "resilience.load_shedding.tolerance",
    "resilience.load_shedding.smoothing",
    "resilience.load_shedding.window",
    // A client built with `svc.client` follows its `clients.<name>` keys (which
    // `clients.default` fills in); one not built yet reads the config current when it is.
    "clients",
];

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Trigger {
    /// A change to a config file.
    File,
    /// `POST /admin/config/reload`.
    Endpoint,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Endpoint => "endpoint",
        }
    }
}

/// The outcome of one reload: key paths only, never values.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReloadReport {
    /// `success` or `error`.
    pub(crate) result: &'static str,
    pub(crate) trigger: Trigger,
    /// Keys whose value differs from the config in use before this reload.
    pub(crate) changed: Vec<String>,
    /// Changed keys now in effect.
    pub(crate) applied: Vec<String>,
    /// Parts that refused their new settings and keep their previous ones; their changed
    /// keys are not in `applied`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) failed: Vec<Failure>,
    /// Changed keys not in effect because something overrides them (`RUST_LOG` overrides
    /// `logging.level`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) overridden: Vec<String>,
    /// Keys whose value differs from the one the process started with and cannot change
    /// live: they take effect at the next start.
    pub(crate) restart_required: Vec<String>,
    /// For an error: every problem found, one per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// For an error: the same problems, structured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<ProblemEntry>,
}

/// A part that could not take its new settings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Failure {
    /// The part: `clients.books`.
    pub(crate) part: String,
    /// The key at fault: `clients.books.url`.
    pub(crate) key: String,
    /// Why.
    pub(crate) message: String,
}

/// One problem with a rejected config.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProblemEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    message: String,
}

impl ReloadReport {
    pub(crate) fn is_success(&self) -> bool {
        self.result == "success"
    }
}

/// Reloads one service's config. One per `Service`, shared by its watcher and its admin
/// endpoint.
pub(crate) struct Reloader {
    loader: ConfigLoader,
    watch: ConfigWatch,
    /// The config the process started with, for what cannot change live.
    started: Config,
    health: Health,
    clients: Clients,
    access_log: Arc<AtomicBool>,
    reloads: IntCounterVec,
    serial: tokio::sync::Mutex<()>,
    /// The server's adaptive limit, when load shedding is on.
    load_shedding: std::sync::OnceLock<AdaptiveLimit>,
    /// The contents of the watched files when the config was last loaded, so that the
    /// watcher can tell a real edit from a touch or an already-loaded change.
    loaded_files: std::sync::Mutex<Vec<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// The bytes of each file (`None` for one that cannot be read).
fn contents(files: &[std::path::PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

fn joined(keys: &[String]) -> String {
    keys.join(",")
}

impl Reloader {
    pub(crate) fn new(
        loader: ConfigLoader,
        watch: ConfigWatch,
        health: Health,
        clients: Clients,
        access_log: Arc<AtomicBool>,
        reloads: IntCounterVec,
    ) -> Self {
        let loaded_files = std::sync::Mutex::new(contents(&loader.watched_files()));
        Self {
            started: watch.current(),
            loaded_files,
            loader,
            watch,
            health,
            clients,
            access_log,
            reloads,
            serial: tokio::sync::Mutex::new(()),
            load_shedding: std::sync::OnceLock::new(),
        }
    }

    /// Retunes `limit` from `resilience.load_shedding` on every reload that changes it.
    pub(crate) fn follow_load_shedding(&self, limit: AdaptiveLimit) {
        let _ = self.load_shedding.set(limit);
    }

    /// The config files to watch.
    pub(crate) fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.loader.watched_files()
    }

    /// The live config.
    pub(crate) fn watch(&self) -> &ConfigWatch {
        &self.watch
    }

    /// Whether the watched files differ from what the last load read. The files are read
    /// on a blocking thread, off the runtime's workers.
    pub(crate) async fn files_changed(&self) -> bool {
        let files = self.loader.watched_files();
        let Ok(now) = tokio::task::spawn_blocking(move || contents(&files)).await else {
            return true;
        };
        *self
            .loaded_files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            != now
    }

    /// Loads, validates and applies the config; logs and counts the outcome.
    pub(crate) async fn reload(&self, trigger: Trigger) -> ReloadReport {
        let _serial = self.serial.lock().await;
        // Reading files and decrypting `enc_` values block: a blocking thread does both.
        let loader = self.loader.clone();
        let read = tokio::task::spawn_blocking(move || {
            // Read before the load: an edit in between makes the next check see a change.
            let files = contents(&loader.watched_files());
            (files, loader.load())
        })
        .await;
        let report = match read {
            Ok((files, next)) => {
                *self
                    .loaded_files
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = files;
                match next.and_then(|next| self.try_reload(trigger, next)) {
                    Ok(report) => report,
                    Err(e) => self.rejected(trigger, &e),
                }
            }
            Err(e) => {
                let e = ConfigError::new(None, None, format!("the config load failed: {e}"));
                self.rejected(trigger, &e)
            }
        };
        self.reloads.with_label_values(&[report.result]).inc();
        report
    }

    fn try_reload(&self, trigger: Trigger, next: Config) -> Result<ReloadReport, ConfigError> {
        let current = self.watch.current();
        let changed = next.changed_since(&current);
        let subscribed = self.watch.subscribed_keys();
        let live = |k: &String| {
            LIVE.iter().any(|p| is_under(k, p)) || subscribed.iter().any(|p| is_under(k, p))
        };
        let touched = |section: &str| changed.iter().any(|k| is_under(k, section));
        let pending = self.watch.prepare(next.clone(), &changed)?;

        let c = next.chassis();
        let mut overridden = Vec::new();
        if touched("logging.level") {
            let applied = match levels::get() {
                Some(l) => l
                    .set_config_level(&c.logging.level)
                    .map_err(|e| ConfigError::from(Invalid::new("logging.level", e.clone())))?,
                None => false,
            };
            if !applied {
                overridden.push("logging.level".to_owned());
            }
        }
        if touched("logging.access") {
            self.access_log.store(c.logging.access, Ordering::Relaxed);
        }
        if touched("health") {
            self.health.apply(&c.health);
        }
        if touched("tracing.sampler") {
            otel::set_sampler(&c.tracing.sampler, next.profile());
        }
        if touched("resilience.load_shedding")
            && let Some(limit) = self.load_shedding.get()
        {
            limit
                .reconfigure(&c.resilience.load_shedding)
                .map_err(|e| ConfigError::from(e.under("resilience.load_shedding")))?;
        }
        pending.commit();
        // After the commit, so that a client built meanwhile reads the new settings, and
        // after every step that can reject the reload, which would leave clients ahead.
        let failed: Vec<Failure> = self
            .clients
            .reconfigure(&c.clients, &changed)
            .into_iter()
            .map(|(client, e)| Failure {
                part: format!("clients.{client}"),
                key: e.key,
                message: e.message,
            })
            .collect();

        let restart_required: Vec<String> = next
            .changed_since(&self.started)
            .into_iter()
            .filter(|k| !live(k))
            .collect();
        let applied: Vec<String> = changed
            .iter()
            .filter(|k| live(k) && !overridden.contains(k))
            .filter(|k| !failed.iter().any(|f| is_under(k, &f.part)))
            .cloned()
            .collect();
        let report = ReloadReport {
            result: "success",
            trigger,
            changed,
            applied,
            failed,
            overridden,
            restart_required,
            error: None,
            errors: Vec::new(),
        };
        // Logged after the new level is in force.
        if !report.failed.is_empty() {
            let failed: Vec<String> = report
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.key, f.message))
                .collect();
            tracing::error!(
                trigger = trigger.as_str(),
                changed = joined(&report.changed),
                applied = joined(&report.applied),
                failed = failed.join("; "),
                overridden = joined(&report.overridden),
                restart_required = joined(&report.restart_required),
                "config reloaded, but some parts refused their new settings and keep their \
                 previous ones"
            );
        } else if report.restart_required.is_empty() {
            tracing::info!(
                trigger = trigger.as_str(),
                changed = joined(&report.changed),
                applied = joined(&report.applied),
                overridden = joined(&report.overridden),
                restart_required = "",
                "config reloaded"
            );
        } else {
            tracing::warn!(
                trigger = trigger.as_str(),
                changed = joined(&report.changed),
                applied = joined(&report.applied),
                overridden = joined(&report.overridden),
                restart_required = joined(&report.restart_required),
                "config reloaded; some settings take effect only after a restart"
            );
        }
        Ok(report)
    }

    fn rejected(&self, trigger: Trigger, e: &ConfigError) -> ReloadReport {
        // Config errors name keys and locations, and never hold a decrypted value.
        tracing::error!(
            trigger = trigger.as_str(),
            error = %e,
            "config reload failed; keeping the current config"
        );
        ReloadReport {
            result: "error",
            trigger,
            changed: Vec::new(),
            applied: Vec::new(),
            failed: Vec::new(),
            overridden: Vec::new(),
            restart_required: Vec::new(),
            error: Some(e.to_string()),
            errors: e
                .diagnostics()
                .iter()
                .map(|d| ProblemEntry {
                    location: d.location.clone(),
                    key: d.key.clone(),
                    message: d.message.clone(),
                })
                .collect(),
        }
    }
}
