//! The per-call cost of the client's resilience layers around a service that is always
//! ready and answers at once (issue 4: at most 1 µs for retry + breaker + timeout).
//!
//! Every case calls one pre-built service with `ready().await` then `call().await`, many
//! times inside one `block_on` of a current-thread runtime per sample, so the runtime's
//! own cost is paid once per sample, not per call. The `bare` case is the same harness
//! around the bare service: the layers' cost is a case's time minus `bare`'s. Each layer is
//! measured alone too, so a regression points at its layer.
//!
//! ```sh
//! cargo bench -p ms-chassis --bench resilience_overhead
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use ms_chassis::resilience::ResilienceMetrics;
use ms_chassis::resilience::breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use ms_chassis::resilience::retry::{RetryConfig, RetryLayer};
use ms_chassis::resilience::timeout::TimeoutLayer;
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// The dependency: ready at once, answers 200 on its first poll.
async fn ok(_: Request<()>) -> Result<Response<()>, Infallible> {
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::OK;
    Ok(res)
}

/// Times `iters` calls of `svc`, one after the other, on `rt`.
fn run<S>(rt: &Runtime, svc: &S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let ready = svc.ready().await.expect("ready");
            let res = ready.call(Request::new(())).await.expect("200");
            black_box(res);
        }
        start.elapsed()
    })
}

fn resilience_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let metrics = ResilienceMetrics::unregistered();
    let retry = || RetryLayer::new("bench", RetryConfig::default(), &metrics).expect("valid");
    let breaker = || {
        CircuitBreakerLayer::new("bench", CircuitBreakerConfig::default(), &metrics).expect("valid")
    };
    let timeout = || TimeoutLayer::per_attempt("bench", Duration::from_secs(2), &metrics);

    let mut group = c.benchmark_group("resilience_overhead");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let bare = service_fn(ok);
    group.bench_function("bare", |b| b.iter_custom(|n| run(&rt, &bare, n)));

    let svc = ServiceBuilder::new().layer(timeout()).service_fn(ok);
    group.bench_function("timeout", |b| b.iter_custom(|n| run(&rt, &svc, n)));

    let svc = ServiceBuilder::new().layer(breaker()).service_fn(ok);
    group.bench_function("breaker", |b| b.iter_custom(|n| run(&rt, &svc, n)));

    let svc = ServiceBuilder::new().layer(retry()).service_fn(ok);
    group.bench_function("retry", |b| b.iter_custom(|n| run(&rt, &svc, n)));

    // The client's order: retry(breaker(timeout(call))).
    let svc = ServiceBuilder::new()
        .layer(retry())
        .layer(breaker())
        .layer(timeout())
        .service_fn(ok);
    group.bench_function("retry_breaker_timeout", |b| {
        b.iter_custom(|n| run(&rt, &svc, n))
    });

    group.finish();
}

criterion_group!(benches, resilience_overhead);
criterion_main!(benches);
