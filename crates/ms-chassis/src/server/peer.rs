//! The connection's peer address, handed to the chassis stack without a request extension.
//!
//! axum's `ConnectInfo` would be the usual way, but a fourth extension makes the request's
//! extension map allocate a box for it and grow past its first table: about 850
//! instructions per request, a twentieth of bare axum's whole request path, for a value
//! that only sampled spans and the access log read. The stack's `call` runs inside the
//! first poll of the dispatch future (axum calls a route from its `Oneshot`), so the
//! dispatcher sets the peer in a thread-local around that poll, and the stack copies it into
//! the request context, where handlers find it with `RequestContext::peer_addr`.

use std::cell::Cell;
use std::net::SocketAddr;

thread_local! {
    static PEER: Cell<Option<SocketAddr>> = const { Cell::new(None) };
}

/// Runs `f` with `peer` as the current peer, and puts back whatever was there before.
pub(crate) fn with_peer<R>(peer: SocketAddr, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<SocketAddr>);
    impl Drop for Restore {
        fn drop(&mut self) {
            PEER.set(self.0);
        }
    }
    let _restore = Restore(PEER.replace(Some(peer)));
    f()
}

/// The peer of the request being dispatched on this thread, if any.
pub(crate) fn current() -> Option<SocketAddr> {
    PEER.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_set_only_inside_and_restored_after_a_panic() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(current(), None);
        with_peer(a, || {
            assert_eq!(current(), Some(a));
            with_peer(b, || assert_eq!(current(), Some(b)));
            assert_eq!(current(), Some(a));
        });
        assert_eq!(current(), None);
        let caught = std::panic::catch_unwind(|| with_peer(a, || panic!("handler")));
        assert!(caught.is_err());
        assert_eq!(current(), None);
    }
}
