//! Liveness, readiness and startup probes with dependency checks.
//!
//! Checks are plain async closures registered under a probe. On each probe request the
//! registered checks run concurrently, each bounded by its own timeout. Besides user checks,
//! a built-in `lifecycle` check makes startup and readiness DOWN until the listener accepts,
//! and readiness DOWN again as the first step of shutdown.
//!
//! Probes are public, and anyone can send many, so a probe must not turn into as many
//! database or downstream calls. Two things bound the checks' rate whatever the probe rate:
//! concurrent probes share one run of each check (single flight: the first spawns it, the
//! others await the same result), and a result is reused for `health.cache_ttl` (default
//! `1s`). The price is freshness: a result may be up to `cache_ttl` old, so a dependency
//! going DOWN (or back UP) is seen up to that late. The lifecycle check is never cached:
//! shutdown turns readiness DOWN at once. A run is a task of its own, so a probe whose
//! caller goes away neither stops it nor leaves the callers waiting on it hanging, and a
//! check that panics is DOWN for that run only.
//!
//! A check is an async closure that answers a `Result<_, impl Display>` (an `Err` is DOWN
//! with its message), a `bool` or a [`CheckOutcome`]:
//!
//! ```
//! # let svc = ms_chassis::Service::builder().build()?;
//! # struct Pool; impl Pool { async fn ping(&self) -> Result<(), std::io::Error> { Ok(()) } }
//! let pool = std::sync::Arc::new(Pool);
//! svc.health().readiness("db", move || {
//!     let pool = pool.clone();
//!     async move { pool.ping().await }
//! });
//! # Ok::<(), ms_chassis::Error>(())
//! ```
//!
//! Gate readiness only on what this instance cannot serve without, and that restarting or
//! unrouting it would fix. A dependency every instance shares (another service, a shared
//! database) going DOWN would take every instance out of the load balancer at once;
//! report it with [`Health::informational`] instead, which `/health` lists and no status
//! depends on. Options beyond the probe go through [`Registration`]:
//!
//! ```
//! # let svc = ms_chassis::Service::builder().build()?;
//! use ms_chassis::health::{Probe, Registration};
//! use std::time::Duration;
//! svc.health().add(
//!     Registration::new("search-index", Probe::Readiness, || async { true })
//!         .timeout(Duration::from_secs(5))
//!         .cache_ttl(Duration::from_secs(10)),
//! );
//! # Ok::<(), ms_chassis::Error>(())
//! ```

mod config;
mod endpoint;
mod self_probe;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::{Map, Value};

pub use config::{HealthSection, ShowDetails};
pub(crate) use endpoint::{PATHS, routes};
pub use self_probe::{PROBE_TIMEOUT, READY_PATH, SUBCOMMAND, exit_if_healthcheck, healthcheck};

/// UP or DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Healthy.
    Up,
    /// Unhealthy.
    Down,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
        }
    }
}

/// The result of one check: a status and optional data shown in the response.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// UP or DOWN.
    pub status: Status,
    /// Extra fields (`"error"`, `"latency_ms"`…) shown as `data` / `details`.
    pub data: Map<String, Value>,
}

impl CheckOutcome {
    /// An UP outcome with no data.
    pub fn up() -> Self {
        Self {
            status: Status::Up,
            data: Map::new(),
        }
    }

    /// A DOWN outcome with `"error": reason`.
    pub fn down(reason: impl Into<String>) -> Self {
        let mut data = Map::new();
        data.insert("error".into(), Value::String(reason.into()));
        Self {
            status: Status::Down,
            data,
        }
    }

    /// Adds a data field.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }
}

/// `Ok` of any value is UP; `Err` is DOWN with the error's message.
impl<T, E: std::fmt::Display> From<Result<T, E>> for CheckOutcome {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(_) => Self::up(),
            Err(e) => Self::down(e.to_string()),
        }
    }
}

impl From<bool> for CheckOutcome {
    fn from(up: bool) -> Self {
        if up {
            Self::up()
        } else {
            Self::down("check returned false")
        }
    }
}

/// A boxed check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckOutcome> + Send>>;

/// A health check. Implemented for every `Fn() -> impl Future<Output = impl Into<CheckOutcome>>`;
/// implement it on a type that owns the check's state:
///
/// ```
/// use ms_chassis::health::{Check, CheckFuture, CheckOutcome};
///
/// struct DiskSpace { path: std::path::PathBuf }
///
/// impl Check for DiskSpace {
///     fn check(&self) -> CheckFuture {
///         let path = self.path.clone();
///         Box::pin(async move {
///             match tokio::fs::metadata(&path).await {
///                 Ok(_) => CheckOutcome::up().with("path", path.display().to_string()),
///                 Err(e) => CheckOutcome::down(e.to_string()),
///             }
///         })
///     }
/// }
/// # let svc = ms_chassis::Service::builder().build()?;
/// svc.health().liveness("disk", DiskSpace { path: "/".into() });
/// # Ok::<(), ms_chassis::Error>(())
/// ```
pub trait Check: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> CheckFuture;
}

impl<F, Fut, O> Check for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: Into<CheckOutcome>,
{
    fn check(&self) -> CheckFuture {
        let fut = self();
        Box::pin(async move { fut.await.into() })
    }
}

/// Which probe a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/health/live`: restart me if DOWN.
    Liveness,
    /// `/health/ready`: send me no traffic while DOWN.
    Readiness,
    /// `/health/started`: I am still starting while DOWN.
    Startup,
}

/// A check with its options, for [`Health::add`].
#[must_use]
pub struct Registration {
    name: String,
    probe: Probe,
    timeout: Option<Duration>,
    cache_ttl: Option<Duration>,
    gates: bool,
    check: Arc<dyn Check>,
}

impl Registration {
    /// `check` under `probe`, named `name`, with `health.timeout` and `health.cache_ttl`,
    /// gating its probe's status.
    pub fn new(name: impl Into<String>, probe: Probe, check: impl Check) -> Self {
        Self {
            name: name.into(),
            probe,
            timeout: None,
            cache_ttl: None,
            gates: true,
            check: Arc::new(check),
        }
    }

    /// Its own timeout instead of `health.timeout`: a run over it is DOWN.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Its own result cache instead of `health.cache_ttl`; zero runs it on every probe
    /// (still one run at a time).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// Reported under its probe and `/health` with its own status, but never makes any
    /// status DOWN: for a dependency that is worth seeing but not worth unrouting for.
    pub fn informational(mut self) -> Self {
        self.gates = false;
        self
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("probe", &self.probe)
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("gates", &self.gates)
            .finish_non_exhaustive()
    }
}

/// A registered check: its registration, and its last result and run in flight.
struct Registered {
    /// Its timeout and cache, when `None`, follow `health.timeout` and `health.cache_ttl`,
    /// also across reloads.
    spec: Registration,
    slot: Mutex<Slot>,
}

/// One check's last result and its run in flight.
#[derive(Default)]
struct Slot {
    /// Runs started so far: the id of the next.
    runs: u64,
    /// The run in flight, which every probe arriving meanwhile awaits.
    running: Option<Run>,
    /// The latest finished run's result.
    last: Option<Finished>,
}

struct Run {
    id: u64,
    /// The settings generation it runs under: a reload does not await a run judged by the
    /// old timeout.
    generation: u64,
    outcome: Shared<BoxFuture<'static, CheckOutcome>>,
}

struct Finished {
    id: u64,
    generation: u64,
    at: Instant,
    outcome: CheckOutcome,
}

impl Registered {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const STOPPING: u8 = 2;

/// The service's health checks and lifecycle state. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    checks: RwLock<Vec<Arc<Registered>>>,
    lifecycle: AtomicU8,
    /// `health.timeout` and `health.cache_ttl` in nanoseconds, and `health.show_details`; a
    /// config reload changes them.
    default_timeout: AtomicU64,
    cache_ttl: AtomicU64,
    show_details: AtomicU8,
    /// Bumped by every reload of `health`: results from before it are not reused.
    generation: AtomicU64,
}

fn show_details_code(s: ShowDetails) -> u8 {
    match s {
        ShowDetails::Never => 0,
        ShowDetails::WhenAuthorized => 1,
        ShowDetails::Always => 2,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    pub(crate) fn new(cfg: &HealthSection) -> Self {
        Self {
            inner: Arc::new(HealthInner {
                checks: RwLock::new(Vec::new()),
                lifecycle: AtomicU8::new(STARTING),
                default_timeout: AtomicU64::new(nanos(cfg.timeout)),
                cache_ttl: AtomicU64::new(nanos(cfg.cache_ttl)),
                show_details: AtomicU8::new(show_details_code(cfg.show_details)),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a new `health` section (a config reload). Checks registered with a timeout of
    /// their own keep it. Results cached before are not reused: they were judged by the old
    /// settings.
    pub(crate) fn apply(&self, cfg: &HealthSection) {
        let inner = &self.inner;
        inner
            .default_timeout
            .store(nanos(cfg.timeout), Ordering::Relaxed);
        inner
            .cache_ttl
            .store(nanos(cfg.cache_ttl), Ordering::Relaxed);
        inner
            .show_details
            .store(show_details_code(cfg.show_details), Ordering::Relaxed);
        inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `health.show_details` as it is now.
    pub(crate) fn show_details(&self) -> ShowDetails {
        match self.inner.show_details.load(Ordering::Relaxed) {
            0 => ShowDetails::Never,
            2 => ShowDetails::Always,
            _ => ShowDetails::WhenAuthorized,
        }
    }

    /// Registers a liveness check: DOWN means the process is broken and must restart.
    pub fn liveness(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.add(Registration::new(name, Probe::Liveness, check))
    }

    /// Registers a readiness check: a dependency this instance cannot serve without.
    pub fn readiness(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.add(Registration::new(name, Probe::Readiness, check))
    }

    /// Registers a startup check.
    pub fn startup(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.add(Registration::new(name, Probe::Startup, check))
    }

    /// Registers a check that is reported (under readiness and `/health`) but never makes
    /// any status DOWN: for a shared dependency, such as another service.
    ///
    /// ```
    /// # let svc = ms_chassis::Service::builder()
    /// #     .yaml("clients: { books: { url: 'http://127.0.0.1:8081' } }").build()?;
    /// if let Some(books) = svc.optional_client("books")? {
    ///     svc.health().informational("books", books.probe());
    /// }
    /// # Ok::<(), ms_chassis::Error>(())
    /// ```
    pub fn informational(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.add(Registration::new(name, Probe::Readiness, check).informational())
    }

    /// Registers a check with the options of `registration`.
    pub fn add(&self, registration: Registration) -> &Self {
        let reg = Registered {
            spec: registration,
            slot: Mutex::default(),
        };
        self.inner
            .checks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(reg));
        self
    }

    /// Marks the listener as accepting: startup and readiness may go UP.
    pub(crate) fn set_serving(&self) {
        let _ = self.inner.lifecycle.compare_exchange(
            STARTING,
            SERVING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// First step of shutdown: readiness goes DOWN for good.
    pub(crate) fn set_stopping(&self) {
        self.inner.lifecycle.store(STOPPING, Ordering::SeqCst);
    }

    fn lifecycle_outcome(&self, probe: Probe) -> Option<CheckOutcome> {
        let state = self.inner.lifecycle.load(Ordering::SeqCst);
        let name = match state {
            STARTING => "starting",
            SERVING => "serving",
            _ => "stopping",
        };
        let up = match probe {
            Probe::Liveness => return None,
            Probe::Startup => state != STARTING,
            Probe::Readiness => state == SERVING,
        };
        let mut outcome = if up {
            CheckOutcome::up()
        } else {
            CheckOutcome {
                status: Status::Down,
                data: Map::new(),
            }
        };
        outcome.data.insert("state".into(), name.into());
        Some(outcome)
    }

    /// Runs the checks of the given probes concurrently and aggregates them. A check with a
    /// run in flight is not run again: its result is awaited; one whose last result is
    /// younger than `health.cache_ttl` is not run at all. The lifecycle state is read now.
    /// Runs are spawned on the Tokio runtime this is called in.
    pub async fn evaluate(&self, probes: &[Probe]) -> Report {
        let selected: Vec<Arc<Registered>> = self
            .inner
            .checks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|c| probes.contains(&c.spec.probe))
            .cloned()
            .collect();
        let ttl = Duration::from_nanos(self.inner.cache_ttl.load(Ordering::Relaxed));
        let default_timeout =
            Duration::from_nanos(self.inner.default_timeout.load(Ordering::Relaxed));
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let runs = selected.iter().map(|c| {
            let timeout = c.spec.timeout.unwrap_or(default_timeout);
            outcome_of(c, timeout, c.spec.cache_ttl.unwrap_or(ttl), generation)
        });
        let results = futures_util::future::join_all(runs).await;
        let mut checks: Vec<(String, CheckOutcome)> = Vec::new();
        // One lifecycle entry, from the strictest selected probe, read once the checks are
        // in, so that a shutdown begun meanwhile shows.
        let lifecycle = [Probe::Readiness, Probe::Startup]
            .into_iter()
            .filter(|p| probes.contains(p))
            .find_map(|p| self.lifecycle_outcome(p));
        let lifecycle_up = lifecycle.as_ref().is_none_or(|o| o.status == Status::Up);
        if let Some(outcome) = lifecycle {
            checks.push(("lifecycle".to_owned(), outcome));
        }
        let gating_up = selected
            .iter()
            .zip(&results)
            .all(|(c, o)| !c.spec.gates || o.status == Status::Up);
        checks.extend(selected.iter().map(|c| c.spec.name.clone()).zip(results));
        let status = if lifecycle_up && gating_up {
            Status::Up
        } else {
            Status::Down
        };
        Report { status, checks }
    }
}

/// The check's result: its cached one while fresh, else that of the run in flight, else
/// that of a new run.
async fn outcome_of(
    c: &Arc<Registered>,
    timeout: Duration,
    ttl: Duration,
    generation: u64,
) -> CheckOutcome {
    let shared = {
        let mut slot = c.slot();
        if !ttl.is_zero()
            && let Some(last) = &slot.last
            && last.generation == generation
            && last.at.elapsed() < ttl
        {
            return last.outcome.clone();
        }
        match &slot.running {
            Some(run) if run.generation == generation => run.outcome.clone(),
            _ => {
                let id = slot.runs;
                slot.runs += 1;
                let outcome = spawn_run(Arc::clone(c), id, generation, timeout);
                slot.running = Some(Run {
                    id,
                    generation,
                    outcome: outcome.clone(),
                });
                outcome
            }
        }
    };
    shared.await
}

/// Starts one run of the check as a task of its own, so that it finishes (within its
/// timeout) and records its result whoever still awaits it.
fn spawn_run(
    c: Arc<Registered>,
    id: u64,
    generation: u64,
    timeout: Duration,
) -> Shared<BoxFuture<'static, CheckOutcome>> {
    let task = tokio::spawn(async move {
        let check = Arc::clone(&c.spec.check);
        let run = AssertUnwindSafe(async move { check.check().await }).catch_unwind();
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(check = %c.spec.name, panic = %reason, "health check panicked");
                CheckOutcome::down("the check panicked")
            }
            Err(_) => CheckOutcome::down(format!(
                "timeout after {}",
                humantime::format_duration(timeout)
            )),
        };
        let mut slot = c.slot();
        if slot.running.as_ref().is_some_and(|r| r.id == id) {
            slot.running = None;
        }
        if slot.last.as_ref().is_none_or(|l| l.id < id) {
            slot.last = Some(Finished {
                id,
                generation,
                at: Instant::now(),
                outcome: outcome.clone(),
            });
        }
        outcome
    });
    async move {
        task.await
            .unwrap_or_else(|_| CheckOutcome::down("the check was cancelled: shutting down"))
    }
    .boxed()
    .shared()
}

/// The aggregated result of a probe.
#[derive(Debug, Clone)]
pub struct Report {
    /// UP only if every check is UP, informational ones aside.
    pub status: Status,
    /// Each check by name, in registration order.
    pub checks: Vec<(String, CheckOutcome)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(&HealthSection::default())
    }

    /// Probes without the cache, so that only single flight is at play.
    fn uncached() -> Health {
        Health::new(&HealthSection {
            cache_ttl: Duration::ZERO,
            ..Default::default()
        })
    }

    /// A liveness check that counts its runs and takes `takes` (paused time).
    fn counted(h: &Health, takes: Duration) -> Arc<std::sync::atomic::AtomicUsize> {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        h.liveness("counted", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(takes).await;
                true
            }
        });
        runs
    }

    #[tokio::test]
    async fn readiness_follows_lifecycle() {
        let h = health();
        assert_eq!(h.evaluate(&[Probe::Readiness]).await.status, Status::Down);
        h.set_serving();
        assert_eq!(h.evaluate(&[Probe::Readiness]).await.status, Status::Up);
        h.set_stopping();
        h.set_serving(); // cannot come back once stopping
        let r = h.evaluate(&[Probe::Readiness]).await;
        assert_eq!(r.status, Status::Down);
        assert_eq!(r.checks[0].1.data["state"], "stopping");
        assert_eq!(h.evaluate(&[Probe::Liveness]).await.status, Status::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_check_times_out_as_down() {
        let h = health();
        h.add(
            Registration::new("slow", Probe::Liveness, || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                true
            })
            .timeout(Duration::from_millis(50)),
        );
        let r = h.evaluate(&[Probe::Liveness]).await;
        assert_eq!(r.checks[0].1, CheckOutcome::down("timeout after 50ms"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_changes_the_default_timeout_of_registered_checks() {
        let h = health();
        h.liveness("slow", || async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            true
        });
        // Default 2s: the 3s check times out.
        let r = h.evaluate(&[Probe::Liveness]).await;
        assert_eq!(r.checks[0].1, CheckOutcome::down("timeout after 2s"));
        h.apply(&HealthSection {
            timeout: Duration::from_secs(5),
            ..Default::default()
        });
        assert_eq!(h.evaluate(&[Probe::Liveness]).await.status, Status::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_run() {
        let h = uncached();
        let runs = counted(&h, Duration::from_secs(1));
        let probes: Vec<_> = (0..50)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.evaluate(&[Probe::Liveness]).await.status })
            })
            .collect();
        for p in probes {
            assert_eq!(p.await.unwrap(), Status::Up);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Without a cache, the next probe runs the check again.
        h.evaluate(&[Probe::Liveness]).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_first_caller_neither_stops_the_run_nor_hangs_the_others() {
        let h = uncached();
        let runs = counted(&h, Duration::from_secs(1));
        let first = tokio::spawn({
            let h = h.clone();
            async move { h.evaluate(&[Probe::Liveness]).await }
        });
        // Bounded: the first caller starts the run within a few polls.
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the first caller started a run"
        );
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        // A caller arriving meanwhile gets the same run's result, when that run ends.
        let started = tokio::time::Instant::now();
        let second = h.evaluate(&[Probe::Liveness]).await;
        assert_eq!(second.status, Status::Up);
        assert!(started.elapsed() <= Duration::from_secs(1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // And the next probe runs it afresh.
        assert_eq!(h.evaluate(&[Probe::Liveness]).await.status, Status::Up);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_check_is_down_for_that_run_only() {
        let h = uncached();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        h.liveness("flaky", move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n > 0, "the first run panics");
                true
            }
        });
        let r = h.evaluate(&[Probe::Liveness]).await;
        assert_eq!(r.checks[0].1, CheckOutcome::down("the check panicked"));
        assert_eq!(h.evaluate(&[Probe::Liveness]).await.status, Status::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_never_delays_the_lifecycle() {
        let h = Health::new(&HealthSection {
            cache_ttl: Duration::from_secs(3600),
            ..Default::default()
        });
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        h.readiness("db", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { true }
        });
        h.set_serving();
        assert_eq!(h.evaluate(&[Probe::Readiness]).await.status, Status::Up);
        assert_eq!(h.evaluate(&[Probe::Readiness]).await.status, Status::Up);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the second probe is cached");
        h.set_stopping();
        let r = h.evaluate(&[Probe::Readiness]).await;
        assert_eq!(
            r.status,
            Status::Down,
            "at once, though db is cached for an hour"
        );
        assert_eq!(r.checks[0].1.data["state"], "stopping");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A reload of `health` drops the cached results.
        h.apply(&HealthSection::default());
        h.evaluate(&[Probe::Readiness]).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
