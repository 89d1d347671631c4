#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod build_info;
pub mod client;
pub mod config;
mod error;
pub mod health;
pub mod metrics;
mod reload;
pub mod resilience;
pub mod server;
mod service;
pub mod telemetry;

pub use error::{Error, Result};
pub use service::{CancellationToken, RunningService, Service, ServiceBuilder};

/// Re-exported so services need no direct axum dependency for the basics.
pub use axum;

/// The names a typical service needs.
pub mod prelude {
    pub use crate::health::{CheckOutcome, Probe};
    pub use crate::path;
    pub use crate::{Result, Service};
    pub use axum::Router;
    pub use axum::extract::{Json, Path, Query, State};
    pub use axum::http::StatusCode;
    pub use axum::routing::{delete, get, patch, post, put};
}
