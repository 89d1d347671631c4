//! Where log lines go: to stdout from a thread of their own, through a bounded queue, so
//! that a request never waits on a slow stdout (a full pipe, a terminal, a container
//! runtime's log driver that stalls). When the queue is full, a line is dropped and counted
//! in `ms_chassis_log_lines_dropped_total` rather than blocking the request that logged it.
//! [`flush`] waits, within a bound, until every line queued before it is written: the
//! graceful shutdown calls it last, and so does the exit on a second signal.
//!
//! Hand-written rather than tracing-appender's `non_blocking`, because that writes out its
//! queue only when its guard is dropped, and the guard of a process-wide subscriber never
//! is: the last lines before an exit ("shutdown complete") would be lost.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting for stdout at most; about 8 MiB of typical lines.
const CAPACITY: usize = 16 * 1024;

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(SyncSender<()>),
}

struct Queue {
    /// `None` when the writer thread could not start: lines are then written in place.
    tx: Option<SyncSender<Message>>,
    dropped: IntCounter,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

fn queue() -> &'static Queue {
    QUEUE.get_or_init(|| {
        let dropped = IntCounter::new(
            "ms_chassis_log_lines_dropped_total",
            "Log lines dropped because stdout could not keep up (the log queue was full).",
        )
        .expect("a valid metric name");
        // The default registry, which /metrics also serves: the writer is process-wide.
        let _ = prometheus::default_registry().register(Box::new(dropped.clone()));
        let (tx, rx) = mpsc::sync_channel(CAPACITY);
        let spawned = std::thread::Builder::new()
            .name("ms-chassis-log-writer".into())
            .spawn(move || write_out(&rx));
        Queue {
            tx: spawned.is_ok().then_some(tx),
            dropped,
        }
    })
}

/// How long the writer naps after writing what was queued, before it looks again. Under
/// load, lines come faster than this: each nap gathers them into one `write`, and a
/// logging thread never has to wake the writer (a futex call per line otherwise). A line
/// reaches stdout at most this much later.
const NAP: Duration = Duration::from_millis(1);

/// The writer thread: blocks until a line comes, then writes the queue out a batch per
/// `write`, napping between batches while lines keep coming.
fn write_out(rx: &Receiver<Message>) {
    let stdout = io::stdout();
    while let Ok(first) = rx.recv() {
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let mut next = Some(first);
        loop {
            while let Some(message) = next {
                match message {
                    Message::Line(line) => {
                        let _ = out.write_all(&line);
                    }
                    Message::Flush(done) => {
                        let _ = out.flush();
                        let _ = done.send(());
                    }
                }
                next = rx.try_recv().ok();
            }
            let _ = out.flush();
            std::thread::sleep(NAP);
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
    }
}

/// Makes the writer of one log line (tracing-subscriber asks for one per event).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueuedStdout;

impl<'a> MakeWriter<'a> for QueuedStdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One log line, queued when dropped.
pub(crate) struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        let q = queue();
        match &q.tx {
            Some(tx) => match tx.try_send(Message::Line(line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => q.dropped.inc(),
                // The writer thread is gone: write in place rather than lose the line.
                Err(TrySendError::Disconnected(Message::Line(line))) => {
                    let _ = io::stdout().lock().write_all(&line);
                }
                Err(TrySendError::Disconnected(_)) => {}
            },
            None => {
                let _ = io::stdout().lock().write_all(&line);
            }
        }
    }
}

/// Waits until every line queued so far is on stdout, or `within` has passed; true when
/// they all are. Blocks the calling thread.
pub(crate) fn flush(within: Duration) -> bool {
    let Some(tx) = &queue().tx else {
        return io::stdout().lock().flush().is_ok();
    };
    let deadline = Instant::now() + within;
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let mut message = Message::Flush(done_tx);
    loop {
        match tx.try_send(message) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                message = m;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
    done_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_in_order_and_a_flush_waits_for_them() {
        for i in 0..100 {
            let mut line = QueuedStdout.make_writer();
            writeln!(line, "log writer test line {i}").unwrap();
        }
        assert!(flush(Duration::from_secs(10)), "every queued line written");
        assert_eq!(queue().dropped.get(), 0, "100 lines fit the queue");
    }
}
