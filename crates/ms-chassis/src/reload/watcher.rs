//! Watches the config files and reloads when their contents change.
//!
//! The watch is on the directories holding the files, not on the files: editors and
//! Kubernetes replace a file by renaming another over it (a ConfigMap swaps its `..data`
//! link), which ends a watch on the file itself. Events for the config file names (and for
//! `..`-prefixed names, for ConfigMaps) wake the task; a burst of them is coalesced until
//! the directory has been quiet for [`DEBOUNCE`]; then the files are read and the config is
//! reloaded only if their bytes differ from what the last load read, so a `touch`, a no-op
//! save, our own read or an edit already loaded through the admin endpoint never counts as a
//! reload. One task per service, stopped by the service's shutdown token; the
//! notify watcher (and its thread) lives in that task and goes with it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Reloader, Trigger};

/// How long the files must be left alone before a reload.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// The files, each made absolute against its canonical directory.
struct Watched {
    files: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    names: BTreeSet<OsString>,
}

impl Watched {
    fn new(files: &[PathBuf]) -> Self {
        let mut w = Watched {
            files: Vec::new(),
            dirs: BTreeSet::new(),
            names: BTreeSet::new(),
        };
        for f in files {
            let Some(name) = f.file_name() else { continue };
            let parent = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let Ok(dir) = std::fs::canonicalize(parent) else {
                continue;
            };
            w.files.push(dir.join(name));
            w.dirs.insert(dir);
            w.names.insert(name.to_owned());
        }
        w
    }

    /// Whether an event at `path` may concern the config.
    fn concerns(&self, path: &Path) -> bool {
        let in_dir = path.parent().is_some_and(|p| self.dirs.contains(p));
        let name = path.file_name();
        in_dir
            && name.is_some_and(|n| self.names.contains(n) || n.to_string_lossy().starts_with(".."))
    }
}

/// Starts the watcher task, or returns `None` when there is nothing to watch or the
/// platform refuses (then reload still works through the admin endpoint).
pub(crate) fn spawn(
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let watched = Arc::new(Watched::new(&reloader.watched_files()));
    if watched.files.is_empty() {
        return None;
    }
    let (tx, mut rx) = watch::channel(());
    let filter = watched.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // An error (an overflowed queue, say) may hide a change: look again.
            tx.send_replace(());
            return;
        };
        if event.kind.is_access() {
            return;
        }
        if event.need_rescan() || event.paths.iter().any(|p| filter.concerns(p)) {
            tx.send_replace(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config files; reload with POST /admin/config/reload");
            return None;
        }
    };
    for dir in &watched.dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a config directory; reload with POST /admin/config/reload");
            return None;
        }
    }
    let files: Vec<String> = watched
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    tracing::info!(
        files = files.join(","),
        "watching the config files for changes"
    );

    Some(tokio::spawn(async move {
        // Dropped when the task ends, which stops the watcher's thread.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
            // Wait for the burst to end.
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
            if reloader.files_changed().await {
                reloader.reload(Trigger::File).await;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_names_and_configmap_links_concern_us() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watched::new(&[
            dir.path().join("config.yaml"),
            dir.path().join("config.dev.yaml"),
        ]);
        let d = std::fs::canonicalize(dir.path()).unwrap();
        assert!(w.concerns(&d.join("config.yaml")));
        assert!(w.concerns(&d.join("config.dev.yaml")));
        assert!(w.concerns(&d.join("..data")));
        assert!(!w.concerns(&d.join("app.log")));
        assert!(!w.concerns(&d.join(".config.yaml.swp")));
        assert!(!w.concerns(&d.join("sub").join("config.yaml")));
    }

    #[test]
    fn a_relative_file_is_watched_in_the_working_directory() {
        let w = Watched::new(&[PathBuf::from("config.yaml")]);
        let cwd = std::fs::canonicalize(".").unwrap();
        assert_eq!(w.files, [cwd.join("config.yaml")]);
    }
}
