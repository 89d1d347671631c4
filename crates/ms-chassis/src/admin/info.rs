//! `GET /admin/info`: what is running — the service, the build, and since when.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::Config;
use crate::build_info;

/// When the service started, on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    pub(crate) at: SystemTime,
    pub(crate) instant: Instant,
}

impl Started {
    pub(crate) fn now() -> Self {
        Self {
            at: SystemTime::now(),
            instant: Instant::now(),
        }
    }
}

/// The body of `GET /admin/info`.
#[derive(Debug, Serialize)]
pub(crate) struct Info {
    service: String,
    version: String,
    chassis_version: &'static str,
    git_commit: &'static str,
    build_time: &'static str,
    rustc: &'static str,
    profile: Option<String>,
    start_time: String,
    uptime_seconds: f64,
}

impl Info {
    /// `config` is the one the service started with: name and version change only with a
    /// restart.
    pub(crate) fn new(config: &Config, started: Started) -> Self {
        let service = &config.chassis().service;
        Self {
            service: service.name.clone(),
            version: service.version.clone(),
            chassis_version: build_info::CHASSIS_VERSION,
            git_commit: build_info::GIT_COMMIT,
            build_time: build_info::BUILD_TIME,
            rustc: build_info::RUSTC,
            profile: config.profile().map(str::to_owned),
            start_time: humantime::format_rfc3339_millis(started.at).to_string(),
            uptime_seconds: (started.instant.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }
}
