//! Accounting for the span export queue, so that a slow or dead collector is visible in
//! `/metrics` rather than only in a one-time SDK warning.
//!
//! The SDK's batch processor drops spans silently once its queue is full. We keep our own
//! count of spans handed to it and not yet taken by the exporter, and drop (and count)
//! at that bound ourselves, so the SDK never has to. Exports are counted by outcome. The
//! counters are shared with the OTLP exporter (`otlp`), which bounds its own queue; the
//! wrappers serve the stdout exporter, which still runs behind the SDK's batch processor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::IntCounter;

/// The process-wide span counters, registered on the default registry (which `/metrics`
/// serves) because the tracer provider is process-wide too.
#[derive(Clone, Debug)]
pub(crate) struct SpanCounters {
    pub(crate) dropped: IntCounter,
    pub(crate) exported: IntCounter,
    pub(crate) failed: IntCounter,
}

impl SpanCounters {
    /// Counters on no registry, for tests.
    #[cfg(test)]
    pub(crate) fn unregistered() -> Self {
        Self {
            dropped: IntCounter::new("d_total", "d").unwrap(),
            exported: IntCounter::new("e_total", "e").unwrap(),
            failed: IntCounter::new("f_total", "f").unwrap(),
        }
    }

    pub(crate) fn register() -> Self {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            // Registration fails only if it already happened; the counter then stays
            // unregistered, which cannot happen since the provider is built once.
            let _ = prometheus::register(Box::new(c.clone()));
            c
        };
        Self {
            dropped: counter(
                "ms_chassis_trace_spans_dropped_total",
                "Sampled spans dropped because the export queue was full.",
            ),
            exported: counter(
                "ms_chassis_trace_spans_exported_total",
                "Spans the trace exporter delivered.",
            ),
            failed: counter(
                "ms_chassis_trace_spans_export_failed_total",
                "Spans in export batches that failed.",
            ),
        }
    }
}

/// Wraps the batch processor: counts spans in its queue and drops beyond `limit`.
#[derive(Debug)]
pub(crate) struct BoundedProcessor<P> {
    inner: P,
    queued: Arc<AtomicUsize>,
    limit: usize,
    counters: SpanCounters,
}

/// Wraps the exporter: gives queue slots back as batches leave, and counts outcomes.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    counters: SpanCounters,
}

/// Builds the exporter and processor wrappers around one shared queue count.
pub(crate) fn bounded<E, P>(
    exporter: E,
    limit: usize,
    counters: SpanCounters,
    make_processor: impl FnOnce(CountingExporter<E>) -> P,
) -> BoundedProcessor<P> {
    let queued = Arc::new(AtomicUsize::new(0));
    let exporter = CountingExporter {
        inner: exporter,
        queued: queued.clone(),
        counters: counters.clone(),
    };
    BoundedProcessor {
        inner: make_processor(exporter),
        queued,
        limit,
        counters,
    }
}

impl<P: SpanProcessor> SpanProcessor for BoundedProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let counters = self.counters.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            let counter = if result.is_ok() {
                &counters.exported
            } else {
                &counters.failed
            };
            counter.inc_by(n as u64);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// An exporter that never completes: a dead collector.
    #[derive(Debug, Default)]
    struct Stuck;

    impl SpanExporter for Stuck {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::future::pending().await
        }
    }

    #[test]
    fn spans_beyond_the_bound_are_dropped_and_counted() {
        let counters = SpanCounters::unregistered();
        // A processor that keeps everything queued (never calls the exporter).
        #[derive(Debug)]
        struct Hold(
            Mutex<Vec<SpanData>>,
            #[allow(dead_code)] CountingExporter<Stuck>,
        );
        impl SpanProcessor for Hold {
            fn on_start(&self, _: &mut Span, _: &Context) {}
            fn on_end(&self, s: SpanData) {
                self.0.lock().unwrap().push(s);
            }
            fn force_flush(&self) -> OTelSdkResult {
                Ok(())
            }
            fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
                Ok(())
            }
        }
        let p = bounded(Stuck, 3, counters.clone(), |e| {
            Hold(Mutex::new(Vec::new()), e)
        });
        let provider = SdkTracerProvider::builder().with_span_processor(p).build();
        let tracer = provider.tracer("t");
        for _ in 0..10 {
            tracer.in_span("s", |_| {});
        }
        assert_eq!(counters.dropped.get(), 7);
    }
}
