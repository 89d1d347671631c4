//! Liveness, readiness and startup probes with dependency checks.
//!
//! Checks are plain async closures registered under a probe. On each probe request the
//! registered checks run concurrently, each bounded by its own timeout, and a result may be
//! reused for `health.cache_ttl`. Besides user checks, a built-in `lifecycle` check makes
//! startup and readiness DOWN until the listener accepts, and readiness DOWN again as the
//! first step of shutdown.
//!
//! ```
//! # let svc = ms_chassis::Service::builder().build()?;
//! svc.health().readiness("database", || async {
//!     // ping it here; any `Result<(), impl Display>` works
//!     Ok::<(), std::io::Error>(())
//! });
//! # Ok::<(), ms_chassis::Error>(())
//! ```

mod endpoint;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub(crate) use endpoint::{PATHS, routes};

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

impl<E: std::fmt::Display> From<Result<(), E>> for CheckOutcome {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::up(),
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

/// A health check. Implemented for every `Fn() -> impl Future<Output = impl Into<CheckOutcome>>`.
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

struct Registered {
    name: String,
    probe: Probe,
    /// Its own timeout; `None` follows `health.timeout`, also across reloads.
    timeout: Option<Duration>,
    check: Arc<dyn Check>,
    cache: Mutex<Option<(Instant, CheckOutcome)>>,
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
    /// `health.timeout` and `health.cache_ttl` in nanoseconds; a config reload changes them.
    default_timeout: AtomicU64,
    cache_ttl: AtomicU64,
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
    pub(crate) fn new(cfg: &crate::config::HealthSection) -> Self {
        Self {
            inner: Arc::new(HealthInner {
                checks: RwLock::new(Vec::new()),
                lifecycle: AtomicU8::new(STARTING),
                default_timeout: AtomicU64::new(nanos(cfg.timeout)),
                cache_ttl: AtomicU64::new(nanos(cfg.cache_ttl)),
            }),
        }
    }

    /// Takes a new `health.timeout` and `health.cache_ttl` (a config reload). Checks
    /// registered with a timeout of their own keep it.
    pub(crate) fn apply(&self, cfg: &crate::config::HealthSection) {
        self.inner
            .default_timeout
            .store(nanos(cfg.timeout), Ordering::Relaxed);
        self.inner
            .cache_ttl
            .store(nanos(cfg.cache_ttl), Ordering::Relaxed);
    }

    /// Registers a liveness check.
    pub fn liveness(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.register(name, Probe::Liveness, None, check)
    }

    /// Registers a readiness check: a dependency the service cannot serve without.
    pub fn readiness(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.register(name, Probe::Readiness, None, check)
    }

    /// Registers a startup check.
    pub fn startup(&self, name: impl Into<String>, check: impl Check) -> &Self {
        self.register(name, Probe::Startup, None, check)
    }

    /// Registers a check with its own timeout instead of `health.timeout`.
    pub fn register(
        &self,
        name: impl Into<String>,
        probe: Probe,
        timeout: Option<Duration>,
        check: impl Check,
    ) -> &Self {
        let reg = Registered {
            name: name.into(),
            probe,
            timeout,
            check: Arc::new(check),
            cache: Mutex::new(None),
        };
        self.inner
            .checks
            .write()
            .expect("health registry lock")
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

    /// Runs the checks of the given probes concurrently and aggregates them.
    pub async fn evaluate(&self, probes: &[Probe]) -> Report {
        let selected: Vec<Arc<Registered>> = self
            .inner
            .checks
            .read()
            .expect("health registry lock")
            .iter()
            .filter(|c| probes.contains(&c.probe))
            .cloned()
            .collect();
        let ttl = Duration::from_nanos(self.inner.cache_ttl.load(Ordering::Relaxed));
        let default_timeout =
            Duration::from_nanos(self.inner.default_timeout.load(Ordering::Relaxed));
        let runs = selected
            .iter()
            .map(|c| run_one(c, c.timeout.unwrap_or(default_timeout), ttl));
        let mut checks: Vec<(String, CheckOutcome)> = Vec::new();
        // One lifecycle entry, from the strictest selected probe.
        let lifecycle = [Probe::Readiness, Probe::Startup]
            .into_iter()
            .filter(|p| probes.contains(p))
            .find_map(|p| self.lifecycle_outcome(p));
        if let Some(outcome) = lifecycle {
            checks.push(("lifecycle".to_owned(), outcome));
        }
        let results = futures_util::future::join_all(runs).await;
        checks.extend(selected.iter().map(|c| c.name.clone()).zip(results));
        let status = if checks.iter().all(|(_, o)| o.status == Status::Up) {
            Status::Up
        } else {
            Status::Down
        };
        Report { status, checks }
    }
}

async fn run_one(c: &Registered, timeout: Duration, ttl: Duration) -> CheckOutcome {
    if !ttl.is_zero()
        && let Some((at, outcome)) = c.cache.lock().expect("health cache lock").as_ref()
        && at.elapsed() < ttl
    {
        return outcome.clone();
    }
    let outcome = match tokio::time::timeout(timeout, c.check.check()).await {
        Ok(o) => o,
        Err(_) => CheckOutcome::down(format!(
            "timeout after {}",
            humantime::format_duration(timeout)
        )),
    };
    if !ttl.is_zero() {
        *c.cache.lock().expect("health cache lock") = Some((Instant::now(), outcome.clone()));
    }
    outcome
}

/// The aggregated result of a probe.
#[derive(Debug, Clone)]
pub struct Report {
    /// UP only if every check is UP.
    pub status: Status,
    /// Each check by name, in registration order.
    pub checks: Vec<(String, CheckOutcome)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(&crate::config::HealthSection::default())
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
        h.register(
            "slow",
            Probe::Liveness,
            Some(Duration::from_millis(50)),
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                true
            },
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
        h.apply(&crate::config::HealthSection {
            timeout: Duration::from_secs(5),
            ..Default::default()
        });
        assert_eq!(h.evaluate(&[Probe::Liveness]).await.status, Status::Up);
    }
}
