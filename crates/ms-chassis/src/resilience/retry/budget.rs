//! The retry budget, after Finagle's and Linkerd's: every request deposits `ratio` of a
//! token, every retry withdraws a whole one, and a reserve of `min_per_second * ttl`
//! tokens lets a quiet client retry at all. Deposits and withdrawals older than `ttl` are
//! forgotten (ten slots of `ttl / 10` each), so over any `ttl` retries stay below
//! `ratio * requests + min_per_second * ttl`. Under a storm (every call failing) the
//! dependency sees at most `1 + ratio` times the original traffic instead of
//! `max_attempts` times.
//!
//! Deposits are lock-free, since every call makes one: each slot is one `AtomicU64` per
//! counter, holding the slot's index (high 32 bits) and its count (low 32 bits), and a
//! deposit is one relaxed `fetch_add` when the slot is current (a compare-and-swap resets
//! a stale one). Withdrawals, one per retry, are serialised by a mutex, so two retries
//! cannot both spend the last token. Counting is approximate only at a slot boundary: a
//! deposit whose clock was read just before another caller moved the slot on counts in
//! the newer slot, and so lives up to one slot (`ttl / 10`) longer. Slot indices wrap
//! after 2^32 slots (at least 49 days); a slot untouched for exactly a multiple of that
//! would be counted again, which is harmless for a budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const SLOTS: usize = 10;

/// Above this count a slot's counter is only incremented by compare-and-swap, which
/// saturates, so a count never carries into the index bits.
const FAST_MAX: u64 = 1 << 31;

/// A slot at most this many slots ahead of a caller's index was moved on by a caller
/// whose clock was read later; further ahead (modulo 2^32) it is stale.
const LATE: u32 = 1 << 16;

#[derive(Debug)]
pub(crate) struct Budget {
    ratio: f64,
    reserve: f64,
    /// Nanoseconds per slot.
    slot: u64,
    origin: Instant,
    deposits: [AtomicU64; SLOTS],
    withdrawals: [AtomicU64; SLOTS],
    /// Serialises withdrawals: each sees the others' spending.
    withdrawing: Mutex<()>,
}

fn pack(index: u32, count: u64) -> u64 {
    (u64::from(index) << 32) | count
}

fn index_of(packed: u64) -> u32 {
    (packed >> 32) as u32
}

fn count_of(packed: u64) -> u64 {
    packed & u64::from(u32::MAX)
}

/// Counts one in `ring`'s slot for `index`, resetting the slot if it holds an older one.
fn add(ring: &[AtomicU64; SLOTS], index: u32) {
    let slot = &ring[index as usize % SLOTS];
    let seen = slot.load(Ordering::Relaxed);
    if index_of(seen) == index && count_of(seen) < FAST_MAX {
        slot.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // A stale slot (or a huge count): swap in the new value. A slot slightly ahead of
    // `index` (this caller's clock was read before another's moved it on) counts there.
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        let ahead = index_of(v).wrapping_sub(index);
        Some(if ahead < LATE {
            pack(index_of(v), (count_of(v) + 1).min(u64::from(u32::MAX)))
        } else {
            pack(index, 1)
        })
    });
}

/// The sum of `ring`'s slots live at `index`: the last `SLOTS` ones.
fn live(ring: &[AtomicU64; SLOTS], index: u32) -> u64 {
    ring.iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|&v| (index.wrapping_sub(index_of(v)) as usize) < SLOTS)
        .map(count_of)
        .sum()
}

impl Budget {
    pub(crate) fn new(ratio: f64, min_per_second: u32, ttl: Duration, now: Instant) -> Self {
        let slot = (ttl / SLOTS as u32).max(Duration::from_millis(1));
        Budget {
            ratio,
            reserve: f64::from(min_per_second) * ttl.as_secs_f64(),
            slot: u64::try_from(slot.as_nanos()).unwrap_or(u64::MAX),
            origin: now,
            deposits: Default::default(),
            withdrawals: Default::default(),
            withdrawing: Mutex::new(()),
        }
    }

    /// The slot index of `now`, modulo 2^32.
    fn index(&self, now: Instant) -> u32 {
        let since = now.saturating_duration_since(self.origin);
        // A u64 of nanoseconds lasts 584 years; the division is 64-bit, not 128.
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        (nanos / self.slot) as u32
    }

    /// An original request.
    pub(crate) fn deposit(&self, now: Instant) {
        add(&self.deposits, self.index(now));
    }

    /// Asks for one retry; true if the budget allows it (and it is then spent).
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        let _one_at_a_time = self
            .withdrawing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let index = self.index(now);
        let deposits = live(&self.deposits, index);
        let withdrawals = live(&self.withdrawals, index);
        let balance = self.ratio * deposits as f64 + self.reserve - withdrawals as f64;
        if balance >= 1.0 {
            add(&self.withdrawals, index);
            true
        } else {
            false
        }
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

    #[test]
    fn concurrent_deposits_and_withdrawals_stay_within_the_bound() {
        let t0 = Instant::now();
        let b = Budget::new(0.2, 1, Duration::from_secs(10), t0);
        let (threads, calls) = (4, 20_000);
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        (0..calls)
                            .filter(|i| {
                                b.deposit(t0);
                                i % 2 == 0 && b.try_withdraw(t0)
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        // Every deposit counted, and withdrawals exactly up to the balance: 0.2 of the
        // requests (16 000) plus a reserve of 10.
        assert_eq!(live(&b.deposits, 0), (threads * calls) as u64);
        assert!(granted <= 16_010, "{granted}");
        assert!(granted >= 15_990, "no lost deposits either: {granted}");
    }

    #[test]
    fn slots_move_on_and_wrap() {
        let t0 = Instant::now();
        let b = Budget::new(1.0, 0, Duration::from_millis(10), t0);
        let ms = Duration::from_millis(1);
        b.deposit(t0);
        b.deposit(t0 + ms);
        // A late caller, whose clock was read before the slot moved on, counts there.
        b.deposit(t0 + 11 * ms);
        b.deposit(t0 + ms);
        assert_eq!(
            live(&b.deposits, 11),
            2,
            "slot 11 holds two, slot 0 is gone"
        );
        assert_eq!(live(&b.deposits, 20), 2);
        assert_eq!(live(&b.deposits, 21), 0);
        // Index arithmetic wraps at 2^32 slots.
        for i in 0..SLOTS as u32 {
            add(&b.deposits, (1 << 31) + i);
        }
        add(&b.deposits, u32::MAX);
        add(&b.deposits, 0);
        add(&b.deposits, 0);
        assert_eq!(live(&b.deposits, 0), 3);
        assert_eq!(live(&b.deposits, 9), 2);
    }
}
