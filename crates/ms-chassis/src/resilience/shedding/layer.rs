//! [`LoadShedLayer`]: an [`AdaptiveLimit`] in front of any tower service.

use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::{AdaptiveLimit, LoadSheddingConfig};
use crate::config::Invalid;
use crate::resilience::{BoxError, ResilienceError, ResilienceMetrics};

/// Sheds calls beyond an adaptive concurrency limit, failing them at once with
/// [`ResilienceError::Shed`]. Every service the layer builds, and their clones, share one
/// [`AdaptiveLimit`]. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    limit: AdaptiveLimit,
}

impl LoadShedLayer {
    /// A load shedder named `name`. Fails if the settings are invalid; `enabled` is not
    /// read (the layer is on where it is used).
    pub fn new(
        name: &str,
        config: LoadSheddingConfig,
        metrics: &ResilienceMetrics,
    ) -> Result<Self, Invalid> {
        AdaptiveLimit::new(name, &config, metrics).map(Self::with_limit)
    }

    /// A layer over an existing limit, shared with whatever else uses it.
    pub fn with_limit(limit: AdaptiveLimit) -> Self {
        LoadShedLayer { limit }
    }

    /// The limit, to read its current value.
    pub fn limit(&self) -> &AdaptiveLimit {
        &self.limit
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            limit: self.limit.clone(),
        }
    }
}

/// The load shedder's service: see [`LoadShedLayer`].
#[derive(Clone, Debug)]
pub struct LoadShed<S> {
    inner: S,
    limit: AdaptiveLimit,
}

impl<S, Req> Service<Req> for LoadShed<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
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
        match self.limit.try_acquire() {
            Some(permit) => ResponseFuture::running(self.inner.call(req), permit),
            None => ResponseFuture::shed(self.limit.name_arc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    fn layer(initial_limit: usize) -> LoadShedLayer {
        let config = LoadSheddingConfig {
            initial_limit,
            min_limit: 1,
            ..LoadSheddingConfig::default()
        };
        LoadShedLayer::new("s", config, &ResilienceMetrics::unregistered()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_calls_are_shed_at_once_without_reaching_the_service() {
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let layer = layer(2);
        let (a, r) = (Arc::clone(&arrived), Arc::clone(&release));
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(move |()| {
                let (a, r) = (Arc::clone(&a), Arc::clone(&r));
                async move {
                    a.fetch_add(1, Ordering::SeqCst);
                    r.notified().await;
                    Ok::<_, std::io::Error>("done")
                }
            }));

        let first = tokio::spawn(svc.clone().oneshot(()));
        let second = tokio::spawn(svc.clone().oneshot(()));
        while arrived.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(matches!(err, ResilienceError::Shed { ref name } if &**name == "s"));
        assert_eq!(err.name(), "shed");
        assert_eq!(err.status_hint(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.is_rejected());
        assert_eq!(arrived.load(Ordering::SeqCst), 2, "the third never arrived");
        assert_eq!(layer.limit().in_flight(), 2);

        release.notify_waiters();
        assert_eq!(first.await.unwrap().unwrap(), "done");
        assert_eq!(second.await.unwrap().unwrap(), "done");
        assert_eq!(layer.limit().in_flight(), 0, "slots come back");
    }

    #[tokio::test(start_paused = true)]
    async fn latencies_of_a_busy_service_raise_the_limit() {
        let layer = layer(4);
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|()| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, std::io::Error>(())
            }));
        // Four callers in a loop for two seconds: the whole limit in use at a steady
        // latency, so it grows.
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..200 {
                        svc.clone().oneshot(()).await.unwrap();
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.unwrap();
        }
        assert!(layer.limit().limit() > 4, "{}", layer.limit().limit());
    }

    #[tokio::test]
    async fn a_rejection_from_an_inner_layer_is_not_a_latency_sample() {
        let layer = layer(2);
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|()| async {
                Err::<(), _>(ResilienceError::RateLimited { name: "r".into() })
            }));
        let err = svc.oneshot(()).await.unwrap_err();
        assert_eq!(err.name(), "rate_limited", "passed through, not nested");
        assert_eq!(layer.limit().in_flight(), 0);
    }
}
