//! The clock the resilience layers and the client read, with one reading per poll of a
//! client call.
//!
//! A call through the client's stack needs the time about ten times on its way in and out:
//! the overall and per-attempt deadlines, the retry budget's deposit, the breaker's
//! admission, start and outcome, the attempt's duration. Each reading is a `clock_gettime`
//! (about 20 ns here), which together made a tenth of the client's own cost over plain
//! reqwest. So [`PollClock`] caches the instant for the length of one poll of the call:
//! the first [`now`] in the poll reads the clock, the others in that poll get the same
//! instant. A poll is synchronous work of microseconds, and that is the most any time taken
//! this way is early by: a duration may measure that much longer, a deadline fire that much
//! sooner. Outside a [`PollClock`] (the server, a layer used on its own), [`now`] reads the
//! clock every time.
//!
//! Time is tokio's, so tests can pause and advance it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;

#[derive(Clone, Copy)]
enum Cached {
    /// Not inside a [`PollClock`] poll.
    Off,
    /// Inside one, and not read yet.
    Unread,
    At(Instant),
}

thread_local! {
    static CACHED: Cell<Cached> = const { Cell::new(Cached::Off) };
}

/// The current instant: tokio's clock, read at most once per poll of a [`PollClock`].
pub(crate) fn now() -> Instant {
    CACHED.with(|c| match c.get() {
        Cached::At(t) => t,
        Cached::Off => tokio::time::Instant::now().into_std(),
        Cached::Unread => {
            let t = tokio::time::Instant::now().into_std();
            c.set(Cached::At(t));
            t
        }
    })
}

/// [`now`] as tokio's `Instant`, for timers.
pub(crate) fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::from_std(now())
}

pin_project! {
    /// Polls `inner` with the clock cached for the length of each poll.
    pub(crate) struct PollClock<F> {
        #[pin]
        inner: F,
    }
}

impl<F> PollClock<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner }
    }
}

/// Puts back the cache state of an enclosing poll, also when the inner poll panics.
struct Restore(Cached);

impl Drop for Restore {
    fn drop(&mut self) {
        CACHED.with(|c| c.set(self.0));
    }
}

impl<F: Future> Future for PollClock<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = Restore(CACHED.with(|c| c.replace(Cached::Unread)));
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_reading_per_poll_and_fresh_outside() {
        let (a, b) = PollClock::new(async {
            let a = now();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(now(), a, "cached within a poll");
            tokio::task::yield_now().await;
            (a, now())
        })
        .await;
        assert!(
            b - a >= Duration::from_millis(2),
            "read again in the next poll"
        );
        let outside = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            now() - outside >= Duration::from_millis(2),
            "not cached outside"
        );
    }

    #[tokio::test]
    async fn nested_polls_restore_the_enclosing_state() {
        PollClock::new(async {
            let outer = now();
            PollClock::new(async { now() }).await;
            assert_eq!(now(), outer, "the enclosing poll keeps its reading");
        })
        .await;
        let a = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > a, "off again after the outermost poll");
    }
}
