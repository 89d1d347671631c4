//! Polls a side future only after it asked to be woken.
//!
//! A connection's task is woken for every read and write of its socket, and `select!`
//! then polls every branch: besides the connection itself, the shutdown token and the
//! watchdog's timer, which have nothing new to say on almost every wake (a timer poll
//! alone is a few hundred instructions). [`WakeGate`] gives those branches a waker of their
//! own, and polls them only once it has been called, so a request's wakes cost an atomic
//! load for them instead. `futures_util`'s `FuturesUnordered` does the same for a set of
//! futures, but drops each one when it completes; these are polled again after they fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The waker given to the gated futures: it opens the gate and wakes the task.
#[derive(Debug)]
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Runs a poll function only when what it polled last asked to be woken (and on the
/// first poll, and after it returned `Ready`, since its state has changed then).
#[derive(Debug)]
pub(crate) struct WakeGate {
    gate: Arc<Gate>,
    waker: Waker,
}

impl WakeGate {
    pub(crate) fn new() -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(Arc::clone(&gate));
        Self { gate, waker }
    }

    /// Polls `poll` with the gate's waker if it was woken since it last returned
    /// `Pending`; otherwise returns `Pending` at once. Either way, the task behind `cx` is
    /// woken when the gate is.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.gate.task.register(cx.waker());
        if !self.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = poll(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            self.gate.woken.store(true, Ordering::Release);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_poll_function_runs_only_after_its_waker_is_called() {
        let gate = WakeGate::new();
        let task = Waker::noop();
        let mut cx = Context::from_waker(task);
        let runs = AtomicUsize::new(0);
        let saved: std::sync::Mutex<Option<Waker>> = Default::default();
        let poll = |cx: &mut Context<'_>| {
            runs.fetch_add(1, Ordering::Relaxed);
            *saved.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        };
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(runs.load(Ordering::Relaxed), 1, "not woken: not run again");
        saved.lock().unwrap().take().unwrap().wake();
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(runs.load(Ordering::Relaxed), 2, "woken: run");
        // Ready leaves the gate open: the next poll runs again.
        saved.lock().unwrap().take().unwrap().wake();
        assert!(gate.poll(&mut cx, |_| Poll::Ready(())).is_ready());
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(runs.load(Ordering::Relaxed), 3);
    }
}
