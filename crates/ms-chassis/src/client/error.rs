//! [`ClientError`]: why a call through an [`HttpClient`](super::HttpClient) failed.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::resilience::{BoxError, ResilienceError};

/// A failed call: which client, which request, and why.
///
/// The message names the client, the method and the path (never the query string, which
/// may carry credentials), then the reason:
/// ``client `books`: GET /books/7: circuit breaker is open: call not attempted``.
/// Match on [`kind`](Self::kind) to act on the reason.
#[derive(Debug, thiserror::Error)]
#[error("client `{client}`: {method} {path}: {kind}")]
pub struct ClientError {
    client: Arc<str>,
    method: Method,
    path: String,
    #[source]
    kind: ClientErrorKind,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// An attempt (`timeout`) or the whole call (`total_timeout`) took too long.
    #[error("timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The bound that expired.
        after: Duration,
    },
    /// The client's circuit breaker is open: the call was not attempted.
    #[error("circuit breaker is open: call not attempted")]
    CircuitOpen,
    /// The client's bulkhead was full: the call was not attempted.
    #[error("bulkhead is full: call not attempted")]
    BulkheadFull,
    /// The client's rate limit was exhausted: the call was not attempted.
    #[error("rate limit exceeded: call not attempted")]
    RateLimited,
    /// A load shedder (a [`LoadShedLayer`](crate::resilience::shedding::LoadShedLayer)) was at its
    /// adaptive concurrency limit: the call was not attempted.
    #[error("load shedder at its concurrency limit: call not attempted")]
    Shed,
    /// No connection could be made: refused, unreachable, reset, DNS or TLS failure.
    #[error("cannot connect: {0}")]
    Connect(#[source] BoxError),
    /// The call failed in transit after connecting (a reset mid-response, a protocol error).
    #[error("transport error: {0}")]
    Transport(#[source] BoxError),
    /// The server answered with an error status (from
    /// [`error_for_status`](super::ClientResponse::error_for_status) and the JSON helpers).
    #[error("the server answered {0}")]
    Status(StatusCode),
    /// The response body was larger than `max_response_body`.
    #[error("the response body exceeds max_response_body ({0} bytes)")]
    BodyTooLarge(u64),
    /// The response body is not the JSON expected.
    #[error("the response body is not the JSON expected: {0}")]
    Decode(#[source] serde_json::Error),
    /// The request could not be built: a bad path or header, or a body that does not
    /// serialize.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    pub(crate) fn new(
        client: &Arc<str>,
        method: &Method,
        path: &str,
        kind: ClientErrorKind,
    ) -> Self {
        ClientError {
            client: Arc::clone(client),
            method: method.clone(),
            path: path.to_owned(),
            kind,
        }
    }

    /// Why the call failed.
    pub fn kind(&self) -> &ClientErrorKind {
        &self.kind
    }

    /// The client's name.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The status, for [`ClientErrorKind::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self.kind {
            ClientErrorKind::Status(s) => Some(s),
            _ => None,
        }
    }

    /// True for [`ClientErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ClientErrorKind::Timeout { .. })
    }

    /// True when a resilience layer refused the call, so the dependency never saw it.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.kind,
            ClientErrorKind::CircuitOpen
                | ClientErrorKind::BulkheadFull
                | ClientErrorKind::RateLimited
                | ClientErrorKind::Shed
        )
    }

    /// The status a handler would answer with when this failure ends its request: 504 for
    /// a timeout, 503 when the call was refused, 500 for a request that could not be built
    /// (the caller's bug), 502 otherwise.
    pub fn status_hint(&self) -> StatusCode {
        match self.kind {
            ClientErrorKind::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ if self.is_rejected() => StatusCode::SERVICE_UNAVAILABLE,
            ClientErrorKind::InvalidRequest(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl ClientErrorKind {
    /// A short, stable name: `timeout`, `circuit_open`, `bulkhead_full`, `rate_limited`,
    /// `shed`, `connect`, `transport`, `status`, `body_too_large`, `decode`,
    /// `invalid_request`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientErrorKind::Timeout { .. } => "timeout",
            ClientErrorKind::CircuitOpen => "circuit_open",
            ClientErrorKind::BulkheadFull => "bulkhead_full",
            ClientErrorKind::RateLimited => "rate_limited",
            ClientErrorKind::Shed => "shed",
            ClientErrorKind::Connect(_) => "connect",
            ClientErrorKind::Transport(_) => "transport",
            ClientErrorKind::Status(_) => "status",
            ClientErrorKind::BodyTooLarge(_) => "body_too_large",
            ClientErrorKind::Decode(_) => "decode",
            ClientErrorKind::InvalidRequest(_) => "invalid_request",
        }
    }
}

impl From<ResilienceError> for ClientErrorKind {
    fn from(e: ResilienceError) -> Self {
        // reqwest knows whether the connection was made; only for other errors does the
        // kind of the I/O error decide.
        let connect = inner_reqwest(&e).map_or_else(|| e.is_connect(), reqwest::Error::is_connect);
        match e {
            ResilienceError::Inner(inner) if connect => ClientErrorKind::Connect(inner),
            ResilienceError::Timeout { after } => ClientErrorKind::Timeout { after },
            ResilienceError::CircuitOpen { .. } => ClientErrorKind::CircuitOpen,
            ResilienceError::BulkheadFull { .. } => ClientErrorKind::BulkheadFull,
            ResilienceError::RateLimited { .. } => ClientErrorKind::RateLimited,
            ResilienceError::Shed { .. } => ClientErrorKind::Shed,
            ResilienceError::Inner(inner) => ClientErrorKind::Transport(inner),
        }
    }
}

/// The answer for a request that ends because a call to a dependency failed: the status
/// of [`ClientError::status_hint`] (502, 503 or 504; 500 for a request that could not be
/// built) with a generic detail that names no internal client, address or cause, so
/// callers learn nothing of the service's insides. The whole error is logged at `warn`,
/// with the request's trace and request ids, for the operator.
///
/// ```
/// use ms_chassis::prelude::*;
///
/// async fn featured(State(books): State<HttpClient>) -> Result<Json<serde_json::Value>, Problem> {
///     let book = books.get_json("/books/featured").await?;
///     Ok(Json(book))
/// }
/// # let _ = featured;
/// ```
impl From<ClientError> for crate::Problem {
    fn from(e: ClientError) -> Self {
        let status = e.status_hint();
        tracing::warn!(
            error = %e,
            client = %e.client,
            kind = e.kind.name(),
            status = status.as_u16(),
            "a call to a dependency failed"
        );
        let detail = match status {
            StatusCode::GATEWAY_TIMEOUT => {
                "a service this request depends on did not answer in time"
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                "a service this request depends on is unavailable; retry later"
            }
            StatusCode::INTERNAL_SERVER_ERROR => "the request could not be completed",
            _ => "a service this request depends on failed",
        };
        crate::Problem::new(status).with_detail(detail)
    }
}

fn inner_reqwest(e: &ResilienceError) -> Option<&reqwest::Error> {
    e.inner()?.downcast_ref::<reqwest::Error>()
}
