//! What `build.rs` captured about the build, for `/admin/info` and the
//! `ms_chassis_build_info` metric. Each value is "unknown" when it could not be found.

/// The chassis crate's version.
pub(crate) const CHASSIS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built: `MS_BUILD_GIT_COMMIT` or `GIT_COMMIT` at build time, else
/// `git rev-parse HEAD` of the chassis's source tree.
pub(crate) const GIT_COMMIT: &str = env!("MS_CHASSIS_GIT_COMMIT");

/// When the chassis crate was built (RFC 3339, UTC; `SOURCE_DATE_EPOCH` when set).
pub(crate) const BUILD_TIME: &str = env!("MS_CHASSIS_BUILD_TIME");

/// `rustc --version` without the leading `rustc `: `1.95.0 (hash date)`.
pub(crate) const RUSTC: &str = env!("MS_CHASSIS_RUSTC");

/// The compiler's version number alone (`1.95.0`), for a metric label.
pub(crate) fn rustc_version() -> &'static str {
    RUSTC.split_whitespace().next().unwrap_or(RUSTC)
}
