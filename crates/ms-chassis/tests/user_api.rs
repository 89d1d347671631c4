//! The public API as a user writes it: problem+json from handlers, a failed dependency call
//! answered without leaking internals, optional clients, informational checks, check
//! options, and the builder that loses nothing.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ms_chassis::health::{Probe, Registration};
use ms_chassis::prelude::*;
use serde_json::{Value, json};

async fn book(Path(id): Path<u32>) -> Result<Json<Value>, Problem> {
    if id == 0 {
        return Err(Problem::new(StatusCode::BAD_REQUEST)
            .with_detail("book ids start at 1")
            .with_extension("field", "id"));
    }
    Ok(Json(json!({ "id": id })))
}

async fn via_books(State(books): State<HttpClient>) -> Result<Json<Value>, Problem> {
    let book: Value = books.get_json("/books/1").await?;
    Ok(Json(book))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_answers_its_own_problem_json() {
    let svc = support::start("", Router::new().route("/books/{id}", get(book))).await;
    let c = support::client();
    let res = c.get(format!("{}/books/0", svc.url)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "about:blank", "title": "Bad Request", "status": 400,
               "detail": "book ids start at 1", "field": "id"})
    );
    let res = c.get(format!("{}/books/7", svc.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_call_answers_a_generic_problem() {
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let yaml = format!(
        "clients: {{ internal-books: {{ url: 'http://127.0.0.1:{port}', retry: {{ max_attempts: 1 }} }} }}"
    );
    let built = ms_chassis::Service::builder()
        .yaml(support::TEST_BASE)
        .yaml(&yaml)
        .build()
        .unwrap();
    let books = built.client("internal-books").unwrap();
    let router = Router::new()
        .route("/via", get(via_books))
        .with_state(books);
    let running = built.start(router).await.unwrap();
    let url = format!("http://{}/via", running.local_addr());
    let res = support::client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], 502);
    assert_eq!(body["detail"], "a service this request depends on failed");
    for internal in ["internal-books", "127.0.0.1", &port.to_string(), "connect"] {
        assert!(!text.contains(internal), "{internal:?} leaked: {text}");
    }
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_client_is_none_without_its_block() {
    let svc = ms_chassis::Service::builder().build().unwrap();
    assert!(svc.optional_client("books").unwrap().is_none());
    assert!(
        svc.optional_client("default").unwrap().is_none(),
        "clients.default is not a client"
    );
    let svc = ms_chassis::Service::builder()
        .yaml("clients: { books: { url: 'http://127.0.0.1:9' } }")
        .build()
        .unwrap();
    let books = svc.optional_client("books").unwrap().expect("configured");
    assert_eq!(books.name(), "books");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_check_is_shown_but_never_gates_readiness() {
    let yaml = "health: { show_details: always, cache_ttl: 0s }";
    let svc = support::start_with(yaml, Router::new(), |s| {
        s.health()
            .informational("shared-dependency", || async { false });
        s.health().readiness("own", || async { true });
    })
    .await;
    for path in ["/health/ready", "/health"] {
        let res = support::client()
            .get(format!("{}{path}", svc.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "UP", "{path}: {body}");
        let listed = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "shared-dependency")
            .cloned()
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert_eq!(listed["status"], "DOWN", "{path}: {body}");
    }
    svc.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_can_have_its_own_cache() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = support::start_with("health: { cache_ttl: 0s }", Router::new(), move |s| {
        s.health().add(
            Registration::new("cached", Probe::Readiness, move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::io::Error>("any Ok value is UP") }
            })
            .cache_ttl(Duration::from_secs(3600)),
        );
    })
    .await;
    for _ in 0..5 {
        let res = support::client()
            .get(format!("{}/health/ready", svc.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "its own hour-long cache");
    svc.running.shutdown().await.unwrap();
}

#[test]
fn the_builder_keeps_everything_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, "service: { name: from-file }\napp: { a: 1 }\n").unwrap();
    let loader = ms_chassis::config::ConfigLoader::new().file(&file);
    let svc = ms_chassis::Service::builder_from(loader)
        .yaml("app: { b: 2 }")
        .env_vars([("MS__APP__C", "3")])
        .build()
        .unwrap();
    let app: Value = svc.config().app().unwrap();
    assert_eq!(app, json!({"a": 1, "b": 2, "c": 3}));
    assert_eq!(svc.config().chassis().service.name, "from-file");
}

#[test]
fn an_absurd_duration_is_a_config_error_not_a_panic() {
    let err = ms_chassis::Service::builder()
        .yaml("clients: { books: { url: 'http://127.0.0.1:9', timeout: 1000years } }")
        .build()
        .expect_err("a thousand years is no timeout")
        .to_string();
    assert!(err.contains("clients.books.timeout"), "{err}");
    assert!(err.contains("at most 365 days"), "{err}");
}

/// A plain axum server on port 0 that echoes the raw query, and sleeps on `/slow`.
async fn echo_server() -> String {
    use ms_chassis::axum::extract::RawQuery;
    let app = Router::new()
        .route(
            "/books",
            get(|RawQuery(q): RawQuery| async move { q.unwrap_or_default() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { ms_chassis::axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_from_a_struct_and_a_per_call_timeout() {
    let url = echo_server().await;
    let svc = ms_chassis::Service::builder()
        .yaml(format!(
            "clients: {{ books: {{ url: '{url}', timeout: 10s, total_timeout: 20s, retry: {{ max_attempts: 1 }} }} }}"
        ))
        .build()
        .unwrap();
    let books = svc.client("books").unwrap();

    #[derive(serde::Serialize)]
    struct Search<'a> {
        author: &'a str,
        limit: u32,
    }
    let q = books
        .get("/books?sort=title")
        .query(&Search {
            author: "Le Guin & co",
            limit: 10,
        })
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(q, "sort=title&author=Le+Guin+%26+co&limit=10");

    let started = std::time::Instant::now();
    let err = books
        .get("/slow")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("over its own timeout");
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by the call's own timeout, not the client's 10 s"
    );
    // A per-call timeout above total_timeout does not lift it.
    let svc_short = ms_chassis::Service::builder()
        .yaml(format!(
            "clients: {{ books: {{ url: '{url}', timeout: 200ms, total_timeout: 300ms, retry: {{ max_attempts: 1 }} }} }}"
        ))
        .build()
        .unwrap();
    let err = svc_short
        .client("books")
        .unwrap()
        .get("/slow")
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect_err("still bounded by the client");
    assert!(err.is_timeout(), "{err}");
}
