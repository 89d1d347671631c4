//! [`ClientResponse`]: a response whose body the helpers read within the call's bounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;

use super::error::{ClientError, ClientErrorKind};
use crate::resilience::timeout::LazyDeadline;

/// A response from an [`HttpClient`](super::HttpClient).
///
/// [`bytes`](Self::bytes), [`text`](Self::text) and [`json`](Self::json) read the body
/// within what is left of the call's `total_timeout` and at most `max_response_body`
/// bytes, so a slow or huge body cannot hold the caller without bound.
#[derive(Debug)]
pub struct ClientResponse {
    inner: http::Response<reqwest::Body>,
    bounds: BodyBounds,
    client: Arc<str>,
    method: Method,
    path: String,
}

/// What bounds reading a response body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyBounds {
    /// The call's deadline: its start plus `total_timeout`.
    pub(crate) deadline: tokio::time::Instant,
    /// `total_timeout`, to name it when the deadline passes.
    pub(crate) total_timeout: std::time::Duration,
    /// `max_response_body`.
    pub(crate) limit: u64,
}

impl ClientResponse {
    pub(crate) fn new(
        inner: http::Response<reqwest::Body>,
        bounds: BodyBounds,
        client: Arc<str>,
        method: Method,
        path: String,
    ) -> Self {
        ClientResponse {
            inner,
            bounds,
            client,
            method,
            path,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// Fails with [`ClientErrorKind::Status`] unless the status is 2xx.
    pub fn error_for_status(self) -> Result<Self, ClientError> {
        let status = self.status();
        if status.is_success() {
            Ok(self)
        } else {
            Err(self.error(ClientErrorKind::Status(status)))
        }
    }

    /// The whole body, within the bounds.
    pub async fn bytes(self) -> Result<Bytes, ClientError> {
        let b = self.bounds;
        let limit = usize::try_from(b.limit).unwrap_or(usize::MAX);
        let body = self.inner.into_body();
        let read = WithinDeadline {
            inner: Limited::new(body, limit).collect(),
            deadline: LazyDeadline::new(b.deadline),
        };
        let err = |kind| ClientError::new(&self.client, &self.method, &self.path, kind);
        match read.await {
            Some(Ok(collected)) => Ok(collected.to_bytes()),
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(err(ClientErrorKind::BodyTooLarge(b.limit)))
            }
            Some(Err(e)) => Err(err(ClientErrorKind::Transport(e))),
            None => Err(err(ClientErrorKind::Timeout {
                after: b.total_timeout,
            })),
        }
    }

    /// The body as text (invalid UTF-8 replaced), within the bounds.
    pub async fn text(self) -> Result<String, ClientError> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The body parsed as JSON into `T`, within the bounds. Does not look at the status:
    /// use [`error_for_status`](Self::error_for_status) first, or the client's JSON helpers.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let (client, method, path) = (self.client.clone(), self.method.clone(), self.path.clone());
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::new(&client, &method, &path, ClientErrorKind::Decode(e)))
    }

    /// The underlying response, to stream the body without the client's bounds.
    pub fn into_inner(self) -> http::Response<reqwest::Body> {
        self.inner
    }

    fn error(&self, kind: ClientErrorKind) -> ClientError {
        ClientError::new(&self.client, &self.method, &self.path, kind)
    }
}

pin_project! {
    /// `inner` until `deadline`, then `None`: `tokio::time::timeout_at`, with the timer
    /// armed only once `inner` is not done on its first poll. A small body usually arrives
    /// with the headers, and then reading it never touches the timer wheel.
    struct WithinDeadline<F> {
        #[pin]
        inner: F,
        #[pin]
        deadline: LazyDeadline,
    }
}

impl<F: Future> Future for WithinDeadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(Some(out));
        }
        if this.deadline.poll_expired(cx) {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_deadline_is_ready_at_once_or_cut_at_the_deadline() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let ready = WithinDeadline {
            inner: std::future::ready(7),
            deadline: LazyDeadline::new(deadline),
        };
        assert_eq!(ready.await, Some(7));

        let slow = WithinDeadline {
            inner: tokio::time::sleep(Duration::from_millis(20)),
            deadline: LazyDeadline::new(deadline),
        };
        assert_eq!(slow.await, Some(()));

        let start = tokio::time::Instant::now();
        let hung = WithinDeadline {
            inner: std::future::pending::<()>(),
            deadline: LazyDeadline::new(deadline),
        };
        assert_eq!(hung.await, None);
        assert_eq!(tokio::time::Instant::now(), deadline, "cut at the deadline");
        assert!(start <= deadline);

        let past = WithinDeadline {
            inner: std::future::pending::<()>(),
            deadline: LazyDeadline::new(deadline - Duration::from_millis(10)),
        };
        assert_eq!(past.await, None, "a passed deadline cuts at once");
    }
}
