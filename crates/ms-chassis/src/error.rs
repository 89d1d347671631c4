//! The chassis error type.

use std::net::SocketAddr;

use crate::config::ConfigError;

/// Everything that can stop a service from starting or serving.
///
/// `Debug` prints the same text as `Display`, so `fn main() -> ms_chassis::Result<()>` exits
/// with a readable message rather than a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message lists every problem with its location.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({setting}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which config key set it.
        setting: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A metric could not be registered (a duplicate name, an invalid name).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The spec in effect could not be set up.
    #[error("openapi: {0}")]
    OpenApi(#[from] crate::openapi::OpenApiError),
    /// The server failed while running.
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    /// A task of the server panicked or was cancelled; the message keeps the panic's.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `Result` with the chassis [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
