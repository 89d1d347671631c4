//! [`ValidationLayer`] and [`ValidationService`]: the tower half of request validation.

use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response};
use http_body_util::{BodyExt as _, Limited};
use tower::{Layer, Service};

use super::Decision;
use super::future::ResponseFuture;
use crate::openapi::Validator;

/// Validates requests against the spec before the inner service (the handler) sees them.
/// Made by [`Validator::layer`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ValidationLayer {
    validator: Validator,
}

impl ValidationLayer {
    pub(crate) fn new(validator: Validator) -> Self {
        Self { validator }
    }
}

impl<S> Layer<S> for ValidationLayer {
    type Service = ValidationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidationService {
            inner,
            validator: self.validator.clone(),
        }
    }
}

/// The service of [`ValidationLayer`].
#[derive(Debug, Clone)]
pub struct ValidationService<S> {
    inner: S,
    validator: Validator,
}

impl<S> Service<Request<Body>> for ValidationService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.validator.check_head(&req) {
            Decision::Pass(None) => ResponseFuture::calling(self.inner.call(req), None),
            Decision::Pass(Some(op)) => {
                ResponseFuture::calling(self.inner.call(req), Some((self.validator.clone(), op)))
            }
            Decision::Respond(res) => ResponseFuture::done(res),
            Decision::Body {
                op,
                media,
                violations,
            } => {
                // The ready service goes into the future, which calls it once the body is
                // in; a clone stays here for the next request (tower's usual dance).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let (parts, body) = req.into_parts();
                let limit = self.validator.options.body_limit;
                let collect = Limited::new(body, limit).collect();
                ResponseFuture::collecting(
                    collect,
                    parts,
                    inner,
                    self.validator.clone(),
                    op,
                    media,
                    violations,
                )
            }
        }
    }
}
