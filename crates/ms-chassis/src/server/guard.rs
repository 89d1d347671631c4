//! The request guard: panic catcher, concurrency limit with load shedding, body-size check
//! and timeout — steps 4 to 6 of the server stack, in that order, as one future.
//!
//! They are one future rather than a chain of tower-http and tower layers because this runs
//! on every request: the chain (`CatchPanic`, `HandleError`, `LoadShed`,
//! `GlobalConcurrencyLimit`, `Filter`, `Timeout`) boxes the response body and the error
//! future and converts errors back and forth, which cost about a tenth of bare axum's
//! throughput in `bench/`. Here it is one state machine with no allocation. The concurrency
//! permits are one semaphore shared by every route, so the limit is service-wide.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower::Service;

use super::problem::problem;
use crate::config::LimitsSection;

/// The limits from `server.limits`, shared by every route.
#[derive(Debug)]
pub(crate) struct Limits {
    /// `None` when `server.limits.concurrency` is 0.
    permits: Option<Arc<Semaphore>>,
    body_size: u64,
    /// `None` when `server.limits.request_timeout` is 0.
    timeout: Option<Duration>,
}

impl Limits {
    pub(crate) fn new(cfg: &LimitsSection) -> Self {
        Self {
            permits: (cfg.concurrency > 0).then(|| Arc::new(Semaphore::new(cfg.concurrency))),
            body_size: cfg.body_size,
            timeout: (!cfg.request_timeout.is_zero()).then_some(cfg.request_timeout),
        }
    }

    /// Calls `inner` under the limits; an over-limit request is answered without calling it.
    pub(crate) fn call<S>(&self, inner: &mut S, req: Request<Body>) -> GuardFuture<S::Future>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
    {
        if let Some(declared) = content_length(&req)
            && declared > self.body_size
        {
            return GuardFuture::done(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body of {declared} bytes exceeds server.limits.body_size ({} bytes)",
                    self.body_size
                ),
            ));
        }
        let permit = match &self.permits {
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return GuardFuture::done(shed()),
            },
            None => None,
        };
        let inner = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(f) => f,
            Err(payload) => return GuardFuture::done(panic_response(payload.as_ref())),
        };
        GuardFuture {
            inner: Some(inner),
            sleep: self.timeout.map(tokio::time::sleep),
            timeout: self.timeout.unwrap_or_default(),
            early: None,
            _permit: permit,
        }
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn shed() -> Response<Body> {
    let mut res = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the service is at its concurrency limit (server.limits.concurrency); retry later",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

fn panic_response(payload: &(dyn std::any::Any + Send)) -> Response<Body> {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = %message, "request handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the request handler failed unexpectedly",
    )
}

pin_project! {
    pub(crate) struct GuardFuture<F> {
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
        early: Option<Response<Body>>,
        // Held until the response is produced; released on drop if the client goes away.
        _permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> GuardFuture<F> {
    fn done(res: Response<Body>) -> Self {
        Self {
            inner: None,
            sleep: None,
            timeout: Duration::ZERO,
            early: Some(res),
            _permit: None,
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(res) = this.early.take() {
            return Poll::Ready(Ok(res));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("GuardFuture polled after completion");
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(res)) => {
                this.inner.set(None);
                return Poll::Ready(res);
            }
            Ok(Poll::Pending) => {}
            Err(payload) => {
                // Never poll a panicked future again.
                this.inner.set(None);
                return Poll::Ready(Ok(panic_response(payload.as_ref())));
            }
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            this.inner.set(None);
            return Poll::Ready(Ok(problem(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the request took longer than server.limits.request_timeout ({})",
                    humantime::format_duration(*this.timeout)
                ),
            )));
        }
        Poll::Pending
    }
}
