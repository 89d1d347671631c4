//! The sampling decision as B3 names it ([`SamplingState`]), and the two shapes that B3 and
//! Jaeger share around it: what their parsers found ([`Parsed`]) and what their injection
//! writes ([`Outgoing`]), with the hex forms of the ids both write.
//!
//! One place for it because OpenTelemetry's `SpanContext` cannot hold a decision without
//! ids (`b3: 0`): the state rides along in the extracted context instead, and both formats
//! read and write it the same way (see the parent module's "Sampling-only headers").

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::Extracted;

/// A sampling decision as B3 names it, recorded on contexts extracted from B3 or Jaeger
/// headers. Read it with [`sampling_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SamplingState {
    /// No decision was sent: the receiver decides. The span context is not sampled.
    Defer,
    /// Do not sample (`b3: 0`, `X-B3-Sampled: 0`, Jaeger flags without bit 1).
    Deny,
    /// Sample (`b3: 1`, `X-B3-Sampled: 1`, Jaeger flags bit 1).
    Accept,
    /// Sample, and ask the backend to keep the trace (`b3: d`, `X-B3-Flags: 1`, Jaeger
    /// flags bit 2). Implies [`SamplingState::Accept`].
    Debug,
}

impl SamplingState {
    fn trace_flags(self) -> TraceFlags {
        match self {
            SamplingState::Accept | SamplingState::Debug => TraceFlags::SAMPLED,
            SamplingState::Defer | SamplingState::Deny => TraceFlags::NOT_SAMPLED,
        }
    }
}

/// The B3 or Jaeger sampling state extracted into `cx`, if its trace context came from
/// one of those formats. For a deny-only `b3: 0` this is `Some(Deny)` while the span
/// context is invalid; see the [module docs](super) for how samplers see it.
pub fn sampling_state(cx: &Context) -> Option<SamplingState> {
    cx.get::<Extracted>().and_then(|v| v.sampling)
}

/// What a B3 or Jaeger parser found in a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A trace id and span id, both non-zero, with the sampling state.
    Ids {
        trace_id: TraceId,
        span_id: SpanId,
        state: SamplingState,
    },
    /// A sampling decision with no ids, such as `b3: 0`. Never `Defer`.
    StateOnly(SamplingState),
}

impl Parsed {
    pub(super) fn apply(self, cx: &Context) -> Context {
        let (trace_id, span_id, state) = match self {
            Parsed::Ids {
                trace_id,
                span_id,
                state,
            } => (trace_id, span_id, state),
            Parsed::StateOnly(state) => (TraceId::INVALID, SpanId::INVALID, state),
        };
        let sc = SpanContext::new(
            trace_id,
            span_id,
            state.trace_flags(),
            true,
            TraceState::default(),
        );
        cx.with_remote_span_context(sc).with_value(Extracted {
            sampling: Some(state),
            tracestate: None,
        })
    }
}

/// What B3 and Jaeger injection write for a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// A valid span context.
    Ids {
        trace_id: TraceId,
        span_id: SpanId,
        sampled: bool,
        debug: bool,
    },
    /// No valid ids, but a sampling decision to pass on (never `Defer`).
    StateOnly(SamplingState),
}

impl Outgoing {
    /// What to write for `cx`, whose extracted sampling state is `state`.
    pub(super) fn of(cx: &Context, state: Option<SamplingState>) -> Option<Outgoing> {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let sampled = sc.is_sampled();
            Some(Outgoing::Ids {
                trace_id: sc.trace_id(),
                span_id: sc.span_id(),
                sampled,
                debug: sampled && state == Some(SamplingState::Debug),
            })
        } else {
            match state {
                Some(s @ (SamplingState::Deny | SamplingState::Accept | SamplingState::Debug)) => {
                    Some(Outgoing::StateOnly(s))
                }
                Some(SamplingState::Defer) | None => None,
            }
        }
    }
}

/// Lower-hex trace id: 16 characters when the high 64 bits are zero (a 64-bit id, as it
/// arrived), 32 otherwise.
pub(super) fn trace_id_hex(id: TraceId) -> String {
    let v = u128::from_be_bytes(id.to_bytes());
    if v >> 64 == 0 {
        format!("{v:016x}")
    } else {
        format!("{v:032x}")
    }
}

/// Lower-hex span id, 16 characters.
pub(super) fn span_id_hex(id: SpanId) -> String {
    format!("{:016x}", u64::from_be_bytes(id.to_bytes()))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

    use super::super::test_support::*;
    use super::*;

    #[test]
    fn ids_beat_a_sampling_only_hint() {
        let cx = extract(&[("b3", "0"), ("uber-trace-id", "abc:def:0:1")]);
        assert!(sc(&cx).is_valid() && sc(&cx).is_sampled());
        assert_eq!(sampling_state(&cx), Some(SamplingState::Accept));
    }

    #[test]
    fn samplers_respect_sampling_only_headers() {
        let sample = |sampler: Sampler, cx: &Context| {
            let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
            let span = provider.tracer("test").start_with_context("server", cx);
            let sc = span.span_context().clone();
            assert!(sc.is_valid(), "a fresh trace has ids even when dropped");
            assert_ne!(sc.trace_id(), TraceId::INVALID);
            sc.is_sampled()
        };
        let parent_on = || Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let parent_off = || Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
        // Deny-only stops a sampler that would otherwise sample.
        assert!(!sample(parent_on(), &extract(&[("b3", "0")])));
        assert!(!sample(parent_on(), &extract(&[("x-b3-sampled", "0")])));
        // Accept- and debug-only sample where the root sampler would not.
        assert!(sample(parent_off(), &extract(&[("b3", "1")])));
        assert!(sample(parent_off(), &extract(&[("b3", "d")])));
        // No headers: the root sampler decides.
        assert!(sample(parent_on(), &extract(&[])));
        assert!(!sample(parent_off(), &extract(&[])));
        // Ids with deny keep the trace id and are not sampled.
        let cx = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]);
        assert!(!sample(parent_on(), &cx));
    }
}
