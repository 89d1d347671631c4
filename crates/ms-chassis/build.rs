//! Captures what `/admin/info` and `ms_chassis_build_info` report about the build: the git
//! commit, the build time and the compiler. Each falls back to "unknown" rather than
//! failing, so a clean clone, a crate from a registry and a machine without git all build.
//!
//! - git commit: `MS_BUILD_GIT_COMMIT` (set it in CI or a Dockerfile to name the service's
//!   own commit), else `GIT_COMMIT`, else `git rev-parse HEAD` in this crate's directory;
//! - build time: `SOURCE_DATE_EPOCH` (reproducible builds), else now, as RFC 3339 UTC;
//! - rustc: `$RUSTC --version`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    for var in ["MS_BUILD_GIT_COMMIT", "GIT_COMMIT", "SOURCE_DATE_EPOCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let commit = env_value("MS_BUILD_GIT_COMMIT")
        .or_else(|| env_value("GIT_COMMIT"))
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());

    let built = env_value("SOURCE_DATE_EPOCH")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now);

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().trim_start_matches("rustc ").to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());

    println!("cargo:rustc-env=MS_CHASSIS_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=MS_CHASSIS_BUILD_TIME={}",
        humantime::format_rfc3339_seconds(built)
    );
    println!("cargo:rustc-env=MS_CHASSIS_RUSTC={rustc}");
}

fn env_value(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && !v.contains(['\n', '\r']))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// `git rev-parse HEAD`, and rerun when HEAD moves (a commit, a checkout).
fn git_commit() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let commit = git(&dir, &["rev-parse", "HEAD"])?;
    if !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut watch = vec![git(&dir, &["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&dir, &["rev-parse", "--git-path", &branch]));
    }
    watch.push(git(&dir, &["rev-parse", "--git-path", "packed-refs"]));
    for path in watch.into_iter().flatten() {
        let path = dir.join(path);
        // A path that does not exist would make every build rerun this script.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}
