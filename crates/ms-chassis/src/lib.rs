#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod build_info;
mod chassis_config;
pub mod client;
pub mod config;
mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
mod reload;
pub mod resilience;
pub mod server;
mod service;
pub mod telemetry;
pub mod testing;

/// The repository README's examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct RepositoryReadme;

pub use admin::AdminSection;
pub use chassis_config::{ChassisConfig, Config, ConfigWatch, ServiceSection};
pub use error::{Error, Result};
pub use server::Problem;
pub use service::{CancellationToken, RunningService, ServeOptions, Service, ServiceBuilder};

/// Re-exported so services need no direct axum dependency for the basics.
pub use axum;

/// The names a typical service needs.
pub mod prelude {
    pub use crate::client::{ClientError, HttpClient};
    pub use crate::health::{CheckOutcome, Probe};
    pub use crate::path;
    pub use crate::{Problem, Result, Service};
    pub use axum::Router;
    pub use axum::extract::{Json, Path, Query, State};
    pub use axum::http::StatusCode;
    pub use axum::response::{IntoResponse, Response};
    pub use axum::routing::{delete, get, patch, post, put};
}
