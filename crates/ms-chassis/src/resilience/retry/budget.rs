//! The retry budget, after Finagle's and Linkerd's: every request deposits `ratio` of a
//! token, every retry withdraws a whole one, and a reserve of `min_per_second * ttl`
//! tokens lets a quiet client retry at all. Deposits and withdrawals older than `ttl` are
//! forgotten (ten slots of `ttl / 10` each), so over any `ttl` retries stay below
//! `ratio * requests + min_per_second * ttl`. Under a storm (every call failing) the
//! dependency sees at most `1 + ratio` times the original traffic instead of
//! `max_attempts` times.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const SLOTS: usize = 10;

#[derive(Debug)]
pub(crate) struct Budget {
    ratio: f64,
    reserve: f64,
    slot: Duration,
    origin: Instant,
    ring: Mutex<[Slot; SLOTS]>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    index: u64,
    deposits: u64,
    withdrawals: u64,
}

impl Budget {
    pub(crate) fn new(ratio: f64, min_per_second: u32, ttl: Duration, now: Instant) -> Self {
        Budget {
            ratio,
            reserve: f64::from(min_per_second) * ttl.as_secs_f64(),
            slot: (ttl / SLOTS as u32).max(Duration::from_millis(1)),
            origin: now,
            ring: Mutex::new([Slot::default(); SLOTS]),
        }
    }

    /// Runs `f` on the current slot after summing the live ones.
    fn with<R>(&self, now: Instant, f: impl FnOnce(&mut Slot, u64, u64) -> R) -> R {
        let index =
            (now.saturating_duration_since(self.origin).as_nanos() / self.slot.as_nanos()) as u64;
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut deposits, mut withdrawals) = (0, 0);
        for s in ring.iter() {
            if s.index + (SLOTS as u64) > index && s.index <= index {
                deposits += s.deposits;
                withdrawals += s.withdrawals;
            }
        }
        let current = &mut ring[(index % SLOTS as u64) as usize];
        // This slot last held slot `index - SLOTS` or older, which the sum skipped. (A
        // caller whose `now` was read before a later caller's took the lock may find the
        // slot already newer; it then counts there.)
        if current.index < index {
            *current = Slot {
                index,
                ..Slot::default()
            };
        }
        f(current, deposits, withdrawals)
    }

    /// An original request.
    pub(crate) fn deposit(&self, now: Instant) {
        self.with(now, |slot, _, _| slot.deposits += 1);
    }

    /// Asks for one retry; true if the budget allows it (and it is then spent).
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        self.with(now, |slot, deposits, withdrawals| {
            let balance = self.ratio * deposits as f64 + self.reserve - withdrawals as f64;
            if balance >= 1.0 {
                slot.withdrawals += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_ratio_plus_reserve() {
        let t0 = Instant::now();
        // 10% of requests, plus 1 per second over 10 s: a reserve of 10.
        let b = Budget::new(0.1, 1, Duration::from_secs(10), t0);
        let mut granted = 0;
        for _ in 0..1000 {
            b.deposit(t0);
            granted += u32::from(b.try_withdraw(t0));
        }
        assert_eq!(granted, 110, "0.1 * 1000 + 10");
    }

    #[test]
    fn no_reserve_and_no_ratio_means_no_retries() {
        let t0 = Instant::now();
        let b = Budget::new(0.0, 0, Duration::from_secs(10), t0);
        b.deposit(t0);
        assert!(!b.try_withdraw(t0));
    }

    #[test]
    fn old_withdrawals_are_forgotten_after_ttl() {
        let t0 = Instant::now();
        let b = Budget::new(0.0, 1, Duration::from_secs(10), t0);
        let spend = |at| (0..100).filter(|_| b.try_withdraw(at)).count();
        assert_eq!(spend(t0), 10, "the reserve");
        assert_eq!(spend(t0 + Duration::from_secs(5)), 0, "still spent");
        assert_eq!(spend(t0 + Duration::from_secs(10)), 10, "a new window");
    }

    #[test]
    fn deposits_expire_too() {
        let t0 = Instant::now();
        let b = Budget::new(0.5, 0, Duration::from_secs(1), t0);
        for _ in 0..10 {
            b.deposit(t0);
        }
        assert!(b.try_withdraw(t0 + Duration::from_millis(900)));
        assert!(!b.try_withdraw(t0 + Duration::from_millis(1000)));
    }
}
