//! The request guard: panic catcher, concurrency limits with load shedding, body-size check
//! and timeout — steps 4 to 6 of the server stack, in that order, as one future.
//!
//! They are one future rather than a chain of tower-http and tower layers because this runs
//! on every request: the chain (`CatchPanic`, `HandleError`, `LoadShed`,
//! `GlobalConcurrencyLimit`, `Filter`, `Timeout`) boxes the response body and the error
//! future and converts errors back and forth, which cost about a tenth of bare axum's
//! throughput in `bench/`. Here it is one state machine with no allocation. The in-flight
//! counter is shared by every route, so the concurrency limit is service-wide.
//!
//! With `resilience.load_shedding` on, the same in-flight count is also held against an
//! [`AdaptiveLimit`], and admitted requests report their latency to it when their response
//! is ready (see [`Limits::finish`]): one relaxed load more per admission, a clock read and
//! one atomic add more per completion. With it off, neither happens.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

use super::LimitsSection;
use super::problem::{problem, problem_body, problem_response};
use crate::resilience::shedding::AdaptiveLimit;

/// The limits from `server.limits` and `resilience.load_shedding`, shared by every route.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Requests admitted and not yet finished. A plain counter rather than a semaphore:
    /// nothing ever waits for a slot (the excess is shed), so a semaphore's queue is not
    /// needed, and one atomic add is cheaper than its acquire and release.
    in_flight: AtomicUsize,
    /// Whether `in_flight` is kept: there is a fixed or an adaptive limit.
    counted: bool,
    /// `server.limits.concurrency`; `usize::MAX` when that is 0 (no fixed limit).
    max_in_flight: usize,
    /// `resilience.load_shedding`, when enabled.
    adaptive: Option<Shedder>,
    body_size: u64,
    /// `None` when `server.limits.request_timeout` is 0.
    timeout: Option<Duration>,
}

/// The adaptive limit, and its 503 answer rendered once.
#[derive(Debug)]
pub(crate) struct Shedder {
    limit: AdaptiveLimit,
    body: Bytes,
    retry_after: HeaderValue,
}

impl Limits {
    pub(crate) fn new(cfg: &LimitsSection, adaptive: Option<Shedder>) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            counted: cfg.concurrency > 0 || adaptive.is_some(),
            max_in_flight: if cfg.concurrency == 0 {
                usize::MAX
            } else {
                cfg.concurrency
            },
            adaptive,
            body_size: cfg.body_size,
            timeout: (!cfg.request_timeout.is_zero()).then_some(cfg.request_timeout),
        }
    }

    /// Gives back the slot of an admitted request that did not finish (see [`Limits::call`]).
    pub(crate) fn release(&self) {
        if self.counted {
            self.in_flight.fetch_sub(1, Ordering::Release);
        }
    }

    /// Gives back the slot of an admitted request whose response is ready, and reports the
    /// request's latency (since `start`) to the adaptive limit.
    pub(crate) fn finish(&self, start: std::time::Instant) {
        self.release();
        if let Some(a) = &self.adaptive {
            let now = std::time::Instant::now();
            a.limit.observe(now.saturating_duration_since(start), now);
        }
    }

    /// Calls `inner` under the limits; an over-limit request is answered without calling it.
    /// When the second value is true the request holds a slot, which the caller must give
    /// back when the request ends, however it ends: with [`Limits::finish`] when its
    /// response is ready, with [`Limits::release`] when it is dropped before that.
    pub(crate) fn call<S>(
        &self,
        inner: &mut S,
        req: Request<Body>,
        start: Instant,
    ) -> (GuardFuture<S::Future>, bool)
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
    {
        let req = match body_length(&req) {
            BodyLength::Declared(declared) if declared > self.body_size => {
                let res = problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the request body of {declared} bytes exceeds server.limits.body_size ({} bytes)",
                        self.body_size
                    ),
                );
                return (GuardFuture::done(res), false);
            }
            BodyLength::Declared(_) => req,
            // Streamed (chunked, or HTTP/2 without a length): cut off at the limit however
            // the handler reads it; axum's extractors answer 413 when the cut comes.
            BodyLength::Streamed => {
                let limit = usize::try_from(self.body_size).unwrap_or(usize::MAX);
                req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))
            }
        };
        if self.counted {
            let before = self.in_flight.fetch_add(1, Ordering::Acquire);
            if before >= self.max_in_flight {
                self.release();
                return (GuardFuture::done(shed()), false);
            }
            if let Some(a) = &self.adaptive
                && !a.limit.admits(before)
            {
                self.release();
                a.limit.count_shed();
                return (GuardFuture::done(a.overloaded()), false);
            }
        }
        let inner = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(f) => f,
            Err(payload) => {
                return (
                    GuardFuture::done(panic_response(payload.as_ref())),
                    self.counted,
                );
            }
        };
        let deadline = self.timeout.map(|timeout| Deadline {
            at: Instant::from_std(start.into_std() + timeout),
            timeout,
            sleep: None,
        });
        (GuardFuture::Running { inner, deadline }, self.counted)
    }
}

impl Shedder {
    /// The adaptive limit it admits against.
    pub(crate) fn limit(&self) -> &AdaptiveLimit {
        &self.limit
    }

    pub(crate) fn new(limit: AdaptiveLimit, retry_after_secs: u64) -> Self {
        let body = problem_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is overloaded: the request was shed at its adaptive concurrency limit \
             (resilience.load_shedding); retry later",
            Default::default(),
        );
        Self {
            limit,
            body,
            retry_after: HeaderValue::from(retry_after_secs),
        }
    }

    /// The answer to a request shed at the adaptive limit.
    fn overloaded(&self) -> Response<Body> {
        let mut res = problem_response(StatusCode::SERVICE_UNAVAILABLE, self.body.clone());
        res.headers_mut()
            .insert(header::RETRY_AFTER, self.retry_after.clone());
        res
    }
}

enum BodyLength {
    /// `Content-Length`, or none for a request that has no body.
    Declared(u64),
    Streamed,
}

/// The body length the request declares: hyper turns `Content-Length` (and a request with
/// no body) into the body's exact size hint, which is read without looking the header up
/// and parsing it again on every request.
fn body_length(req: &Request<Body>) -> BodyLength {
    use http_body::Body as _;
    match req.body().size_hint().exact() {
        Some(n) => BodyLength::Declared(n),
        None => BodyLength::Streamed,
    }
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
    /// The handler's future under the guard, or the guard's own answer to a request it did
    /// not let through. An enum, so that the early answer and the handler's future share
    /// their space: the whole future is moved several times before its first poll.
    #[project = GuardProj]
    pub(crate) enum GuardFuture<F> {
        Running {
            #[pin]
            inner: F,
            deadline: Option<Deadline>,
        },
        Early {
            res: Option<Response<Body>>,
        },
        Done,
    }
}

/// `server.limits.request_timeout` for one request. Its timer is made only once the
/// handler has returned `Pending`, and boxed: most requests finish on their first poll and
/// never touch the timer wheel, and a timer inline would make every request's future
/// bigger by the size of tokio's `Sleep`.
pub(crate) struct Deadline {
    at: Instant,
    /// The setting, to name it in the 504.
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    /// The setting, once the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<Duration> {
        let at = self.at;
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
            .is_ready()
            .then_some(self.timeout)
    }
}

impl<F> GuardFuture<F> {
    fn done(res: Response<Body>) -> Self {
        Self::Early { res: Some(res) }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = match self.as_mut().project() {
            GuardProj::Early { res } => {
                return Poll::Ready(Ok(res.take().expect("GuardFuture polled after completion")));
            }
            GuardProj::Done => panic!("GuardFuture polled after completion"),
            GuardProj::Running { inner, deadline } => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(Poll::Ready(res)) => res,
                    Ok(Poll::Pending) => {
                        let Some(d) = deadline.as_mut().and_then(|d| d.expired(cx)) else {
                            return Poll::Pending;
                        };
                        Ok(problem(
                            StatusCode::GATEWAY_TIMEOUT,
                            &format!(
                                "the request took longer than server.limits.request_timeout ({})",
                                humantime::format_duration(d)
                            ),
                        ))
                    }
                    // Never poll a panicked future again.
                    Err(payload) => Ok(panic_response(payload.as_ref())),
                }
            }
        };
        self.set(Self::Done);
        Poll::Ready(res)
    }
}
