//! The startup report: operations of the spec in effect that no route of the user's router
//! serves, and routes that no operation describes, logged once as warnings, or a startup
//! error with `openapi.strict_routes`.
//!
//! axum's `Router` has no API that lists its routes, so two things are combined:
//! - **which route a spec path lands on** is asked of a clone of the router in which every
//!   route (and the fallback) is replaced by a probe that answers with the template axum
//!   matched, without running any handler: axum's own matching decides;
//! - **which routes exist, with their methods**, is read from the router's `Debug` output
//!   (`Router { path_router: PathRouter { routes: {..}, node: Node { paths: {..} } } ..}`),
//!   the one place axum shows them. That text is not a stable API, so the reader is strict:
//!   anything it does not recognise makes it give up (the report then covers operations
//!   whose path has no route, and says the other direction was not checked), and a test
//!   pins the format of the axum version in `Cargo.lock`, so an upgrade that changes it
//!   fails there first.

use std::collections::{BTreeMap, BTreeSet};
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

/// What the startup report found, each entry `METHOD /template`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Operations of the spec that no route serves: no route for the path, or a route
    /// without the method.
    pub(crate) operations_without_routes: Vec<String>,
    /// Routes (and their methods) that no operation of the spec describes; `ANY` for a
    /// route that answers every method (`any`, `route_service`, a method fallback).
    pub(crate) routes_without_operations: Vec<String>,
    /// False when the router's routes could not be listed: then only operations whose
    /// path has no route are found, and `routes_without_operations` is empty.
    pub(crate) routes_listed: bool,
}

/// Compares the spec's operations with the routes of `router`.
pub(crate) async fn compare(spec: &Value, router: &Router) -> Report {
    let listing = list_routes(router);
    let probe = router.clone().layer(ProbeLayer);
    let mut report = Report {
        routes_listed: listing.is_some(),
        ..Report::default()
    };
    // Per matched route template, the methods the spec describes on it.
    let mut described: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The spec's paths are under its `servers` path; the routes carry it.
    let base = super::compiled::server_base(spec).unwrap_or_default();
    let paths = spec.get("paths").and_then(Value::as_object);
    for (template, item) in paths.into_iter().flatten() {
        let Some(item) = item.as_object() else {
            continue;
        };
        let methods: Vec<String> = item
            .keys()
            .filter(|m| METHODS.contains(&m.as_str()))
            .map(|m| m.to_ascii_uppercase())
            .collect();
        if methods.is_empty() {
            continue;
        }
        let Some(matched) = matched_route(&probe, &format!("{base}{template}")).await else {
            report
                .operations_without_routes
                .extend(methods.iter().map(|m| format!("{m} {template}")));
            continue;
        };
        let served = listing
            .as_ref()
            .and_then(|routes| routes.iter().find(|r| r.template == matched))
            .map(|r| &r.methods);
        for m in &methods {
            if let Some(Methods::Only(only)) = served
                && !covers(only, m)
            {
                report
                    .operations_without_routes
                    .push(format!("{m} {template}"));
            }
        }
        described.entry(matched).or_default().extend(methods);
    }
    for route in listing.iter().flatten() {
        let shown = route.shown();
        let on = described.get(&route.template);
        match (&route.methods, on) {
            (Methods::Any, None) => report
                .routes_without_operations
                .push(format!("ANY {shown}")),
            (Methods::Any, Some(_)) => {}
            (Methods::Only(only), on) => report.routes_without_operations.extend(
                only.iter()
                    .filter(|m| on.is_none_or(|on| !covers(on, m)))
                    .map(|m| format!("{m} {shown}")),
            ),
        }
    }
    report.operations_without_routes.sort();
    report.routes_without_operations.sort();
    report
}

/// Whether `methods` covers `m`: a HEAD goes to the GET (axum answers it with the GET
/// handler, the validator checks it as the GET operation).
fn covers(methods: &BTreeSet<String>, m: &str) -> bool {
    methods.contains(m) || (m == "HEAD" && methods.contains("GET"))
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The template of the route a request for `template` (each `{param}` filled in) lands
/// on, when it is a route of that template.
async fn matched_route(probe: &Router, template: &str) -> Option<String> {
    let path = fill(template);
    let req = Request::builder()
        .method(Method::GET)
        .uri(path.as_str())
        .body(Body::empty())
        .ok()?;
    let Ok(res) = probe.clone().oneshot(req).await;
    let matched = res.headers().get(MATCHED)?.to_str().ok()?;
    (shape(matched) == shape(template)).then(|| matched.to_owned())
}

/// A route of the router: its template and the methods it answers.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    template: String,
    methods: Methods,
}

impl Listed {
    /// The template as a reader knows it: `nest_service`'s tail parameter has an
    /// internal name.
    fn shown(&self) -> String {
        self.template
            .replace("{*__private__axum_nest_tail_param}", "{*rest}")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Methods {
    /// Every method reaches the user's code.
    Any,
    /// These methods (upper case); others get axum's 405.
    Only(BTreeSet<String>),
}

/// The routes of `router`, read from its `Debug` output (see the module doc), or `None`
/// when that output is not the shape this reader knows.
fn list_routes(router: &Router) -> Option<Vec<Listed>> {
    let text = format!("{router:?}");
    let body = text.strip_prefix("Router { path_router: PathRouter { routes: {")?;
    let (routes, rest) = body.split_once("}, node: Node { paths: {")?;
    let paths = debug_paths(rest)?;
    let mut listed = Vec::with_capacity(paths.len());
    for chunk in routes.split("RouteId(").skip(1) {
        let (id, endpoint) = chunk.split_once("): ")?;
        let template = paths.get(&id.parse::<u64>().ok()?)?.clone();
        let methods = if endpoint.starts_with("Route(Route)") {
            Methods::Any
        } else {
            method_router(endpoint.strip_prefix("MethodRouter(MethodRouter { ")?)?
        };
        listed.push(Listed { template, methods });
    }
    (listed.len() == paths.len()).then_some(listed)
}

/// `RouteId(1): "/a", RouteId(2): "/b"}`: the node's templates by route id.
fn debug_paths(mut rest: &str) -> Option<BTreeMap<u64, String>> {
    let mut paths = BTreeMap::new();
    loop {
        rest = rest.strip_prefix(", ").unwrap_or(rest);
        if rest.starts_with('}') {
            return Some(paths);
        }
        let (id, after) = rest.strip_prefix("RouteId(")?.split_once("): \"")?;
        let (template, after) = debug_str(after)?;
        paths.insert(id.parse().ok()?, template);
        rest = after;
    }
}

/// The body of a `Debug`-quoted string up to its closing quote, unescaped, and the text
/// after the quote.
fn debug_str(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                c @ ('\\' | '"' | '\'') => out.push(c),
                'u' => {
                    let (start, open) = chars.next()?;
                    let end = text[start..].find('}')? + start;
                    if open != '{' {
                        return None;
                    }
                    out.push(char::from_u32(
                        u32::from_str_radix(&text[start + 1..end], 16).ok()?,
                    )?);
                    while chars.next().is_some_and(|(j, _)| j < end) {}
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// `get: BoxedHandler, head: None, .., fallback: Default(Route), allow_header: ..`: the
/// methods a `MethodRouter` answers. A fallback of its own, or `allow_header: Skip` (what
/// `any` leaves), answers every method.
fn method_router(fields: &str) -> Option<Methods> {
    let fields = fields.trim_end_matches(", ").strip_suffix(" })")?;
    let fields: BTreeMap<&str, &str> = fields
        .split(", ")
        .map(|field| field.split_once(": "))
        .collect::<Option<_>>()?;
    let fallback = fields.get("fallback")?;
    let allow = fields.get("allow_header")?;
    if !fallback.starts_with("Default(") || allow.starts_with("Skip") {
        return Some(Methods::Any);
    }
    let mut only = BTreeSet::new();
    for m in [
        "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
    ] {
        if *fields.get(m)? != "None" {
            only.insert(m.to_ascii_uppercase());
        }
    }
    Some(Methods::Only(only))
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
    use axum::routing::{any, get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn only(methods: &[&str]) -> Methods {
        Methods::Only(methods.iter().map(|m| (*m).to_owned()).collect())
    }

    /// Pins the `Debug` format of the axum in Cargo.lock: if an upgrade changes it, this
    /// fails here rather than the report quietly losing a direction.
    #[test]
    fn every_kind_of_route_is_listed_with_its_methods() {
        let nested: Router<u8> =
            Router::new().route("/x/{id}", get(|| async { "x" }).delete(|| async { "d" }));
        let router: Router = Router::new()
            .route("/hello", get(|| async { "hi" }))
            .route("/items", post(|| async { "p" }).get(|| async { "g" }))
            .route("/head", get(|| async { "g" }).head(|| async { "h" }))
            .route("/any", any(|| async { "a" }))
            .route(
                "/custom",
                get(|| async { "g" }).fallback(|| async { "other methods" }),
            )
            .route_service(
                "/svc",
                tower::service_fn(|_: Request<Body>| async {
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }),
            )
            .nest("/api", nested.with_state(7))
            .nest_service(
                "/static",
                tower::service_fn(|_: Request<Body>| async {
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }),
            )
            .route("/q\"uote/\u{e9}/{*rest}", get(|| async { "q" }))
            .fallback(|| async { "fallback" })
            .layer(tower::layer::layer_fn(|s| s));
        let mut listed = list_routes(&router).expect("this axum's Debug output is readable");
        listed.sort_by(|a, b| a.template.cmp(&b.template));
        let got: Vec<(String, Methods)> =
            listed.into_iter().map(|l| (l.shown(), l.methods)).collect();
        let want = vec![
            ("/any".to_owned(), Methods::Any),
            ("/api/x/{id}".to_owned(), only(&["DELETE", "GET"])),
            ("/custom".to_owned(), Methods::Any),
            ("/head".to_owned(), only(&["GET", "HEAD"])),
            ("/hello".to_owned(), only(&["GET"])),
            ("/items".to_owned(), only(&["GET", "POST"])),
            ("/q\"uote/\u{e9}/{*rest}".to_owned(), only(&["GET"])),
            ("/static".to_owned(), Methods::Any),
            ("/static/".to_owned(), Methods::Any),
            ("/static/{*rest}".to_owned(), Methods::Any),
            ("/svc".to_owned(), Methods::Any),
        ];
        assert_eq!(got, want);
        assert_eq!(list_routes(&Router::new()), Some(Vec::new()));
    }

    #[test]
    fn an_unknown_debug_shape_gives_up_instead_of_guessing() {
        assert_eq!(
            debug_paths(r#"RouteId(1): "/a", RouteId(2): "/b"} }"#).map(|p| p.len()),
            Some(2)
        );
        assert_eq!(debug_paths(r#"RouteId(1): /a}"#), None);
        assert_eq!(debug_paths(r#"RouteId(x): "/a"}"#), None);
        assert_eq!(
            debug_str(r#"/a\"b\\c\u{1F600}" rest"#),
            Some(("/a\"b\\c\u{1F600}".to_owned(), " rest"))
        );
        assert_eq!(debug_str(r#"/a\q""#), None);
        assert_eq!(debug_str("/never-closed"), None);
        let known = "get: BoxedHandler, head: None, delete: None, options: None, patch: None, \
                     post: None, put: None, trace: None, connect: None, fallback: Default(Route), \
                     allow_header: Bytes(b\"GET,HEAD\") })";
        assert_eq!(method_router(known), Some(only(&["GET"])));
        assert_eq!(method_router(&known.replace("connect: None, ", "")), None);
        assert_eq!(method_router(&known.replace(" })", "")), None);
    }

    #[tokio::test]
    async fn the_report_lists_both_directions_and_no_handler_runs() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let router = Router::new()
            .route(
                "/books/{book_id}",
                get(|| async {
                    CALLS.fetch_add(1, Ordering::Relaxed);
                    "book"
                })
                .head(|| async { "" })
                .put(|| async { "put" }),
            )
            .route("/books/new", post(|| async { "made" }))
            .route("/hello", get(|| async { "hi" }))
            .route("/internal", any(|| async { "any" }))
            .route("/described-any", any(|| async { "any" }))
            .fallback(|| async {
                CALLS.fetch_add(1, Ordering::Relaxed);
                "fallback"
            });
        let spec = serde_json::json!({"paths": {
            "/books/{id}": {"get": {}, "delete": {}, "parameters": []},
            "/books/new": {"post": {}},
            "/hello": {"head": {}},
            "/authors/{id}": {"get": {}, "delete": {}},
            "/books/{id}/reviews": {"get": {}},
            "/described-any": {"patch": {}},
        }});
        let report = compare(&spec, &router).await;
        assert_eq!(
            report,
            Report {
                // DELETE /books/{id}: the path has a route, without that method.
                operations_without_routes: vec![
                    "DELETE /authors/{id}".to_owned(),
                    "DELETE /books/{id}".to_owned(),
                    "GET /authors/{id}".to_owned(),
                    "GET /books/{id}/reviews".to_owned(),
                ],
                // The explicit HEAD is validated as the GET, so it is described; the
                // HEAD operation of /hello is served by its GET handler, whose own
                // operation is missing.
                routes_without_operations: vec![
                    "ANY /internal".to_owned(),
                    "GET /hello".to_owned(),
                    "PUT /books/{book_id}".to_owned(),
                ],
                routes_listed: true,
            }
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
