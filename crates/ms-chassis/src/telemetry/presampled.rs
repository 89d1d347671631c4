//! Spans the chassis starts (a request's server span, a client call's span) are sampled
//! *before* the SDK is asked for a span, so that the unsampled ones, most of them, never go
//! through the SDK's span builder: they are only a pair of ids and a decision, as when
//! nothing is exported.
//!
//! The sampled ones are built by the SDK, which would take the decision again, and for a
//! new trace on a trace id of its own. Version 0.33's `SpanBuilder` can no longer be given
//! either, so the provider's sampler and id generator look here first: [`with_decision`]
//! hands them the decision and the trace id for the length of one `build` on this thread,
//! and clears them afterwards whether or not the SDK took them (it does not when the
//! provider is shut down). Every other span (the user's own, through the global tracer)
//! finds nothing here and is sampled and numbered as usual.

use std::cell::{Cell, RefCell};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SamplingResult};

thread_local! {
    static DECISION: RefCell<Option<SamplingResult>> = const { RefCell::new(None) };
    static TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Runs `build` with `decision` (and, for a new trace, `trace_id`) waiting for the SDK's
/// sampler and id generator.
pub(crate) fn with_decision<R>(
    decision: SamplingResult,
    trace_id: Option<TraceId>,
    build: impl FnOnce() -> R,
) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            DECISION.with(|d| d.borrow_mut().take());
            TRACE_ID.with(|t| t.set(None));
        }
    }
    DECISION.with(|d| *d.borrow_mut() = Some(decision));
    TRACE_ID.with(|t| t.set(trace_id));
    let _clear = Clear;
    build()
}

/// The decision [`with_decision`] left for the span being built, if any.
pub(crate) fn take_decision() -> Option<SamplingResult> {
    DECISION.with(|d| d.borrow_mut().take())
}

/// The provider's id generator: the trace id [`with_decision`] left, else random ids.
#[derive(Debug, Default)]
pub(crate) struct PresampledIds(RandomIdGenerator);

impl IdGenerator for PresampledIds {
    fn new_trace_id(&self) -> TraceId {
        TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceState;
    use opentelemetry_sdk::trace::SamplingDecision;

    use super::*;

    fn decision() -> SamplingResult {
        SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }

    /// A sampler that drops everything unless a decision was handed over.
    #[derive(Debug, Clone)]
    struct DropsUnlessDecided;

    impl opentelemetry_sdk::trace::ShouldSample for DropsUnlessDecided {
        fn should_sample(
            &self,
            _: Option<&opentelemetry::Context>,
            _: TraceId,
            _: &str,
            _: &opentelemetry::trace::SpanKind,
            _: &[opentelemetry::KeyValue],
            _: &[opentelemetry::trace::Link],
        ) -> SamplingResult {
            take_decision().unwrap_or(SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            })
        }
    }

    /// What `start_span` relies on: the SDK's builder asks the provider's sampler and id
    /// generator, so the span it builds has the decision and the trace id handed over.
    #[test]
    fn the_sdk_builds_the_span_with_the_decision_and_trace_id_handed_over() {
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(DropsUnlessDecided)
            .with_id_generator(PresampledIds::default())
            .build();
        let tracer = provider.tracer("test");
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = with_decision(decision(), Some(id), || tracer.start("decided"));
        assert!(span.is_recording());
        assert_eq!(span.span_context().trace_id(), id);
        assert!(span.span_context().is_sampled());
        let other = tracer.start("not decided");
        assert!(
            !other.is_recording(),
            "the sampler's own rule applies again"
        );
        assert_ne!(other.span_context().trace_id(), id);
    }

    #[test]
    fn handed_over_once_and_cleared_after_the_build() {
        let ids = PresampledIds::default();
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        with_decision(decision(), Some(id), || {
            assert_eq!(ids.new_trace_id(), id);
            assert_ne!(ids.new_trace_id(), id, "taken once");
            assert!(take_decision().is_some());
            assert!(take_decision().is_none(), "taken once");
        });
        // Not taken inside: still cleared when the build returns.
        with_decision(decision(), Some(id), || ());
        assert!(take_decision().is_none());
        assert_ne!(ids.new_trace_id(), id);
    }
}
