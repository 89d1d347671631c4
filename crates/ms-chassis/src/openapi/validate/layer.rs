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
                let limit = self.validator.inner.options.body_limit;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};

    use crate::openapi::{Document, ValidationOptions, Validator};

    use super::*;

    fn validator() -> Validator {
        let doc = Document::from_text(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /f:\n    post:\n      requestBody:\n        content:\n          application/x-www-form-urlencoded:\n            schema:\n              type: object\n              required: [count]\n              properties:\n                count: {type: integer, minimum: 1}\n                tags: {type: array, items: {type: string}, maxItems: 2}\n      responses: {'200': {description: ok}}\n  /n/{n}:\n    post:\n      parameters: [{name: n, in: path, required: true, schema: {type: integer}}]\n      requestBody:\n        content:\n          application/json:\n            schema: {type: array, maxItems: 2}\n      responses: {'200': {description: ok}}\n",
            "t.yaml",
        )
        .unwrap();
        Validator::compile(&doc, ValidationOptions::default()).unwrap()
    }

    /// An echo handler that counts its calls.
    fn echo(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(move |req: Request<Body>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(body)))
            }
        })
    }

    fn request(uri: &str, body: &'static str) -> Request<Body> {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn a_valid_request_reaches_the_handler_with_its_body_intact() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ServiceBuilder::new()
            .layer(validator().layer())
            .service(echo(calls.clone()));
        let res = svc.oneshot(request("/n/1", "[1, 2]")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"[1, 2]");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_form_body_is_read_by_its_schema_types() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ServiceBuilder::new()
            .layer(validator().layer())
            .service(echo(calls.clone()));
        let form = |body: &'static str| {
            Request::post("/f")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        let res = svc.clone().oneshot(form("count=2&tags=a+b")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = svc
            .oneshot(form("count=0&tags=a&tags=b&tags=c"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let locations: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["location"].as_str().unwrap())
            .collect();
        assert_eq!(locations, ["body/count", "body/tags"], "{problem}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_invalid_request_never_reaches_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ServiceBuilder::new()
            .layer(validator().layer())
            .service(echo(calls.clone()));
        let res = svc
            .clone()
            .oneshot(request("/n/x", "[1, 2, 3]"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
        // A path the spec does not have passes through untouched.
        let res = svc.oneshot(request("/other", "not json")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
