use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::Response;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::Notify;
use tokio::time::Instant as TokioInstant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::resilience::timeout::TimeoutLayer;
use crate::resilience::{ResilienceError, ResilienceMetrics};

/// What the fake downstream does with the next calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Slow(Duration),
    Hold,
}

#[derive(Clone)]
struct Downstream {
    calls: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    release: Arc<Notify>,
}

impl Downstream {
    fn new() -> Self {
        Downstream {
            calls: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            release: Arc::new(Notify::new()),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(
        &self,
    ) -> impl Service<
        (),
        Response = Response<()>,
        Error = std::io::Error,
        Future = impl Future<Output = Result<Response<()>, std::io::Error>> + Send,
    > + Clone
    + Send
    + 'static {
        let d = self.clone();
        service_fn(move |()| {
            let d = d.clone();
            async move {
                d.calls.fetch_add(1, Ordering::SeqCst);
                let mode = *d.mode.lock().unwrap();
                let status = match mode {
                    Mode::Ok => 200,
                    Mode::Fail => 500,
                    Mode::Slow(by) => {
                        tokio::time::sleep(by).await;
                        200
                    }
                    Mode::Hold => {
                        d.release.notified().await;
                        200
                    }
                };
                Ok(Response::builder().status(status).body(()).unwrap())
            }
        })
    }
}

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        minimum_calls: 4,
        sliding_window_size: 10,
        failure_rate_threshold: 50.0,
        wait_in_open: Duration::from_secs(5),
        permitted_calls_in_half_open: 2,
        slow_call_duration: Duration::from_millis(100),
        slow_call_rate_threshold: 75.0,
        ..CircuitBreakerConfig::default()
    }
}

fn breaker(cfg: CircuitBreakerConfig) -> CircuitBreakerLayer {
    CircuitBreakerLayer::new("b", cfg, &ResilienceMetrics::unregistered()).unwrap()
}

async fn calls<S>(svc: &S, n: usize) -> Vec<Result<u16, ResilienceError>>
where
    S: Service<(), Response = Response<()>, Error = ResilienceError> + Clone,
{
    let mut out = vec![];
    for _ in 0..n {
        out.push(svc.clone().oneshot(()).await.map(|r| r.status().as_u16()));
    }
    out
}

/// `registry` in the Prometheus text format.
fn scrape(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn is_open(r: &Result<u16, ResilienceError>) -> bool {
    matches!(r, Err(ResilienceError::CircuitOpen { name }) if &**name == "b")
}

#[tokio::test(start_paused = true)]
async fn opens_after_the_configured_failures_and_then_rejects_without_calling() {
    let down = Downstream::new();
    let layer = breaker(config());
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());

    down.set(Mode::Fail);
    let first = calls(&svc, 3).await;
    assert!(first.iter().all(|r| matches!(r, Ok(500))));
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "3 calls < minimum_calls 4"
    );
    calls(&svc, 1).await;
    assert_eq!(handle.state(), CircuitState::Open);
    assert_eq!(handle.metrics().failure_rate, Some(100.0));

    let before = down.calls();
    let start = TokioInstant::now();
    let rejected = calls(&svc, 20).await;
    assert!(rejected.iter().all(is_open), "{rejected:?}");
    assert_eq!(down.calls(), before, "no call reached the downstream");
    assert_eq!(start.elapsed(), Duration::ZERO, "rejections do not wait");
    assert_eq!(handle.metrics().not_permitted_calls, 20);
}

/// An open breaker answers `poll_ready` at once even if the inner service would
/// never become ready.
#[tokio::test(start_paused = true)]
async fn rejection_does_not_wait_for_inner_readiness() {
    #[derive(Clone)]
    struct NeverReady;
    impl Service<()> for NeverReady {
        type Response = Response<()>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Response<()>, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn call(&mut self, _: ()) -> Self::Future {
            unreachable!("never ready, never called")
        }
    }
    let layer = breaker(config());
    layer.handle().force_open();
    let svc = ServiceBuilder::new().layer(layer).service(NeverReady);
    let r = tokio::time::timeout(Duration::from_secs(1), svc.oneshot(()))
        .await
        .expect("answered without waiting for the inner service");
    assert!(matches!(r, Err(ResilienceError::CircuitOpen { .. })));
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_exactly_the_permitted_probes_through() {
    let down = Downstream::new();
    let layer = breaker(config());
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    down.set(Mode::Fail);
    calls(&svc, 4).await;
    assert_eq!(handle.state(), CircuitState::Open);

    tokio::time::sleep(Duration::from_millis(4999)).await;
    assert_eq!(handle.state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(handle.state(), CircuitState::HalfOpen);

    // Five callers at once: two probes reach the (held) downstream, three are rejected.
    down.set(Mode::Hold);
    let before = down.calls();
    let callers: Vec<_> = (0..5)
        .map(|_| tokio::spawn(svc.clone().oneshot(())))
        .collect();
    while down.calls() < before + 2 {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(down.calls(), before + 2);
    down.release.notify_waiters();
    let mut outcomes = vec![];
    for c in callers {
        outcomes.push(c.await.unwrap().map(|r| r.status().as_u16()));
    }
    assert_eq!(outcomes.iter().filter(|r| matches!(r, Ok(200))).count(), 2);
    assert_eq!(outcomes.iter().filter(|r| is_open(r)).count(), 3);
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "both probes succeeded"
    );
    down.set(Mode::Ok);
    assert!(calls(&svc, 3).await.iter().all(|r| matches!(r, Ok(200))));
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_a_growing_wait() {
    let down = Downstream::new();
    let layer = breaker(CircuitBreakerConfig {
        wait_in_open_multiplier: 2.0,
        max_wait_in_open: Some(Duration::from_secs(15)),
        ..config()
    });
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    down.set(Mode::Fail);
    calls(&svc, 4).await;
    let mut opened = TokioInstant::now();
    for wait in [5, 10, 15, 15] {
        assert_eq!(handle.state(), CircuitState::Open);
        tokio::time::sleep_until(opened + Duration::from_secs(wait) - Duration::from_millis(1))
            .await;
        assert_eq!(
            handle.state(),
            CircuitState::Open,
            "still open before {wait} s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            handle.state(),
            CircuitState::HalfOpen,
            "half-open after {wait} s"
        );
        opened = TokioInstant::now();
        let probes = calls(&svc, 2).await;
        assert!(probes.iter().all(|r| matches!(r, Ok(500))));
    }
    assert_eq!(handle.state(), CircuitState::Open);
    // Success closes it and the wait starts over.
    tokio::time::sleep(Duration::from_secs(15)).await;
    down.set(Mode::Ok);
    calls(&svc, 2).await;
    assert_eq!(handle.state(), CircuitState::Closed);
    down.set(Mode::Fail);
    calls(&svc, 4).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        handle.state(),
        CircuitState::HalfOpen,
        "back to wait_in_open"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_breaker() {
    let down = Downstream::new();
    let layer = breaker(config());
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    let slow = Mode::Slow(Duration::from_millis(150));
    // Slow-call rate after each call: 1/1, 2/2, 2/3, 2/4 (judged from here), 3/5,
    // 4/6, 5/7, 6/8 = 75%, the threshold.
    for (i, mode) in [slow, slow, Mode::Ok, Mode::Ok, slow, slow, slow]
        .into_iter()
        .enumerate()
    {
        down.set(mode);
        let r = calls(&svc, 1).await;
        assert!(matches!(r[0], Ok(200)), "slow, but successful");
        assert_eq!(handle.state(), CircuitState::Closed, "after call {}", i + 1);
    }
    down.set(slow);
    calls(&svc, 1).await;
    assert_eq!(handle.state(), CircuitState::Open, "6 of 8 slow = 75%");
    let m = handle.metrics();
    assert_eq!(m.slow_call_rate, Some(75.0));
    assert_eq!(m.failure_rate, Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_before_the_window_judges() {
    let down = Downstream::new();
    let layer = breaker(CircuitBreakerConfig {
        minimum_calls: 100,
        sliding_window_size: 100,
        consecutive_failure_threshold: Some(3),
        ..config()
    });
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    for mode in [Mode::Fail, Mode::Fail, Mode::Ok, Mode::Fail, Mode::Fail] {
        down.set(mode);
        calls(&svc, 1).await;
    }
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "the success broke the run"
    );
    down.set(Mode::Fail);
    calls(&svc, 1).await;
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn timeouts_inside_the_breaker_count_as_failures() {
    let down = Downstream::new();
    let layer = breaker(config());
    let handle = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(TimeoutLayer::per_attempt(
            "b",
            Duration::from_millis(50),
            &ResilienceMetrics::unregistered(),
        ))
        .service(down.service());
    down.set(Mode::Hold);
    let r = calls(&svc, 4).await;
    assert!(
        r.iter()
            .all(|r| matches!(r, Err(ResilienceError::Timeout { .. })))
    );
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_place_back() {
    let down = Downstream::new();
    let layer = breaker(CircuitBreakerConfig {
        permitted_calls_in_half_open: 1,
        ..config()
    });
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    down.set(Mode::Fail);
    calls(&svc, 4).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    down.set(Mode::Hold);
    let probe = tokio::spawn(svc.clone().oneshot(()));
    while down.calls() < 5 {
        tokio::task::yield_now().await;
    }
    assert!(is_open(&calls(&svc, 1).await[0]), "the one probe is out");
    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());
    down.set(Mode::Ok);
    assert!(
        matches!(calls(&svc, 1).await[0], Ok(200)),
        "its place is free again"
    );
    assert_eq!(handle.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_states_and_metrics() {
    let registry = Registry::new();
    let metrics = ResilienceMetrics::new(&registry).unwrap();
    let down = Downstream::new();
    let layer = CircuitBreakerLayer::new("books", config(), &metrics).unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());

    calls(&svc, 2).await;
    handle.force_open();
    assert_eq!(handle.state(), CircuitState::ForcedOpen);
    let before = down.calls();
    let r = calls(&svc, 3).await;
    assert!(
        r.iter()
            .all(|r| matches!(r, Err(ResilienceError::CircuitOpen { .. })))
    );
    assert_eq!(down.calls(), before);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        handle.state(),
        CircuitState::ForcedOpen,
        "no timer ends a forced state"
    );

    let text = scrape(&registry);
    for line in [
        "ms_chassis_circuit_breaker_state{name=\"books\",state=\"forced_open\"} 1",
        "ms_chassis_circuit_breaker_state{name=\"books\",state=\"closed\"} 0",
        "ms_chassis_circuit_breaker_calls_total{kind=\"not_permitted\",name=\"books\"} 3",
        "ms_chassis_circuit_breaker_calls_total{kind=\"successful\",name=\"books\"} 2",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }

    handle.disable();
    down.set(Mode::Fail);
    let r = calls(&svc, 50).await;
    assert!(r.iter().all(|r| matches!(r, Ok(500))));
    assert_eq!(
        handle.state(),
        CircuitState::Disabled,
        "never opens while disabled"
    );

    handle.force_closed();
    assert_eq!(handle.state(), CircuitState::Closed);
    assert_eq!(handle.metrics().buffered_calls, 0);
    calls(&svc, 4).await;
    assert_eq!(handle.state(), CircuitState::Open);
    let text = scrape(&registry);
    assert!(text.contains("ms_chassis_circuit_breaker_state{name=\"books\",state=\"open\"} 1"));
    assert!(text.contains("ms_chassis_circuit_breaker_failure_ratio{name=\"books\"} 1"));

    handle.reset();
    let snap = handle.snapshot();
    assert_eq!(snap.state, CircuitState::Closed);
    assert_eq!(snap.metrics.not_permitted_calls, 0);
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["name"], "books");
    assert_eq!(json["state"], "CLOSED");
    assert_eq!(json["metrics"]["failure_rate"], serde_json::Value::Null);
}

/// The gauges are read from the breaker at the scrape: time alone moves an open breaker
/// to half-open, with no call to update them, and a dropped breaker's series go.
#[tokio::test(start_paused = true)]
async fn gauges_are_read_at_the_scrape() {
    let registry = Registry::new();
    let metrics = ResilienceMetrics::new(&registry).unwrap();
    let down = Downstream::new();
    let layer = CircuitBreakerLayer::new("books", config(), &metrics).unwrap();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    let open = "ms_chassis_circuit_breaker_state{name=\"books\",state=\"open\"} 1";
    let half_open = "ms_chassis_circuit_breaker_state{name=\"books\",state=\"half_open\"} 1";

    assert!(
        scrape(&registry).contains("ms_chassis_circuit_breaker_buffered_calls{name=\"books\"} 0")
    );
    down.set(Mode::Fail);
    calls(&svc, 4).await;
    let text = scrape(&registry);
    assert!(text.contains(open), "{text}");
    assert!(text.contains("ms_chassis_circuit_breaker_buffered_calls{name=\"books\"} 4"));

    tokio::time::sleep(config().wait_in_open).await;
    let text = scrape(&registry);
    assert!(
        text.contains(half_open),
        "no call since, yet half-open:\n{text}"
    );
    assert!(!text.contains(open), "{text}");

    drop(svc);
    let text = scrape(&registry);
    assert!(
        !text.contains("circuit_breaker_state{name=\"books\""),
        "a dropped breaker's gauges go:\n{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn reconfigure_applies_new_settings() {
    let down = Downstream::new();
    let layer = breaker(config());
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(down.service());
    let mut bad = config();
    bad.minimum_calls = 0;
    assert!(handle.reconfigure(bad).is_err());
    assert_eq!(handle.config(), config(), "invalid settings change nothing");
    handle
        .reconfigure(CircuitBreakerConfig {
            consecutive_failure_threshold: Some(1),
            ..config()
        })
        .unwrap();
    down.set(Mode::Fail);
    calls(&svc, 1).await;
    assert_eq!(handle.state(), CircuitState::Open);
}
