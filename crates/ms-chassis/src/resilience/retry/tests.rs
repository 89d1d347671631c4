use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::resilience::{ResilienceError, ResilienceMetrics};

/// A fake downstream: answers with `script[n]` for the n-th call (the last entry after
/// that), and notes when each call arrived.
#[derive(Clone, Default)]
struct Downstream {
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Downstream {
    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let a = self.arrivals.lock().unwrap();
        a.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn service<B: Send + 'static>(
        &self,
        script: Vec<(u16, Option<&'static str>)>,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<()>,
        Error = std::io::Error,
        Future = impl Future<Output = Result<Response<()>, std::io::Error>> + Send,
    > + Clone
    + Send
    + 'static {
        let arrivals = Arc::clone(&self.arrivals);
        service_fn(move |_req: Request<B>| {
            let n = {
                let mut a = arrivals.lock().unwrap();
                a.push(Instant::now());
                a.len() - 1
            };
            let (status, retry_after) = script[n.min(script.len() - 1)];
            let mut res = Response::builder().status(status);
            if let Some(v) = retry_after {
                res = res.header(http::header::RETRY_AFTER, v);
            }
            std::future::ready(Ok(res.body(()).unwrap()))
        })
    }
}

fn config(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        budget: None,
        ..RetryConfig::default()
    }
}

fn layer(config: RetryConfig) -> RetryLayer {
    RetryLayer::new("r", config, &ResilienceMetrics::unregistered()).unwrap()
}

fn get() -> Request<String> {
    Request::new(String::from("body"))
}

#[tokio::test(start_paused = true)]
async fn a_failing_call_is_tried_max_attempts_times() {
    let down = Downstream::default();
    let l = layer(config(4));
    let svc = ServiceBuilder::new()
        .layer(l.clone())
        .service(down.service(vec![(503, None)]));
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the last answer"
    );
    assert_eq!(down.count(), 4);
    assert_eq!(l.shared.instruments.retried.get(), 3);
    assert_eq!(l.shared.instruments.attempts_exhausted.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_first_success_and_skip_4xx() {
    let down = Downstream::default();
    let svc = ServiceBuilder::new()
        .layer(layer(config(5)))
        .service(down.service(vec![(502, None), (500, None), (200, None)]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(down.count(), 3);

    let down = Downstream::default();
    let svc = ServiceBuilder::new()
        .layer(layer(config(5)))
        .service(down.service(vec![(404, None)]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 404);
    assert_eq!(down.count(), 1, "a 404 is an answer, not a failure");
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_by_default_but_can_be_allowed() {
    let down = Downstream::default();
    let l = layer(config(3));
    let svc = ServiceBuilder::new()
        .layer(l.clone())
        .service(down.service(vec![(503, None)]));
    let post = Request::post("/orders").body(String::from("{}")).unwrap();
    assert_eq!(svc.oneshot(post).await.unwrap().status(), 503);
    assert_eq!(down.count(), 1);
    assert_eq!(l.shared.instruments.not_retryable.get(), 1);

    let down = Downstream::default();
    let mut cfg = config(3);
    cfg.methods.push("post".into());
    let svc = ServiceBuilder::new()
        .layer(layer(cfg))
        .service(down.service(vec![(503, None)]));
    let post = Request::post("/orders").body(String::from("{}")).unwrap();
    svc.oneshot(post).await.unwrap();
    assert_eq!(down.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_sent_once() {
    let down = Downstream::default();
    let svc = ServiceBuilder::new()
        .layer(layer(config(3)))
        .service(down.service(vec![(503, None)]));
    let req = Request::new(axum::body::Body::from("stream"));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
    assert_eq!(down.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_sees_the_same_request() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let svc = ServiceBuilder::new()
        .layer(layer(config(3)))
        .service(service_fn(move |req: Request<String>| {
            log.lock().unwrap().push(format!(
                "{} {} {:?} {}",
                req.method(),
                req.uri(),
                req.headers().get("x-id"),
                req.body()
            ));
            std::future::ready(Ok::<_, std::io::Error>(
                Response::builder().status(500).body(()).unwrap(),
            ))
        }));
    let req = Request::put("/books/1")
        .header("x-id", "7")
        .body(String::from("hello"))
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s == "PUT /books/1 Some(\"7\") hello"),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_and_rejections_are_not() {
    let calls = Arc::new(AtomicU32::new(0));
    let n = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(layer(config(3)))
        .service(service_fn(move |_: Request<String>| {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            std::future::ready(if first {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
            } else {
                Ok(Response::new(()))
            })
        }));
    svc.oneshot(get()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let calls = Arc::new(AtomicU32::new(0));
    let n = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(layer(config(3)))
        .service(service_fn(move |_: Request<String>| {
            n.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<Response<()>, _>(ResilienceError::CircuitOpen {
                name: "b".into(),
            }))
        }));
    let err = svc.oneshot(get()).await.unwrap_err();
    assert!(matches!(err, ResilienceError::CircuitOpen { .. }));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Full jitter: the wait before attempt n+1 is uniform in [0, min(max, initial * 2^(n-1))].
/// Over many calls every wait is within its bound and the mean is near half of it.
#[tokio::test(start_paused = true)]
async fn backoff_is_exponential_with_full_jitter_and_capped() {
    let cfg = RetryConfig {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
        multiplier: 2.0,
        ..config(4)
    };
    let bounds = [100u64, 200, 300];
    let mut waits: [Vec<f64>; 3] = Default::default();
    for _ in 0..200 {
        let down = Downstream::default();
        let svc = ServiceBuilder::new()
            .layer(layer(cfg.clone()))
            .service(down.service(vec![(503, None)]));
        svc.oneshot(get()).await.unwrap();
        let gaps = down.gaps();
        assert_eq!(gaps.len(), 3);
        for (i, gap) in gaps.into_iter().enumerate() {
            // Paused time advances in whole milliseconds: allow one for rounding up.
            assert!(
                gap <= Duration::from_millis(bounds[i] + 1),
                "wait {i} was {gap:?}, over its bound of {} ms",
                bounds[i]
            );
            waits[i].push(gap.as_secs_f64() * 1000.0);
        }
    }
    for (i, w) in waits.iter().enumerate() {
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let bound = bounds[i] as f64;
        assert!(
            (0.3 * bound..0.7 * bound).contains(&mean),
            "mean wait {i} is {mean:.1} ms; full jitter under {bound} ms averages {:.0}",
            bound / 2.0
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_is_honoured() {
    let down = Downstream::default();
    let svc = ServiceBuilder::new()
        .layer(layer(config(3)))
        .service(down.service(vec![(503, Some("3")), (429, Some("1")), (200, None)]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    let gaps = down.gaps();
    assert_eq!(gaps.len(), 2);
    assert!(
        gaps[0] >= Duration::from_secs(3) && gaps[0] <= Duration::from_millis(3002),
        "{gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_secs(1) && gaps[1] <= Duration::from_millis(1002),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_ends_the_retries() {
    let down = Downstream::default();
    let l = layer(config(3));
    let svc = ServiceBuilder::new()
        .layer(l.clone())
        .service(down.service(vec![(503, Some("3600")), (200, None)]));
    let start = Instant::now();
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503);
    assert_eq!(down.count(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO, "nothing waited out");
    assert_eq!(l.shared.instruments.retry_after_too_long.get(), 1);
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parse = |v: &str| parse_retry_after(&http::HeaderValue::from_str(v).unwrap(), now);
    assert_eq!(parse("120"), Some(Duration::from_secs(120)));
    assert_eq!(parse(" 0 "), Some(Duration::ZERO));
    let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
    assert_eq!(parse(&later), Some(Duration::from_secs(90)));
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
    assert_eq!(
        parse(&earlier),
        Some(Duration::ZERO),
        "a past date means now"
    );
    assert_eq!(
        parse("Sunday, 06-Nov-94 08:49:37 GMT").map(|_| ()),
        Some(()),
        "RFC 850"
    );
    assert_eq!(parse("soon"), None);
    assert_eq!(parse("-5"), None);
}

/// Against a dependency that fails every call, the budget holds retries to
/// `ratio * requests + min_per_second * ttl`; without it each request would be tried
/// `max_attempts` times.
#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm() {
    let storm = |budget: Option<RetryBudgetConfig>| async move {
        let down = Downstream::default();
        let cfg = RetryConfig {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            budget,
            ..config(3)
        };
        let l = layer(cfg);
        let svc = ServiceBuilder::new()
            .layer(l.clone())
            .service(down.service(vec![(503, None)]));
        for _ in 0..100 {
            svc.clone().oneshot(get()).await.unwrap();
        }
        (down.count(), l.shared.instruments.budget_exhausted.get())
    };
    let (unbudgeted, _) = storm(None).await;
    assert_eq!(unbudgeted, 300);
    let budget = RetryBudgetConfig {
        ratio: 0.1,
        min_per_second: 1,
        ttl: Duration::from_secs(10),
    };
    let (budgeted, refused) = storm(Some(budget)).await;
    // 100 requests + at most 0.1 * 100 + 1 * 10 retries.
    assert!(
        (110..=120).contains(&budgeted),
        "{budgeted} calls reached the dependency"
    );
    assert!(refused >= 80, "{refused} retries refused by the budget");
}

#[test]
fn config_defaults_and_validation() {
    let c: RetryConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(c, RetryConfig::default());
    assert_eq!(c.max_attempts, 3);
    let methods = c.parse().unwrap();
    assert_eq!(
        methods,
        [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE
        ]
    );
    let c: RetryConfig = serde_json::from_value(json!({
        "max_attempts": 5, "initial_backoff": "50ms", "max_backoff": "1s",
        "max_retry_after": "30s", "budget": null
    }))
    .unwrap();
    assert_eq!(c.initial_backoff, Duration::from_millis(50));
    assert_eq!(c.budget, None);
    let back: RetryConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);

    let bad = |f: fn(&mut RetryConfig)| {
        let mut c = RetryConfig::default();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert_eq!(
        bad(|c| c.max_attempts = 0),
        "max_attempts: expected at least 1 (1 means no retries)"
    );
    assert!(bad(|c| c.methods = vec!["GE T".into()]).contains("methods"));
    assert!(bad(|c| c.max_backoff = Duration::ZERO).contains("max_backoff"));
}

#[test]
fn backoff_bound_grows_and_caps() {
    let c = RetryConfig {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(1000),
        ..RetryConfig::default()
    };
    let ms: Vec<u128> = (1..=6).map(|a| c.backoff_bound(a).as_millis()).collect();
    assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(c.backoff_bound(u32::MAX), Duration::from_millis(1000));
}
