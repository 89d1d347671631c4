//! A user story: a handler passes an id it was given straight on to another service,
//! `books.get_json(path!["books", id])`. Whatever the id holds — `../../admin`, `a/b`,
//! `?x=1`, `#top`, `100%` — a real server under the client's base path sees it as one
//! percent-encoded segment of `/api/books/{id}`, and axum's `Path` gives back the id as it
//! was. A value that is exactly `.` or `..` cannot be sent as a value at all (the URL
//! standard resolves it even encoded), so the call fails before any I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ms_chassis::axum::extract::{Path, Query, State};
use ms_chassis::axum::http::{StatusCode, Uri};
use ms_chassis::axum::routing::get;
use ms_chassis::axum::{Json, Router};
use ms_chassis::client::{ClientConfig, ClientErrorKind, HttpClient, RequestPath};
use ms_chassis::path;
use serde_json::{Value, json};

/// Requests the server got: all of them, and those outside `/api/books/{id}[/reviews]`.
#[derive(Default)]
struct Seen {
    all: AtomicUsize,
    strays: AtomicUsize,
}

impl Seen {
    fn all(&self) -> usize {
        self.all.load(Ordering::SeqCst)
    }

    fn strays(&self) -> usize {
        self.strays.load(Ordering::SeqCst)
    }
}

/// What the server saw: the path as sent (still encoded), and what axum decoded.
async fn book(State(seen): State<Arc<Seen>>, uri: Uri, Path(id): Path<String>) -> Json<Value> {
    seen.all.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "raw": uri.path(), "id": id }))
}

async fn reviews(
    State(seen): State<Arc<Seen>>,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    seen.all.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "raw": uri.path(), "id": id, "query": q }))
}

async fn stray(State(seen): State<Arc<Seen>>, uri: Uri) -> (StatusCode, Json<Value>) {
    seen.all.fetch_add(1, Ordering::SeqCst);
    seen.strays.fetch_add(1, Ordering::SeqCst);
    (StatusCode::NOT_FOUND, Json(json!({ "raw": uri.path() })))
}

/// A server on port 0 with `/api/books/{id}` and `/api/books/{id}/reviews`; anything else
/// is a stray, answered 404 with the path it got.
async fn server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/api/books/{id}", get(book))
        .route("/api/books/{id}/reviews", get(reviews))
        .fallback(stray)
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { ms_chassis::axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn client(url: &str) -> HttpClient {
    let mut config = ClientConfig::default();
    config.url = Some(url.to_owned());
    HttpClient::new("books", config).unwrap()
}

#[tokio::test]
async fn values_reach_the_server_as_one_segment_under_the_base_path() {
    let (url, seen) = server().await;
    let books = client(&url);
    let cases = [
        ("7", "7"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("a/b", "a%2Fb"),
        ("?x=1&y=2", "%3Fx%3D1%26y%3D2"),
        ("#top", "%23top"),
        ("100%", "100%25"),
        ("%2E%2E", "%252E%252E"),
        ("..\\..\\admin", "..%5C..%5Cadmin"),
        ("[::1]", "%5B%3A%3A1%5D"),
        ("caf\u{e9} au lait", "caf%C3%A9%20au%20lait"),
        ("...", "..."),
    ];
    for (id, encoded) in cases {
        let got: Value = books
            .get_json(path!["books", id])
            .await
            .unwrap_or_else(|e| panic!("GET books/{id:?}: {e}"));
        assert_eq!(got["raw"], format!("/api/books/{encoded}"), "{id:?}");
        assert_eq!(got["id"], id, "axum decodes {id:?} back");
    }
    // A value followed by more segments and a query built the same way.
    let p = path!["books", "../x", "reviews"].query("q", "a&b=c d");
    let got: Value = books.get_json(&p).await.unwrap();
    assert_eq!(got["raw"], "/api/books/..%2Fx/reviews");
    assert_eq!(got["id"], "../x");
    assert_eq!(got["query"], json!({ "q": "a&b=c d" }));
    assert_eq!(seen.strays(), 0, "no request left /api/books/");
    assert_eq!(seen.all(), cases.len() + 1);

    // The raw form is still there for paths the caller wrote itself.
    let got: Value = books.get_json("/books/9").await.unwrap();
    assert_eq!(got["id"], "9");
}

#[tokio::test]
async fn a_dot_or_dot_dot_value_fails_without_being_sent() {
    let (url, seen) = server().await;
    let books = client(&url);
    for id in [".", ".."] {
        let e = books
            .get(path!["books", id, "reviews"])
            .send()
            .await
            .expect_err("a dot segment value must not be sent");
        assert!(
            matches!(e.kind(), ClientErrorKind::InvalidRequest(_)),
            "{id:?}: {e}"
        );
        let message = e.to_string();
        assert!(message.contains("cannot be sent"), "{message}");
    }
    // Hand-encoded dot segments in a raw path are refused the same way.
    let raw = RequestPath::new().segment("books").to_string() + "/%2e%2E/reviews";
    let e = books.get(&raw).send().await.unwrap_err();
    assert!(
        matches!(e.kind(), ClientErrorKind::InvalidRequest(_)),
        "{e}"
    );
    assert_eq!(seen.all(), 0, "nothing reached the server");
    // The server was there all along.
    let got: Value = books.get_json(path!["books", "ok"]).await.unwrap();
    assert_eq!(got["id"], "ok");
}
