//! One accepted connection, served with its timeouts: how long a client may take to send a
//! request head (`server.limits.header_read_timeout`), and how long a keep-alive connection
//! may sit with no request (`server.limits.idle_timeout`).
//!
//! hyper has one timer for both (its `header_read_timeout` runs from the end of one response
//! to the end of the next request head), so a 10 s head limit would also close idle
//! keep-alive connections after 10 s. Go, nginx and Envoy keep the two apart, and so do we:
//! hyper's timer is off, and a watchdog beside the connection reads a few counters that the
//! socket and the service keep ([`Activity`]), on a tick of a quarter of the shorter timeout.
//! Nothing on the request path reads a clock: a request costs one reference count on the
//! connection's [`Activity`] while it is in flight, and the socket counts its reads and
//! writes.
//!
//! A connection is *busy* while a request is in flight or bytes are written (a streamed
//! response); *reading a head* from its accept, and from the first byte of a later request
//! (HTTP/1) until the head is complete; *idle* otherwise. An idle HTTP/2 connection gets a
//! GOAWAY, so that streams still open end normally; bytes an HTTP/2 client sends (pings,
//! window updates) do not make it busy, and neither do the server's own keep-alive pings.
//! Timings are kept to within one tick (a quarter of the timeout): a connection is closed no
//! sooner than its timeout, and at most about two ticks later.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Why the chassis closed a connection, the `reason` label of
/// `ms_chassis_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// No complete request head within `header_read_timeout`.
    HeaderTimeout,
    /// No request within `idle_timeout`.
    Idle,
    /// Over `max_connections`: closed as soon as accepted.
    Limit,
}

impl CloseReason {
    /// In declaration order, so `reason as usize` indexes it.
    pub(crate) const ALL: [CloseReason; 3] = [Self::HeaderTimeout, Self::Idle, Self::Limit];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::Idle => "idle",
            Self::Limit => "limit",
        }
    }
}

/// What the socket and the service tell the watchdog. Each counter has one writer, so a
/// relaxed load and store (no read-modify-write) is enough.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Reads that returned bytes.
    reads: AtomicU64,
    /// Writes that took bytes.
    writes: AtomicU64,
    /// Requests whose head was complete (the service was called). hyper calls the service
    /// from the connection's own task, for HTTP/2 too.
    requests: AtomicU64,
    /// [`PROTOCOL_UNKNOWN`], [`PROTOCOL_H1`], [`PROTOCOL_H2`], or below `PREFACE.len()` the
    /// number of bytes of the HTTP/2 preface seen so far (stored plus [`PROTOCOL_MATCHING`]).
    protocol: AtomicU8,
}

/// The connection preface every HTTP/2 connection starts with (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PROTOCOL_UNKNOWN: u8 = 0;
const PROTOCOL_H1: u8 = 1;
const PROTOCOL_H2: u8 = 2;
const PROTOCOL_MATCHING: u8 = 3;

fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Activity {
    /// A request head is complete: the service is being called.
    pub(crate) fn request_started(&self) {
        bump(&self.requests);
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether the connection speaks HTTP/2 (an idle one is sent a GOAWAY and left to end
    /// its open streams, rather than dropped).
    pub(crate) fn is_h2(&self) -> bool {
        self.protocol.load(Ordering::Relaxed) == PROTOCOL_H2
    }

    /// Follows the HTTP/2 preface through the first reads.
    fn sniff(&self, bytes: &[u8]) {
        let state = self.protocol.load(Ordering::Relaxed);
        let matched = match state {
            PROTOCOL_H1 | PROTOCOL_H2 => return,
            PROTOCOL_UNKNOWN => 0,
            n => usize::from(n - PROTOCOL_MATCHING),
        };
        let want = &PREFACE[matched..];
        let n = want.len().min(bytes.len());
        let next = if bytes[..n] != want[..n] {
            PROTOCOL_H1
        } else if matched + n == PREFACE.len() {
            PROTOCOL_H2
        } else {
            // `matched + n` < 24, so this fits in a u8 beside the three states.
            PROTOCOL_MATCHING + (matched + n) as u8
        };
        self.protocol.store(next, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Seen {
        Seen {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Seen {
    reads: u64,
    writes: u64,
    requests: u64,
}

/// The accepted socket, counting its reads and writes into [`Activity`].
pub(crate) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let a = &self.activity;
            bump(&a.reads);
            if a.protocol.load(Ordering::Relaxed) != PROTOCOL_H1 {
                a.sniff(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            bump(&self.activity.writes);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            bump(&self.activity.writes);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `header_read_timeout` and `idle_timeout`, `None` when off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Option<Duration>,
    pub(crate) idle: Option<Duration>,
}

impl Timeouts {
    /// How often the watchdog looks: a quarter of the shorter timeout, within 10 ms to
    /// 2.5 s. `None` when both are off.
    fn tick(&self) -> Option<Duration> {
        let shorter = match (self.header, self.idle) {
            (Some(h), Some(i)) => h.min(i),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => return None,
        };
        Some((shorter / 4).clamp(Duration::from_millis(10), Duration::from_millis(2500)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head to be complete, since then.
    Head(Instant),
    /// No request in flight and no bytes moving, since then.
    Quiet(Instant),
}

/// Decides, tick by tick, when a connection has overstayed a timeout.
#[derive(Debug)]
pub(crate) struct Watchdog {
    timeouts: Timeouts,
    tick: Duration,
    phase: Phase,
    seen: Seen,
    /// `Arc::strong_count` of the connection's [`Activity`] with no request in flight; each
    /// request holds one more (see [`Watchdog::new`]).
    holders: usize,
}

impl Watchdog {
    /// A watchdog for a connection accepted `now`, or `None` when both timeouts are off.
    /// `activity` is held by everything that lives as long as the connection; from here
    /// on, each request in flight holds one more reference.
    pub(crate) fn new(timeouts: Timeouts, activity: &Arc<Activity>, now: Instant) -> Option<Self> {
        let tick = timeouts.tick()?;
        Some(Self {
            timeouts,
            tick,
            // The first head is timed from the accept, as Go's `ReadHeaderTimeout` and
            // hyper's own timer do: a client that connects and sends nothing is a slow head.
            phase: match timeouts.header {
                Some(_) => Phase::Head(now),
                None => Phase::Quiet(now),
            },
            seen: Seen::default(),
            holders: Arc::strong_count(activity),
        })
    }

    /// When to look next.
    pub(crate) fn next_tick(&self, now: Instant) -> Instant {
        now + self.tick
    }

    /// Looks at the connection `now`: `Some` when it must close, and why.
    pub(crate) fn check(&mut self, activity: &Arc<Activity>, now: Instant) -> Option<CloseReason> {
        let seen = activity.snapshot();
        let h2 = activity.is_h2();
        let in_flight = Arc::strong_count(activity) > self.holders;
        // HTTP/2 writes include the server's own keep-alive pings; an HTTP/2 stream still
        // sending its body survives the GOAWAY an idle close sends.
        let busy = in_flight
            || seen.requests != self.seen.requests
            || (!h2 && seen.writes != self.seen.writes);
        let bytes_in = seen.reads != self.seen.reads;
        self.seen = seen;
        if busy {
            self.phase = Phase::Quiet(now);
            return None;
        }
        match self.phase {
            // An HTTP/2 client that has sent its preface may keep the connection for later
            // requests: from here on it is idle, not slow.
            Phase::Head(_) if h2 => self.phase = Phase::Quiet(now),
            Phase::Head(since) => {
                if self
                    .timeouts
                    .header
                    .is_some_and(|t| now.saturating_duration_since(since) >= t)
                {
                    return Some(CloseReason::HeaderTimeout);
                }
            }
            // The first bytes of the next HTTP/1 request: its head is timed from here (the
            // bytes came at most a tick ago, so the head gets at least its full time).
            Phase::Quiet(_) if bytes_in && !h2 && self.timeouts.header.is_some() => {
                self.phase = Phase::Head(now);
            }
            Phase::Quiet(since) => {
                if self
                    .timeouts
                    .idle
                    .is_some_and(|t| now.saturating_duration_since(since) >= t)
                {
                    return Some(CloseReason::Idle);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchdog(header: u64, idle: u64) -> (Watchdog, Arc<Activity>, Instant) {
        let activity = Arc::new(Activity::default());
        let now = Instant::now();
        let timeouts = Timeouts {
            header: (header > 0).then(|| Duration::from_secs(header)),
            idle: (idle > 0).then(|| Duration::from_secs(idle)),
        };
        let w = Watchdog::new(timeouts, &activity, now).expect("a timeout is on");
        (w, activity, now)
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_connection_that_sends_no_head_is_closed_at_the_header_timeout() {
        let (mut w, a, t0) = watchdog(10, 60);
        assert_eq!(w.check(&a, at(t0, 9)), None);
        assert_eq!(w.check(&a, at(t0, 10)), Some(CloseReason::HeaderTimeout));
    }

    #[test]
    fn a_partial_head_does_not_reset_the_header_timer() {
        let (mut w, a, t0) = watchdog(10, 60);
        bump(&a.reads);
        assert_eq!(w.check(&a, at(t0, 5)), None);
        bump(&a.reads);
        assert_eq!(w.check(&a, at(t0, 10)), Some(CloseReason::HeaderTimeout));
    }

    #[test]
    fn keep_alive_connections_are_idle_between_requests_not_slow() {
        let (mut w, a, t0) = watchdog(10, 60);
        a.request_started();
        bump(&a.writes);
        assert_eq!(w.check(&a, at(t0, 2)), None);
        // Quiet from second 2: the header timeout does not apply while no byte comes.
        assert_eq!(w.check(&a, at(t0, 30)), None);
        assert_eq!(w.check(&a, at(t0, 61)), None);
        assert_eq!(w.check(&a, at(t0, 62)), Some(CloseReason::Idle));
    }

    #[test]
    fn the_next_head_is_timed_from_its_first_bytes() {
        let (mut w, a, t0) = watchdog(10, 60);
        a.request_started();
        assert_eq!(w.check(&a, at(t0, 1)), None);
        bump(&a.reads);
        assert_eq!(w.check(&a, at(t0, 20)), None);
        assert_eq!(w.check(&a, at(t0, 29)), None);
        assert_eq!(w.check(&a, at(t0, 30)), Some(CloseReason::HeaderTimeout));
    }

    #[test]
    fn a_request_in_flight_keeps_the_connection_open() {
        let (mut w, a, t0) = watchdog(10, 60);
        a.request_started();
        let request = a.clone();
        assert_eq!(w.check(&a, at(t0, 1)), None);
        assert_eq!(w.check(&a, at(t0, 100)), None);
        drop(request);
        assert_eq!(w.check(&a, at(t0, 159)), None);
        assert_eq!(w.check(&a, at(t0, 160)), Some(CloseReason::Idle));
    }

    #[test]
    fn a_streamed_response_keeps_an_http1_connection_busy() {
        let (mut w, a, t0) = watchdog(10, 60);
        a.request_started();
        for s in (1..200).step_by(10) {
            bump(&a.writes);
            assert_eq!(w.check(&a, at(t0, s)), None);
        }
    }

    #[test]
    fn http2_clients_may_keep_an_idle_connection_until_the_idle_timeout() {
        let (mut w, a, t0) = watchdog(10, 60);
        a.sniff(&PREFACE[..10]);
        assert!(!a.is_h2());
        a.sniff(&PREFACE[10..]);
        assert!(a.is_h2());
        bump(&a.reads);
        assert_eq!(w.check(&a, at(t0, 1)), None);
        // Pings both ways are not requests.
        bump(&a.reads);
        bump(&a.writes);
        assert_eq!(w.check(&a, at(t0, 30)), None);
        assert_eq!(w.check(&a, at(t0, 61)), Some(CloseReason::Idle));
    }

    #[test]
    fn http1_is_told_from_the_preface_at_the_first_byte_that_differs() {
        let a = Activity::default();
        a.sniff(b"PR");
        assert!(!a.is_h2());
        a.sniff(b"X");
        assert_eq!(a.protocol.load(Ordering::Relaxed), PROTOCOL_H1);
        let b = Activity::default();
        b.sniff(b"GET / HTTP/1.1\r\n");
        assert_eq!(b.protocol.load(Ordering::Relaxed), PROTOCOL_H1);
    }

    #[test]
    fn ticks_are_a_quarter_of_the_shorter_timeout_within_bounds() {
        let t = |h: u64, i: u64| Timeouts {
            header: (h > 0).then(|| Duration::from_millis(h)),
            idle: (i > 0).then(|| Duration::from_millis(i)),
        };
        assert_eq!(t(10_000, 60_000).tick(), Some(Duration::from_millis(2500)));
        assert_eq!(t(1_000, 0).tick(), Some(Duration::from_millis(250)));
        assert_eq!(t(0, 8).tick(), Some(Duration::from_millis(10)));
        assert_eq!(t(0, 0).tick(), None);
    }
}
