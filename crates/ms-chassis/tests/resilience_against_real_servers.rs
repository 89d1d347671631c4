//! The resilience layers in front of real local HTTP servers that fail, hang or slow down
//! on command and count the requests they receive. The client is reqwest wrapped as a
//! tower service, as the chassis' HttpClient will wrap it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ms_chassis::axum::Router;
use ms_chassis::axum::body::Bytes;
use ms_chassis::axum::extract::State;
use ms_chassis::axum::http::{StatusCode, header};
use ms_chassis::axum::response::{IntoResponse, Response};
use ms_chassis::resilience::breaker::{
    CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, CircuitState,
};
use ms_chassis::resilience::bulkhead::{BulkheadConfig, BulkheadLayer};
use ms_chassis::resilience::rate_limit::{RateLimitConfig, RateLimitLayer};
use ms_chassis::resilience::retry::{RetryBudgetConfig, RetryConfig, RetryLayer};
use ms_chassis::resilience::timeout::TimeoutLayer;
use ms_chassis::resilience::{ResilienceError, ResilienceMetrics};
use tokio::sync::watch;
use tower::{Service, ServiceBuilder, ServiceExt};

/// What the downstream does with the next requests.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ok,
    Status(u16),
    /// The next `n` requests get `status` with `Retry-After: retry_after`, then 200s.
    FailFirst {
        n: usize,
        status: u16,
        retry_after: Option<u64>,
    },
    Slow(Duration),
    Hang,
    /// Wait until released.
    Hold,
}

struct DownstreamState {
    arrivals: Mutex<Vec<Instant>>,
    hits: AtomicUsize,
    mode: Mutex<Mode>,
    released: watch::Sender<bool>,
}

/// A real HTTP server on 127.0.0.1, port 0.
struct Downstream {
    url: String,
    state: Arc<DownstreamState>,
}

impl Downstream {
    async fn start() -> Self {
        let state = Arc::new(DownstreamState {
            arrivals: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
            mode: Mutex::new(Mode::Ok),
            released: watch::channel(false).0,
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/books/1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            ms_chassis::axum::serve(listener, app).await.unwrap();
        });
        Downstream { url, state }
    }

    fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
        self.state.released.send_replace(false);
    }

    fn release(&self) {
        self.state.released.send_replace(true);
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn arrival_gaps(&self) -> Vec<Duration> {
        let a = self.state.arrivals.lock().unwrap();
        a.windows(2).map(|w| w[1] - w[0]).collect()
    }

    async fn wait_for_hits(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.hits() < n {
            assert!(
                Instant::now() < deadline,
                "downstream saw {} requests, expected {n} within 20 s",
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn handle(State(d): State<Arc<DownstreamState>>) -> Response {
    let mut released = d.released.subscribe();
    let mode = {
        let mut mode = d.mode.lock().unwrap();
        let now = *mode;
        if let Mode::FailFirst {
            n,
            status,
            retry_after,
        } = now
        {
            *mode = if n > 1 {
                Mode::FailFirst {
                    n: n - 1,
                    status,
                    retry_after,
                }
            } else {
                Mode::Ok
            };
        }
        now
    };
    d.arrivals.lock().unwrap().push(Instant::now());
    d.hits.fetch_add(1, Ordering::SeqCst);
    let ok = || (StatusCode::OK, "a book").into_response();
    match mode {
        Mode::Ok => ok(),
        Mode::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Mode::FailFirst {
            status,
            retry_after,
            ..
        } => {
            let mut res = StatusCode::from_u16(status).unwrap().into_response();
            if let Some(secs) = retry_after {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            res
        }
        Mode::Slow(by) => {
            tokio::time::sleep(by).await;
            ok()
        }
        Mode::Hang => std::future::pending().await,
        Mode::Hold => {
            let _ = released.wait_for(|r| *r).await;
            ok()
        }
    }
}

/// reqwest as a tower service of `http` types. No timeout of its own: the layers bound it.
fn reqwest_service() -> impl Service<
    http::Request<Bytes>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl Future<Output = Result<http::Response<reqwest::Body>, reqwest::Error>> + Send,
> + Clone
+ Send
+ 'static {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    tower::service_fn(move |req: http::Request<Bytes>| {
        let client = client.clone();
        async move {
            let req = reqwest::Request::try_from(req)?;
            Ok(http::Response::from(client.execute(req).await?))
        }
    })
}

type Outcome = Result<u16, ResilienceError>;

async fn send<S>(svc: &S, method: http::Method, url: &str) -> Outcome
where
    S: Service<
            http::Request<Bytes>,
            Response = http::Response<reqwest::Body>,
            Error = ResilienceError,
        > + Clone,
{
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    svc.clone().oneshot(req).await.map(|r| r.status().as_u16())
}

async fn get<S>(svc: &S, url: &str) -> Outcome
where
    S: Service<
            http::Request<Bytes>,
            Response = http::Response<reqwest::Body>,
            Error = ResilienceError,
        > + Clone,
{
    send(svc, http::Method::GET, url).await
}

/// A GET on its own task.
fn spawn_get<S>(svc: &S, url: &str) -> tokio::task::JoinHandle<Outcome>
where
    S: Service<
            http::Request<Bytes>,
            Response = http::Response<reqwest::Body>,
            Error = ResilienceError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let req = http::Request::get(url).body(Bytes::new()).unwrap();
    let svc = svc.clone();
    tokio::spawn(async move { svc.oneshot(req).await.map(|r| r.status().as_u16()) })
}

fn is_open(r: &Outcome) -> bool {
    matches!(r, Err(ResilienceError::CircuitOpen { .. }))
}

fn breaker(config: CircuitBreakerConfig) -> (CircuitBreakerLayer, CircuitBreakerHandle) {
    let layer =
        CircuitBreakerLayer::new("down", config, &ResilienceMetrics::unregistered()).unwrap();
    let handle = layer.handle();
    (layer, handle)
}

fn small_breaker() -> CircuitBreakerConfig {
    let mut c = CircuitBreakerConfig::default();
    c.minimum_calls = 4;
    c.sliding_window_size = 4;
    c.failure_rate_threshold = 50.0;
    c.wait_in_open = Duration::from_millis(300);
    c.permitted_calls_in_half_open = 2;
    c
}

async fn wait_for_state(handle: &CircuitBreakerHandle, want: CircuitState) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle.state() != want {
        assert!(
            Instant::now() < deadline,
            "breaker still {} after 20 s, expected {want}",
            handle.state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_rejects_without_network_then_probes_close_or_reopen_it() {
    let down = Downstream::start().await;
    let (layer, handle) = breaker(small_breaker());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(reqwest_service());

    // Opens after the configured failures: 4 calls, 50% failed or more.
    down.set(Mode::Status(500));
    for _ in 0..3 {
        assert!(matches!(get(&svc, &down.url).await, Ok(500)));
    }
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "3 calls < minimum_calls"
    );
    assert!(matches!(get(&svc, &down.url).await, Ok(500)));
    assert_eq!(handle.state(), CircuitState::Open);

    // While open: rejected, and the downstream's counter proves no request was sent.
    let hits = down.hits();
    for _ in 0..20 {
        let started = Instant::now();
        assert!(is_open(&get(&svc, &down.url).await));
        // Generous: a rejection does no I/O (the counter below proves it), so only a
        // badly stalled machine could take long; this only catches waiting on the downstream.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "rejections are immediate"
        );
    }
    assert_eq!(
        down.hits(),
        hits,
        "no request reached the downstream while open"
    );

    // Half-open: of five callers at once, exactly the two permitted probes get through.
    wait_for_state(&handle, CircuitState::HalfOpen).await;
    down.set(Mode::Hold);
    let callers: Vec<_> = (0..5).map(|_| spawn_get(&svc, &down.url)).collect();
    down.wait_for_hits(hits + 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(down.hits(), hits + 2, "only the permitted probes");
    down.release();
    let mut outcomes = vec![];
    for c in callers {
        outcomes.push(c.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|r| matches!(r, Ok(200))).count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|r| is_open(r)).count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "successful probes close it"
    );
    down.set(Mode::Ok);
    assert!(matches!(get(&svc, &down.url).await, Ok(200)));

    // Failing probes re-open it.
    // (The window now holds that success: 3 failures make 75% of 4.)
    down.set(Mode::Status(503));
    for _ in 0..3 {
        assert!(matches!(get(&svc, &down.url).await, Ok(503)));
    }
    assert_eq!(handle.state(), CircuitState::Open);
    wait_for_state(&handle, CircuitState::HalfOpen).await;
    let hits = down.hits();
    assert!(matches!(get(&svc, &down.url).await, Ok(503)));
    assert!(matches!(get(&svc, &down.url).await, Ok(503)));
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "failed probes re-open it"
    );
    assert!(is_open(&get(&svc, &down.url).await));
    assert_eq!(down.hits(), hits + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_successful_calls_trip_the_breaker() {
    let down = Downstream::start().await;
    let mut config = small_breaker();
    config.minimum_calls = 3;
    config.sliding_window_size = 3;
    config.slow_call_duration = Duration::from_millis(100);
    config.slow_call_rate_threshold = 50.0;
    config.wait_in_open = Duration::from_secs(60);
    let (layer, handle) = breaker(config);
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(reqwest_service());

    down.set(Mode::Slow(Duration::from_millis(300)));
    for _ in 0..3 {
        assert!(matches!(get(&svc, &down.url).await, Ok(200)));
    }
    assert_eq!(handle.state(), CircuitState::Open);
    let m = handle.metrics();
    assert_eq!(m.failure_rate, Some(0.0));
    assert_eq!(m.slow_call_rate, Some(100.0));
    let hits = down.hits();
    assert!(is_open(&get(&svc, &down.url).await));
    assert_eq!(down.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_failures_trip_before_minimum_calls() {
    let down = Downstream::start().await;
    let mut config = CircuitBreakerConfig::default();
    config.consecutive_failure_threshold = Some(3);
    config.wait_in_open = Duration::from_secs(60);
    let (layer, handle) = breaker(config);
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(reqwest_service());

    for mode in [
        Mode::Status(503),
        Mode::Status(503),
        Mode::Ok,
        Mode::Status(503),
        Mode::Status(503),
    ] {
        down.set(mode);
        get(&svc, &down.url).await.unwrap();
    }
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "a success broke the run"
    );
    down.set(Mode::Status(503));
    get(&svc, &down.url).await.unwrap();
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "3 in a row, with 6 of minimum 20 calls"
    );
    let hits = down.hits();
    assert!(is_open(&get(&svc, &down.url).await));
    assert_eq!(down.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_downstream_counts_as_connect_errors_and_opens_the_breaker() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/books/1", closed.local_addr().unwrap());
    drop(closed);
    let mut config = CircuitBreakerConfig::default();
    config.consecutive_failure_threshold = Some(2);
    let (layer, handle) = breaker(config);
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(reqwest_service());

    for _ in 0..2 {
        let err = get(&svc, &url).await.unwrap_err();
        assert!(err.is_connect(), "a connect error: {err:?}");
    }
    assert_eq!(handle.state(), CircuitState::Open);
    assert!(is_open(&get(&svc, &url).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_states_override_the_breaker() {
    let down = Downstream::start().await;
    let (layer, handle) = breaker(small_breaker());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(reqwest_service());

    handle.force_open();
    for _ in 0..5 {
        assert!(is_open(&get(&svc, &down.url).await));
    }
    assert_eq!(down.hits(), 0, "forced open: nothing sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        handle.state(),
        CircuitState::ForcedOpen,
        "wait_in_open does not end it"
    );

    handle.disable();
    down.set(Mode::Status(500));
    for _ in 0..10 {
        assert!(matches!(get(&svc, &down.url).await, Ok(500)));
    }
    assert_eq!(
        handle.state(),
        CircuitState::Disabled,
        "disabled: never opens"
    );
    assert_eq!(down.hits(), 10);

    handle.force_closed();
    assert_eq!(handle.state(), CircuitState::Closed);
    for _ in 0..4 {
        get(&svc, &down.url).await.unwrap();
    }
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "judged again once closed"
    );
    assert_eq!(handle.metrics().not_permitted_calls, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_idempotent_calls_up_to_max_attempts_but_not_post() {
    let down = Downstream::start().await;
    let mut config = RetryConfig::default();
    config.max_attempts = 4;
    config.initial_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(100);
    let retry = RetryLayer::new("down", config, &ResilienceMetrics::unregistered()).unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .service(reqwest_service());

    down.set(Mode::Status(503));
    let started = Instant::now();
    assert!(matches!(get(&svc, &down.url).await, Ok(503)));
    let took = started.elapsed();
    assert_eq!(down.hits(), 4, "GET: tried max_attempts times");
    // Backoff bounds 50, 100, 100 ms with full jitter: at most 250 ms of waiting.
    for gap in down.arrival_gaps() {
        assert!(
            gap < Duration::from_secs(5),
            "a backoff far over its bound: {gap:?}"
        );
    }
    assert!(took < Duration::from_secs(10), "{took:?}");

    assert!(matches!(
        send(&svc, http::Method::POST, &down.url).await,
        Ok(503)
    ));
    assert_eq!(down.hits(), 5, "POST: sent once");

    down.set(Mode::FailFirst {
        n: 2,
        status: 502,
        retry_after: None,
    });
    assert!(matches!(get(&svc, &down.url).await, Ok(200)));
    assert_eq!(down.hits(), 8, "two failures, then the success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_downstream_is_honoured() {
    let down = Downstream::start().await;
    let retry = RetryLayer::new(
        "down",
        RetryConfig::default(),
        &ResilienceMetrics::unregistered(),
    )
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .service(reqwest_service());

    down.set(Mode::FailFirst {
        n: 1,
        status: 503,
        retry_after: Some(1),
    });
    assert!(matches!(get(&svc, &down.url).await, Ok(200)));
    let gaps = down.arrival_gaps();
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0] >= Duration::from_secs(1) && gaps[0] < Duration::from_secs(10),
        "the retry came {:?} after the 503 with Retry-After: 1",
        gaps[0]
    );

    // Longer than max_retry_after (10 s): not waited out, the 429 is the answer.
    down.set(Mode::FailFirst {
        n: 1,
        status: 429,
        retry_after: Some(120),
    });
    let started = Instant::now();
    assert!(matches!(get(&svc, &down.url).await, Ok(429)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(down.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_stops_a_storm() {
    let down = Downstream::start().await;
    let mut config = RetryConfig::default();
    config.max_attempts = 3;
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(1);
    let mut budget = RetryBudgetConfig::default();
    budget.ratio = 0.1;
    budget.min_per_second = 0;
    budget.ttl = Duration::from_secs(600);
    config.budget = Some(budget);
    let retry = RetryLayer::new("down", config, &ResilienceMetrics::unregistered()).unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .service(reqwest_service());

    down.set(Mode::Status(503));
    for _ in 0..50 {
        assert!(matches!(get(&svc, &down.url).await, Ok(503)));
    }
    // Without a budget: 150 requests. With 10% of 50: at most 5 retries.
    let hits = down.hits();
    assert!(
        (51..=55).contains(&hits),
        "{hits} requests reached the downstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_downstream_never_holds_a_caller_past_the_timeouts() {
    let down = Downstream::start().await;
    let registry = ms_chassis::metrics::prometheus::Registry::new();
    let metrics = ResilienceMetrics::new(&registry).unwrap();
    let mut retry = RetryConfig::default();
    retry.max_attempts = 2;
    let mut breaker = CircuitBreakerConfig::default();
    breaker.minimum_calls = 1000;
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::overall(
            "down",
            Duration::from_secs(2),
            &metrics,
        ))
        .layer(RetryLayer::new("down", retry, &metrics).unwrap())
        .layer(CircuitBreakerLayer::new("down", breaker, &metrics).unwrap())
        .layer(BulkheadLayer::new("down", BulkheadConfig::default(), &metrics).unwrap())
        .layer(TimeoutLayer::per_attempt(
            "down",
            Duration::from_millis(300),
            &metrics,
        ))
        .service(reqwest_service());

    down.set(Mode::Hang);
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let svc = svc.clone();
            let url = down.url.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                (get(&svc, &url).await, started.elapsed())
            })
        })
        .collect();
    for c in callers {
        let (outcome, took) = c.await.unwrap();
        assert!(
            matches!(outcome, Err(ResilienceError::Timeout { after }) if after == Duration::from_millis(300)),
            "{outcome:?}"
        );
        // Two attempts of 300 ms and a backoff under 100 ms, well inside the overall 5 s.
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(5),
            "a call took {took:?}"
        );
    }
    assert!(down.hits() <= 32, "at most two attempts each");
    let text = ms_chassis::metrics::prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("ms_chassis_timeouts_total{name=\"down\",scope=\"attempt\"} 32"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulkhead_rejects_or_waits_beyond_its_limit() {
    let down = Downstream::start().await;
    let bulkhead = |max_wait| {
        let mut c = BulkheadConfig::default();
        c.max_concurrent = 2;
        c.max_wait = max_wait;
        BulkheadLayer::new("down", c, &ResilienceMetrics::unregistered()).unwrap()
    };
    // max_wait 0: beyond 2 in flight, rejected at once.
    let svc = ServiceBuilder::new()
        .layer(bulkhead(Duration::ZERO))
        .service(reqwest_service());
    down.set(Mode::Hold);
    let held: Vec<_> = (0..2).map(|_| spawn_get(&svc, &down.url)).collect();
    down.wait_for_hits(2).await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = get(&svc, &down.url).await;
        assert!(
            matches!(r, Err(ResilienceError::BulkheadFull { .. })),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(down.hits(), 2);
    down.release();
    for h in held {
        assert!(matches!(h.await.unwrap(), Ok(200)));
    }

    // max_wait 10 s: the third waits for a slot and then goes through.
    let svc = ServiceBuilder::new()
        .layer(bulkhead(Duration::from_secs(10)))
        .service(reqwest_service());
    down.set(Mode::Hold);
    let first: Vec<_> = (0..2).map(|_| spawn_get(&svc, &down.url)).collect();
    down.wait_for_hits(4).await;
    let third = spawn_get(&svc, &down.url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(down.hits(), 4, "the third is waiting, not sent");
    down.release();
    for h in first.into_iter().chain([third]) {
        assert!(matches!(h.await.unwrap(), Ok(200)));
    }
    assert_eq!(down.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiter_rejects_or_waits_beyond_its_rate() {
    let down = Downstream::start().await;
    let limiter = |rate, period, burst, max_wait| {
        let mut c = RateLimitConfig::default();
        c.rate = rate;
        c.period = period;
        c.burst = Some(burst);
        c.max_wait = max_wait;
        RateLimitLayer::new("down", c, &ResilienceMetrics::unregistered()).unwrap()
    };

    // 3 per hour, no waiting: the 4th and 5th are rejected without a request.
    let svc = ServiceBuilder::new()
        .layer(limiter(3, Duration::from_secs(3600), 3, Duration::ZERO))
        .service(reqwest_service());
    let mut outcomes = vec![];
    for _ in 0..5 {
        outcomes.push(get(&svc, &down.url).await);
    }
    assert!(
        outcomes[..3].iter().all(|r| matches!(r, Ok(200))),
        "{outcomes:?}"
    );
    assert!(
        outcomes[3..]
            .iter()
            .all(|r| matches!(r, Err(ResilienceError::RateLimited { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(down.hits(), 3);

    // 5 per second, one at a time, waiting up to 5 s: four callers at once all get
    // through, spaced 200 ms apart.
    let svc = ServiceBuilder::new()
        .layer(limiter(
            5,
            Duration::from_secs(1),
            1,
            Duration::from_secs(5),
        ))
        .service(reqwest_service());
    let started = Instant::now();
    let callers: Vec<_> = (0..4).map(|_| spawn_get(&svc, &down.url)).collect();
    for c in callers {
        assert!(matches!(c.await.unwrap(), Ok(200)));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(10),
        "four calls at 5/s took {took:?}"
    );
    assert_eq!(down.hits(), 7);
}
