//! [`ResponseFuture`]: collects a body that must be checked, calls the inner service, and
//! checks its response when response validation is on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Request, Response, StatusCode};
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower::Service;

use super::OpIndex;
use crate::openapi::Validator;
use crate::openapi::response::{self, Pending};
use crate::openapi::violation::Violations;
use crate::server::Problem;

pin_project! {
    /// The response future of [`ValidationService`](super::ValidationService).
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
        // Response validation: the validator and the operation.
        check: Option<(Validator, OpIndex)>,
    }
}

/// A request whose body is being collected for checking: boxed, because it is several
/// times the size of the other states, and every request's future (most of them not
/// collecting anything) would otherwise be that large and be moved at that size.
struct Collecting<S> {
    collect: Collect<Limited<Body>>,
    parts: Option<Parts>,
    service: Option<S>,
    body: Option<(Validator, OpIndex, usize, Violations)>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Collecting {
            collecting: Box<Collecting<S>>,
        },
        Calling {
            #[pin]
            future: F,
        },
        CollectingResponse {
            #[pin]
            collect: Collect<Body>,
            pending: Option<Pending>,
        },
        Done {
            response: Option<Response<Body>>,
        },
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(crate) fn calling(future: F, check: Option<(Validator, OpIndex)>) -> Self {
        Self {
            state: State::Calling { future },
            check,
        }
    }

    pub(crate) fn done(response: Response<Body>) -> Self {
        Self {
            state: State::Done {
                response: Some(response),
            },
            check: None,
        }
    }

    pub(crate) fn collecting(
        collect: Collect<Limited<Body>>,
        parts: Parts,
        service: S,
        validator: Validator,
        op: OpIndex,
        media: usize,
        violations: Violations,
    ) -> Self {
        let check = validator
            .checks_responses()
            .then(|| (validator.clone(), op));
        Self {
            state: State::Collecting {
                collecting: Box::new(Collecting {
                    collect,
                    parts: Some(parts),
                    service: Some(service),
                    body: Some((validator, op, media, violations)),
                }),
            },
            check,
        }
    }
}

/// Whether `e` (or what caused it) is a body over its length limit.
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl<S, F, E> Future for ResponseFuture<S, F>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = E, Future = F>,
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting { collecting } => {
                    let Collecting {
                        collect,
                        parts,
                        service,
                        body,
                    } = &mut **collecting;
                    // `Collect<Limited<Body>>` is `Unpin`: `Body` is a box.
                    let collected = ready!(Pin::new(collect).poll(cx));
                    let (validator, op, media, violations) =
                        body.take().expect("polled after completion");
                    let bytes = match collected {
                        Ok(c) => c.to_bytes(),
                        Err(e) => {
                            let res = if over_limit(e.as_ref()) {
                                super::too_large(validator.inner.options.body_limit)
                            } else {
                                use axum::response::IntoResponse as _;
                                Problem::new(StatusCode::BAD_REQUEST)
                                    .with_detail("the request body could not be read")
                                    .into_response()
                            };
                            return Poll::Ready(Ok(res));
                        }
                    };
                    if let Some(res) = validator.check_body(
                        op,
                        media,
                        parts.as_ref().and_then(|p| p.headers.get(CONTENT_TYPE)),
                        &bytes,
                        violations,
                    ) {
                        return Poll::Ready(Ok(res));
                    }
                    let req = Request::from_parts(
                        parts.take().expect("polled after completion"),
                        Body::from(bytes),
                    );
                    let mut service = service.take().expect("polled after completion");
                    let future = service.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let res = ready!(future.poll(cx))?;
                    let Some((validator, op)) = this.check.take() else {
                        return Poll::Ready(Ok(res));
                    };
                    match response::check_head(validator, op, res) {
                        response::Next::Done(res) => return Poll::Ready(Ok(res)),
                        response::Next::Collect(body, pending) => {
                            this.state.set(State::CollectingResponse {
                                collect: body.collect(),
                                pending: Some(pending),
                            });
                        }
                    }
                }
                StateProj::CollectingResponse { collect, pending } => {
                    let collected = ready!(collect.poll(cx));
                    let pending = pending.take().expect("polled after completion");
                    return Poll::Ready(Ok(response::finish(pending, collected)));
                }
                StateProj::Done { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            }
        }
    }
}
