//! The per-request cost of OpenAPI request validation in the layer itself (issue 12's
//! budget: at most 5 µs for a `POST` with a 1 KiB JSON body against a schema of about 10
//! properties, at most 1 µs for a `GET` with two query parameters).
//!
//! Each case calls one pre-built service many times inside one `block_on` per sample; the
//! `off` cases are the same service with `requests: false`, so validation's cost is a
//! case's time minus its `off` twin's. This measures the layer in-process, not the
//! service's CPU under load: that is the server benchmark's job in `bench/`.
//!
//! ```sh
//! cargo bench -p ms-chassis --bench openapi_validation
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use ms_chassis::axum;
use ms_chassis::openapi::{Document, ValidationOptions, Validator};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const SPEC: &str = r#"
openapi: 3.1.0
info: {title: bench, version: "1"}
paths:
  /orders:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: status, in: query, schema: {type: string, enum: [open, closed]}}
      responses: {"200": {description: ok}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku, quantity, email]
              properties:
                sku: {type: string, pattern: "^[A-Z]{3}-[0-9]{4}$"}
                quantity: {type: integer, minimum: 1, maximum: 100}
                email: {type: string, format: email}
                note: {type: string, maxLength: 900}
                price: {type: number, exclusiveMinimum: 0}
                gift: {type: boolean}
                tags: {type: array, items: {type: string, maxLength: 10}, maxItems: 5}
                country: {type: string, minLength: 2, maxLength: 2}
                priority: {type: integer, minimum: 0, maximum: 9}
                coupon: {type: [string, "null"]}
      responses: {"201": {description: created}}
"#;

async fn ok(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    drop(req);
    Ok(Response::new(Body::empty()))
}

fn body() -> String {
    let note = "n".repeat(880);
    let b = format!(
        r#"{{"sku":"ABC-1234","quantity":3,"email":"ann@example.com","note":"{note}","price":9.5,"gift":false,"tags":["a","b"],"country":"ES","priority":4,"coupon":null}}"#
    );
    assert!((1000..1100).contains(&b.len()), "{}", b.len());
    b
}

fn run<S>(rt: &Runtime, svc: &S, make: &dyn Fn() -> Request<Body>, iters: u64) -> Duration
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let res = svc.ready().await.unwrap().call(make()).await.unwrap();
            assert!(res.status().is_success());
            black_box(res);
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let doc = Document::from_text(SPEC, "bench.yaml").unwrap();
    let body = body();
    let get = || {
        Request::get("/orders?limit=10&status=open")
            .body(Body::empty())
            .unwrap()
    };
    let post = || {
        Request::post("/orders")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    for (name, requests) in [("on", true), ("off", false)] {
        let opts = ValidationOptions {
            requests,
            ..ValidationOptions::default()
        };
        let v = Validator::compile(&doc, opts).unwrap();
        let svc = ServiceBuilder::new()
            .layer(v.layer())
            .service(service_fn(ok));
        c.bench_function(&format!("get_two_query_params_{name}"), |b| {
            b.iter_custom(|iters| run(&rt, &svc, &get, iters))
        });
        c.bench_function(&format!("post_1kib_json_{name}"), |b| {
            b.iter_custom(|iters| run(&rt, &svc, &post, iters))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
