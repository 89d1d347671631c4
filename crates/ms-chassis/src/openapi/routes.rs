//! The startup report: operations of the spec in effect that no route of the user's router
//! serves, logged once as a warning, or a startup error with `openapi.strict_routes`.
//!
//! axum's `Router` cannot list its routes, so each operation's path is asked of a clone of
//! the router in which every route (and the fallback) is replaced by a probe that answers
//! with the template axum matched, without running any handler. That finds operations
//! whose *path* has no route; a route that exists for another method only is not told
//! apart, because axum answers such a request through the same route's 405 fallback. The
//! other direction, routes that no operation describes, cannot be asked of a `Router`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt as _};

const MATCHED: &str = "x-ms-chassis-matched";

/// The spec's operations, as `METHOD /template`, whose path no route of `router` matches.
pub(crate) async fn operations_without_routes(spec: &Value, router: &Router) -> Vec<String> {
    let probe = router.clone().layer(ProbeLayer);
    let mut missing = Vec::new();
    let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
        return missing;
    };
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let methods: Vec<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|m| METHODS.contains(m))
            .collect();
        if methods.is_empty() || routed(&probe, template).await {
            continue;
        }
        missing.extend(
            methods
                .iter()
                .map(|m| format!("{} {template}", m.to_ascii_uppercase())),
        );
    }
    missing
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Whether a request for `template` (each `{param}` filled in) lands on a route of that
/// template.
async fn routed(probe: &Router, template: &str) -> bool {
    let path = fill(template);
    let Ok(req) = Request::builder()
        .method(Method::GET)
        .uri(path.as_str())
        .body(Body::empty())
    else {
        return false;
    };
    let Ok(res) = probe.clone().oneshot(req).await;
    res.headers()
        .get(MATCHED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| shape(m) == shape(template))
}

/// `template` with every `{param}` replaced by a plain segment value.
fn fill(template: &str) -> String {
    replace_params(template, "p")
}

/// `template` with the parameter names left out: `/books/{id}` and `/books/{book_id}` are
/// the same route.
fn shape(template: &str) -> String {
    replace_params(template, "{}")
}

fn replace_params(template: &str, with: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str(with);
            }
            '}' => in_param = false,
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone)]
struct ProbeLayer;

impl<S> Layer<S> for ProbeLayer {
    type Service = Probe;
    fn layer(&self, _route: S) -> Probe {
        Probe
    }
}

/// Stands in for a route: answers with the template axum matched, runs nothing.
#[derive(Clone)]
struct Probe;

impl Service<Request<Body>> for Probe {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut res = Response::new(Body::empty());
        match req
            .extensions()
            .get::<MatchedPath>()
            .and_then(|m| HeaderValue::from_str(m.as_str()).ok())
        {
            Some(m) => {
                res.headers_mut().insert(MATCHED, m);
            }
            None => *res.status_mut() = StatusCode::NOT_FOUND,
        }
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn operations_whose_path_has_no_route_are_listed_and_no_handler_runs() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let router = Router::new()
            .route(
                "/books/{book_id}",
                get(|| async {
                    CALLS.fetch_add(1, Ordering::Relaxed);
                    "book"
                }),
            )
            .route("/books/new", post(|| async { "made" }))
            .fallback(|| async {
                CALLS.fetch_add(1, Ordering::Relaxed);
                "fallback"
            });
        let spec = serde_json::json!({"paths": {
            "/books/{id}": {"get": {}, "parameters": []},
            "/books/new": {"post": {}},
            "/authors/{id}": {"get": {}, "delete": {}},
            "/books/{id}/reviews": {"get": {}},
        }});
        let mut missing = operations_without_routes(&spec, &router).await;
        missing.sort();
        assert_eq!(
            missing,
            [
                "DELETE /authors/{id}",
                "GET /authors/{id}",
                "GET /books/{id}/reviews"
            ]
        );
        assert_eq!(CALLS.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn templates_compare_without_parameter_names() {
        assert_eq!(fill("/a/{id}/b/{x}"), "/a/p/b/p");
        assert_eq!(shape("/a/{id}/b"), shape("/a/{other}/b"));
        assert_ne!(shape("/a/{id}"), shape("/a/id"));
    }
}
