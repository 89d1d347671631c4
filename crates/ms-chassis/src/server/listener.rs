//! The accept loop: a cap on open connections, the HTTP/1 and HTTP/2 settings every
//! connection is served with, and the connection metrics.
//!
//! The chassis runs its own loop rather than `axum::serve` because axum offers no way to
//! set hyper's limits or to count and bound connections. Past `max_connections` a new
//! connection is closed as soon as it is accepted, as Envoy and nginx do, rather than left
//! in the kernel's accept queue, where a flood of slow clients would hold the queue and
//! legitimate clients would hang until their own connect timeout; the rejection is counted
//! and logged at most every ten seconds. An accept error that is not the client's (out of
//! file descriptors) pauses accepting for a second, as hyper did, and is logged at most
//! once a second.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::{IntCounter, IntGauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::LimitsSection;
use super::connection::{Activity, CloseReason, Timeouts, Watchdog, Watched};
use super::wake_gate::WakeGate;
use super::{Dispatch, DispatchFuture};

/// How long a connection closed for idling, or told to shut down, gets to end by itself
/// before it is dropped (an HTTP/1 connection waiting for a head does not end by itself).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of one listener is served with.
pub(crate) struct ConnectionLimits {
    timeouts: Timeouts,
    /// `usize::MAX` for no cap.
    max_connections: usize,
    builder: auto::Builder<TokioExecutor>,
}

impl ConnectionLimits {
    /// The settings of `server.limits`, with at most `max_connections` open at once.
    pub(crate) fn new(cfg: &LimitsSection, max_connections: usize) -> Self {
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        let header_size = usize::try_from(cfg.header_size).unwrap_or(usize::MAX);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // The watchdog times heads and idling (see `connection`); hyper's timer would
            // time both as one.
            .header_read_timeout(None)
            .max_buf_size(header_size.max(MIN_HEADER_SIZE as usize));
        let h2 = &cfg.http2;
        builder
            .http2()
            .timer(TokioTimer::new())
            // For WebSockets over HTTP/2 (RFC 8441), as axum::serve does.
            .enable_connect_protocol()
            .max_concurrent_streams(h2.max_concurrent_streams)
            .max_header_list_size(u32::try_from(cfg.header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(on(h2.keep_alive_interval))
            .keep_alive_timeout(h2.keep_alive_timeout);
        Self {
            timeouts: Timeouts {
                header: on(cfg.header_read_timeout),
                idle: on(cfg.idle_timeout),
            },
            max_connections,
            builder,
        }
    }
}

/// The smallest `server.limits.header_size`: hyper's HTTP/1 read buffer cannot be smaller.
pub(crate) const MIN_HEADER_SIZE: u64 = 8 * 1024;

/// The default `server.limits.max_connections`: what `RLIMIT_NOFILE` allows, less a quarter
/// (at least 64) for outgoing connections, files and the management listener, and at least
/// 16; with the soft limit it was derived from. Without a limit to read, 16384.
pub(crate) fn default_max_connections() -> (usize, Option<u64>) {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(soft) = limit {
            let headroom = (soft / 4).max(64);
            let n = soft.saturating_sub(headroom).max(16);
            return (usize::try_from(n).unwrap_or(usize::MAX), Some(soft));
        }
    }
    (16_384, None)
}

/// The management listener's cap: it serves probes and scrapes, never many clients at
/// once, and must not take the main listener's descriptors.
pub(crate) fn management_max_connections(main: usize) -> usize {
    main.min(64)
}

/// `http_server_open_connections` and `ms_chassis_connections_closed_total` of one listener.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionMetrics {
    pub(crate) open: IntGauge,
    /// By [`CloseReason::ALL`] order, which is the enum's.
    pub(crate) closed: [IntCounter; 3],
}

impl ConnectionMetrics {
    fn closed(&self, reason: CloseReason) {
        self.closed[reason as usize].inc();
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets every connection finish
/// its requests and returns once they all have closed. Dropping the future drops every
/// connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Dispatch,
    limits: Arc<ConnectionLimits>,
    metrics: Option<ConnectionMetrics>,
    stop: CancellationToken,
) -> io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let mut connections = JoinSet::new();
    let mut refused = Refusals::default();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if open.load(Ordering::Relaxed) >= limits.max_connections {
                    drop(stream);
                    if let Some(m) = &metrics {
                        m.closed(CloseReason::Limit);
                    }
                    refused.count(limits.max_connections);
                    continue;
                }
                let guard = Open::new(&open, metrics.as_ref());
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    app.clone(),
                    limits.clone(),
                    metrics.clone(),
                    stop.clone(),
                    guard,
                ));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                let now = Instant::now();
                if last_accept_error.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                    tracing::error!(error = %e, "accept failed; pausing accepts for 1s");
                    last_accept_error = Some(now);
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors of one incoming connection, not of the listener (as hyper and axum tell them).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Logs connections refused at the cap, at most every ten seconds.
#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, max: usize) {
        self.since_log += 1;
        let now = Instant::now();
        if self
            .logged
            .is_none_or(|t| now - t >= Duration::from_secs(10))
        {
            tracing::warn!(
                max_connections = max,
                refused = self.since_log,
                "connections refused at server.limits.max_connections"
            );
            self.since_log = 0;
            self.logged = Some(now);
        }
    }
}

/// One open connection, counted until it is dropped.
struct Open {
    count: Arc<AtomicUsize>,
    gauge: Option<IntGauge>,
}

impl Open {
    fn new(count: &Arc<AtomicUsize>, metrics: Option<&ConnectionMetrics>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        let gauge = metrics.map(|m| m.open.clone());
        if let Some(g) = &gauge {
            g.inc();
        }
        Self {
            count: count.clone(),
            gauge,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// The hyper side of a connection's [`Dispatch`]: counts each request into the
/// connection's [`Activity`] and holds a reference to it while the request is in flight.
struct ConnectionService {
    app: Dispatch,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = DispatchFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        self.app.dispatch(req.map(Body::new), self.activity.clone())
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut app: Dispatch,
    limits: Arc<ConnectionLimits>,
    metrics: Option<ConnectionMetrics>,
    stop: CancellationToken,
    _open: Open,
) {
    let activity = Arc::new(Activity::default());
    app.peer = Some(peer);
    let service = ConnectionService {
        app,
        activity: activity.clone(),
    };
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let mut conn = pin!(limits.builder.serve_connection_with_upgrades(io, service));
    let now = Instant::now();
    let mut watchdog = Watchdog::new(limits.timeouts, &activity, now);
    // Polled only while something is timed: with both timeouts off, never.
    let mut tick = pin!(tokio::time::sleep_until(
        watchdog.as_ref().map_or(now, |w| w.next_tick(now))
    ));
    let mut cancelled = pin!(stop.cancelled());
    // The token and the timer wake the task about once a tick; the socket, for every
    // request. They are polled only when they woke it.
    let side = WakeGate::new();
    // Once the connection is told to close: when to drop it if it has not ended.
    let mut drop_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let timed = watchdog.is_some() || drop_at.is_some();
        let event = poll_fn(|cx| {
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            side.poll(cx, |cx| {
                if !stopping && cancelled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Side::Stop));
                }
                if timed && tick.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Side::Tick));
                }
                Poll::Pending
            })
        })
        .await;
        match event {
            None => break,
            Some(Side::Stop) => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
                // A connection that has sent no request yet has nothing to finish.
                if activity.requests() == 0 {
                    break;
                }
            }
            Some(Side::Tick) => {
                let now = Instant::now();
                if drop_at.is_some_and(|t| now >= t) {
                    break;
                }
                // Waiting out `drop_at` only: the timer is already set to it.
                let Some(w) = watchdog.as_mut() else { continue };
                let Some(reason) = w.check(&activity, now) else {
                    tick.as_mut().reset(w.next_tick(now));
                    continue;
                };
                if let Some(m) = &metrics {
                    m.closed(reason);
                }
                watchdog = None;
                if reason == CloseReason::HeaderTimeout {
                    break;
                }
                // Idle: HTTP/1 closes at once; HTTP/2 sends GOAWAY and ends the streams
                // still open on their own time.
                conn.as_mut().graceful_shutdown();
                if !activity.is_h2() {
                    drop_at = Some(now + CLOSE_GRACE);
                    tick.as_mut().reset(now + CLOSE_GRACE);
                }
            }
        }
    }
}

/// What woke a connection's task besides its socket.
enum Side {
    /// The service is shutting down.
    Stop,
    /// The watchdog's timer fired.
    Tick,
}
