//! A bulkhead: a bound on concurrent calls, with a bounded wait for a free slot.
//!
//! One slow dependency must not take every connection, task and buffer of the caller with
//! it. The bulkhead admits at most `max_concurrent` calls at once; a call beyond that waits
//! up to `max_wait` for a slot (FIFO) and then fails with
//! [`ResilienceError::BulkheadFull`] without being attempted. `max_wait: 0` rejects at once.
//! A slot is held until the response head arrives (or the call is dropped), not while the
//! body streams. Unlike tower's `ConcurrencyLimit`, which waits in `poll_ready` for as long
//! as it takes, the wait is per call and bounded, and the rejection is an error that says so.
//!
//! With `max_wait: 0` (the default) nobody ever waits, so the slots are a plain atomic
//! counter (a compare-and-swap to take one, an atomic subtraction to give it back) rather
//! than a tokio semaphore, whose FIFO queue of waiters is not needed and whose release
//! takes a mutex. With a wait, the semaphore's queue keeps the waiters in order.
//!
//! ```
//! use std::time::Duration;
//!
//! use ms_chassis::resilience::ResilienceMetrics;
//! use ms_chassis::resilience::bulkhead::{BulkheadConfig, BulkheadLayer};
//! use tower::ServiceBuilder;
//!
//! let mut config = BulkheadConfig::default();
//! config.max_concurrent = 10;
//! config.max_wait = Duration::from_millis(50);
//! let layer = BulkheadLayer::new("books", config, &ResilienceMetrics::unregistered()).unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) });
//! # drop(svc);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::admission::AdmissionFuture;
use super::{BoxError, ResilienceError, ResilienceMetrics, durations};
use crate::config::Invalid;

/// A bulkhead's settings.
///
/// ```yaml
/// bulkhead: { max_concurrent: 25, max_wait: 0s }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// Calls admitted at once. Default 25 (Resilience4j's).
    pub max_concurrent: usize,
    /// How long a call beyond the limit waits for a slot; `0` (the default) rejects at once.
    #[serde(with = "durations")]
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 25,
            max_wait: Duration::ZERO,
        }
    }
}

impl BulkheadConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(Invalid::new("max_concurrent", "expected at least 1"));
        }
        Ok(())
    }
}

/// Wraps services in one shared bulkhead: every service the layer builds, and their
/// clones, draw from the same `max_concurrent` slots.
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    slots: Slots,
    max_wait: Duration,
    active: IntGauge,
    rejected: IntCounter,
}

/// Where the slots are counted: see the [module docs](self).
#[derive(Debug)]
enum Slots {
    /// `max_wait` is 0: calls taken, never above `max`.
    Counter { taken: AtomicUsize, max: usize },
    /// `max_wait` is more: a semaphore, whose queue of waiters is served in order.
    Semaphore(Arc<Semaphore>),
}

impl Shared {
    /// A free slot, if there is one now.
    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let permit = match &self.slots {
            Slots::Counter { taken, max } => {
                taken
                    .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                        (n < *max).then_some(n + 1)
                    })
                    .ok()?;
                None
            }
            Slots::Semaphore(s) => Some(Arc::clone(s).try_acquire_owned().ok()?),
        };
        Some(Slot::new(self, permit))
    }
}

impl BulkheadLayer {
    /// A bulkhead named `name`. Fails if `max_concurrent` is 0 or absurdly large.
    pub fn new(
        name: &str,
        config: BulkheadConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        config.validate()?;
        let (active, rejected) = metrics.bulkhead(name);
        Ok(BulkheadLayer {
            shared: Arc::new(Shared {
                name: name.into(),
                slots: if config.max_wait.is_zero() {
                    Slots::Counter {
                        taken: AtomicUsize::new(0),
                        max: config.max_concurrent,
                    }
                } else {
                    Slots::Semaphore(Arc::new(Semaphore::new(config.max_concurrent)))
                },
                max_wait: config.max_wait,
                active,
                rejected,
            }),
        })
    }

    /// Free slots right now.
    pub fn available(&self) -> usize {
        match &self.shared.slots {
            Slots::Counter { taken, max } => max.saturating_sub(taken.load(Ordering::Relaxed)),
            Slots::Semaphore(s) => s.available_permits(),
        }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The bulkhead's service: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Bulkhead<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// A held slot, shown in `ms_chassis_bulkhead_active_calls` while it lives.
#[derive(Debug)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
    /// The semaphore's permit; `None` for a counted slot, given back in `drop`.
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    fn new(shared: &Arc<Shared>, permit: Option<OwnedSemaphorePermit>) -> Self {
        shared.active.inc();
        Slot {
            shared: Arc::clone(shared),
            permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.permit.is_none()
            && let Slots::Counter { taken, .. } = &self.shared.slots
        {
            taken.fetch_sub(1, Ordering::Release);
        }
        self.shared.active.dec();
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = ResilienceError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ResilienceError::from_inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        if let Some(slot) = shared.try_take() {
            return AdmissionFuture::running(self.inner.call(req), Some(slot));
        }
        // Only a semaphore has waiters (`max_wait` is more than 0).
        let Slots::Semaphore(semaphore) = &shared.slots else {
            shared.rejected.inc();
            return AdmissionFuture::refused(ResilienceError::BulkheadFull {
                name: Arc::clone(&shared.name),
            });
        };
        let acquire = Arc::clone(semaphore).acquire_owned();
        // Wait for a slot with the service that `poll_ready` made ready; keep a clone.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(shared);
        AdmissionFuture::waiting(Box::pin(async move {
            match tokio::time::timeout(shared.max_wait, acquire).await {
                Ok(Ok(permit)) => {
                    let slot = Slot::new(&shared, Some(permit));
                    Ok((ready.call(req), Some(slot)))
                }
                _ => {
                    shared.rejected.inc();
                    Err(ResilienceError::BulkheadFull {
                        name: Arc::clone(&shared.name),
                    })
                }
            }
        }))
    }
}

/// The response future of [`Bulkhead`]: a call admitted, waiting for a slot, or refused.
pub type ResponseFuture<F> = AdmissionFuture<F>;

#[cfg(test)]
mod tests {
    use tokio::sync::Notify;
    use tokio::time::Instant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    /// `layer` (a clone: they share the slots) over a fake downstream that holds every call
    /// until released; with the count of calls that arrived there, and the release.
    #[allow(clippy::type_complexity)]
    fn held(
        layer: BulkheadLayer,
    ) -> (
        Bulkhead<
            impl Service<
                (),
                Response = &'static str,
                Error = std::io::Error,
                Future = impl Future<Output = Result<&'static str, std::io::Error>> + Send,
            > + Clone
            + Send
            + 'static,
        >,
        Arc<AtomicUsize>,
        Arc<Notify>,
    ) {
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let (a, r) = (Arc::clone(&arrived), Arc::clone(&release));
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |()| {
                let arrived = Arc::clone(&a);
                let release = Arc::clone(&r);
                async move {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok("done")
                }
            }));
        (svc, arrived, release)
    }

    /// Until `n` calls have arrived.
    async fn until_arrived(count: &AtomicUsize, n: usize) {
        while count.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }

    fn layer(max_concurrent: usize, max_wait: Duration) -> BulkheadLayer {
        let config = BulkheadConfig {
            max_concurrent,
            max_wait,
        };
        BulkheadLayer::new("b", config, &ResilienceMetrics::unregistered()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_calls_are_rejected_at_once_without_reaching_the_service() {
        let layer = layer(2, Duration::ZERO);
        let (svc, arrived, release) = held(layer.clone());

        let a = tokio::spawn(svc.clone().oneshot(()));
        let b = tokio::spawn(svc.clone().oneshot(()));
        until_arrived(&arrived, 2).await;
        assert_eq!(layer.available(), 0);
        let start = Instant::now();
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(matches!(err, ResilienceError::BulkheadFull { ref name } if &**name == "b"));
        assert_eq!(start.elapsed(), Duration::ZERO, "rejected without waiting");
        assert_eq!(arrived.load(Ordering::SeqCst), 2, "the third never arrived");
        assert_eq!(layer.shared.rejected.get(), 1);
        assert_eq!(layer.shared.active.get(), 2);

        release.notify_waiters();
        assert_eq!(a.await.unwrap().unwrap(), "done");
        assert_eq!(b.await.unwrap().unwrap(), "done");
        assert_eq!(layer.available(), 2, "slots come back");
        assert_eq!(layer.shared.active.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_waits_up_to_max_wait_for_a_slot() {
        let layer = layer(1, Duration::from_millis(500));
        let (svc, arrived, release) = held(layer.clone());

        let first = tokio::spawn(svc.clone().oneshot(()));
        until_arrived(&arrived, 1).await;
        // Times out: the slot is not freed within 500 ms.
        let start = Instant::now();
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(matches!(err, ResilienceError::BulkheadFull { .. }));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_millis(502),
            "{waited:?}"
        );
        assert_eq!(arrived.load(Ordering::SeqCst), 1);

        // Succeeds: the slot is freed after 200 ms.
        let second = tokio::spawn(svc.clone().oneshot(()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            arrived.load(Ordering::SeqCst),
            1,
            "still waiting for the slot"
        );
        release.notify_waiters();
        assert_eq!(first.await.unwrap().unwrap(), "done");
        until_arrived(&arrived, 2).await;
        release.notify_waiters();
        assert_eq!(second.await.unwrap().unwrap(), "done");
        assert_eq!(layer.shared.rejected.get(), 1);
    }

    #[test]
    fn zero_slots_is_a_config_error() {
        let e = BulkheadLayer::new(
            "b",
            BulkheadConfig {
                max_concurrent: 0,
                max_wait: Duration::ZERO,
            },
            &ResilienceMetrics::unregistered(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "max_concurrent: expected at least 1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_counted_slot_is_freed_when_its_call_is_cancelled() {
        let layer = layer(1, Duration::ZERO);
        let (svc, arrived, release) = held(layer.clone());
        let first = tokio::spawn(svc.clone().oneshot(()));
        until_arrived(&arrived, 1).await;
        assert_eq!(layer.available(), 0);
        assert!(svc.clone().oneshot(()).await.is_err(), "full");
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        assert_eq!(layer.available(), 1, "the cancelled call's slot is back");
        assert_eq!(layer.shared.active.get(), 0);
        let second = tokio::spawn(svc.clone().oneshot(()));
        until_arrived(&arrived, 2).await;
        release.notify_waiters();
        assert_eq!(second.await.unwrap().unwrap(), "done");
        assert_eq!(layer.available(), 1);
    }

    /// Calls from many threads at once: never more than `max_concurrent` inside, every
    /// call either admitted or rejected, and every slot given back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_counter_admits_at_most_max_concurrent_across_threads() {
        let (max, tasks, calls) = (5, 16, 200);
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let layer = layer(max, Duration::ZERO);
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn({
                let (inside, peak) = (Arc::clone(&inside), Arc::clone(&peak));
                move |()| {
                    let (inside, peak) = (Arc::clone(&inside), Arc::clone(&peak));
                    async move {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(())
                    }
                }
            }));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..calls {
                        admitted += usize::from(svc.clone().oneshot(()).await.is_ok());
                    }
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for h in handles {
            admitted += h.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= max);
        let rejected = usize::try_from(layer.shared.rejected.get()).unwrap();
        assert_eq!(admitted + rejected, tasks * calls);
        assert!(admitted >= calls, "{admitted}");
        assert_eq!(layer.available(), max);
        assert_eq!(layer.shared.active.get(), 0);
    }
}
