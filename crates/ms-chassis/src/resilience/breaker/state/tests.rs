use proptest::prelude::*;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn cfg() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        minimum_calls: 4,
        sliding_window_size: 4,
        wait_in_open: Duration::from_secs(10),
        permitted_calls_in_half_open: 2,
        slow_call_duration: Duration::from_millis(100),
        ..Default::default()
    }
}

fn call(m: &mut Machine, now: Instant, outcome: Outcome, elapsed: Duration) -> bool {
    match m.try_acquire(now) {
        Some(p) => {
            m.record(p, outcome, elapsed, now);
            true
        }
        None => false,
    }
}

#[test]
fn opens_at_the_failure_rate_once_minimum_calls_are_in() {
    let t0 = Instant::now();
    let mut m = Machine::new(cfg(), t0);
    assert!(call(&mut m, t0, Outcome::Failure, MS));
    assert!(call(&mut m, t0, Outcome::Failure, MS));
    assert!(call(&mut m, t0, Outcome::Success, MS));
    assert_eq!(m.state(t0), CircuitState::Closed, "3 calls < minimum 4");
    assert_eq!(m.metrics(t0).failure_rate, None);
    assert!(call(&mut m, t0, Outcome::Success, MS));
    assert_eq!(m.state(t0), CircuitState::Open, "2 of 4 failed = 50%");
    assert_eq!(m.metrics(t0).failure_rate, Some(50.0));
    assert!(!call(&mut m, t0, Outcome::Success, MS));
    assert_eq!(m.metrics(t0).not_permitted_calls, 1);
}

#[test]
fn half_open_admits_exactly_the_probes_then_closes_or_reopens() {
    let t0 = Instant::now();
    let mut m = Machine::new(cfg(), t0);
    for _ in 0..4 {
        call(&mut m, t0, Outcome::Failure, MS);
    }
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(m.state(t1 - MS), CircuitState::Open);
    assert_eq!(m.state(t1), CircuitState::HalfOpen);
    let a = m.try_acquire(t1).unwrap();
    let b = m.try_acquire(t1).unwrap();
    assert!(m.try_acquire(t1).is_none(), "only 2 probes");
    // A cancelled probe frees its place.
    m.release(b, t1);
    let b = m.try_acquire(t1).unwrap();
    m.record(a, Outcome::Failure, MS, t1);
    m.record(b, Outcome::Failure, MS, t1);
    assert_eq!(m.state(t1), CircuitState::Open);

    let t2 = t1 + Duration::from_secs(10);
    let a = m.try_acquire(t2).unwrap();
    let b = m.try_acquire(t2).unwrap();
    m.record(a, Outcome::Success, MS, t2);
    assert_eq!(m.state(t2), CircuitState::HalfOpen);
    m.record(b, Outcome::Success, MS, t2);
    assert_eq!(m.state(t2), CircuitState::Closed);
    assert_eq!(m.metrics(t2).buffered_calls, 0, "a fresh window");
}

#[test]
fn slow_calls_trip_the_breaker() {
    let t0 = Instant::now();
    let mut m = Machine::new(cfg(), t0);
    for _ in 0..3 {
        call(&mut m, t0, Outcome::Success, Duration::from_millis(150));
    }
    assert_eq!(m.state(t0), CircuitState::Closed);
    call(&mut m, t0, Outcome::Success, Duration::from_millis(150));
    assert_eq!(m.state(t0), CircuitState::Open);
    let metrics = m.metrics(t0);
    assert_eq!(metrics.slow_call_rate, Some(100.0));
    assert_eq!(metrics.failure_rate, Some(0.0));
}

#[test]
fn consecutive_failures_trip_before_minimum_calls() {
    let t0 = Instant::now();
    let mut m = Machine::new(
        CircuitBreakerConfig {
            minimum_calls: 100,
            sliding_window_size: 100,
            consecutive_failure_threshold: Some(3),
            ..cfg()
        },
        t0,
    );
    call(&mut m, t0, Outcome::Failure, MS);
    call(&mut m, t0, Outcome::Failure, MS);
    call(&mut m, t0, Outcome::Success, MS);
    call(&mut m, t0, Outcome::Failure, MS);
    call(&mut m, t0, Outcome::Failure, MS);
    assert_eq!(m.state(t0), CircuitState::Closed, "a success broke the run");
    call(&mut m, t0, Outcome::Failure, MS);
    assert_eq!(m.state(t0), CircuitState::Open);
}

#[test]
fn time_window_forgets_old_seconds() {
    let t0 = Instant::now();
    let c = CircuitBreakerConfig {
        sliding_window_type: SlidingWindowType::TimeBased,
        sliding_window_size: 2,
        minimum_calls: 3,
        ..cfg()
    };
    let mut m = Machine::new(c, t0);
    call(&mut m, t0, Outcome::Failure, MS);
    call(
        &mut m,
        t0 + Duration::from_millis(500),
        Outcome::Failure,
        MS,
    );
    // Second 2: second 0's calls have left the 2-second window.
    let t2 = t0 + Duration::from_secs(2);
    assert_eq!(m.metrics(t2).buffered_calls, 0);
    call(&mut m, t2, Outcome::Failure, MS);
    assert_eq!(m.state(t2), CircuitState::Closed);
    call(&mut m, t2 + Duration::from_secs(1), Outcome::Failure, MS);
    assert_eq!(m.metrics(t2 + Duration::from_secs(1)).buffered_calls, 2);
    call(&mut m, t2 + Duration::from_secs(1), Outcome::Success, MS);
    assert_eq!(m.state(t2 + Duration::from_secs(1)), CircuitState::Open);
}

#[test]
fn forced_states_override_the_machine() {
    let t0 = Instant::now();
    let mut m = Machine::new(cfg(), t0);
    m.force_open();
    assert!(!call(
        &mut m,
        t0 + Duration::from_secs(3600),
        Outcome::Success,
        MS
    ));
    assert_eq!(
        m.state(t0 + Duration::from_secs(3600)),
        CircuitState::ForcedOpen
    );
    m.disable();
    for _ in 0..100 {
        assert!(call(&mut m, t0, Outcome::Failure, MS));
    }
    assert_eq!(m.state(t0), CircuitState::Disabled);
    m.force_closed(t0);
    assert_eq!(m.state(t0), CircuitState::Closed);
    assert_eq!(m.metrics(t0).not_permitted_calls, 1);
    m.reset(t0);
    assert_eq!(m.metrics(t0).not_permitted_calls, 0);
}

#[test]
fn stale_results_do_not_count() {
    let t0 = Instant::now();
    let mut m = Machine::new(cfg(), t0);
    let old = m.try_acquire(t0).unwrap();
    for _ in 0..4 {
        call(&mut m, t0, Outcome::Failure, MS);
    }
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(m.state(t1), CircuitState::HalfOpen);
    // The CLOSED-era call finishing now must not count as a probe.
    m.record(old, Outcome::Success, MS, t1);
    assert_eq!(m.metrics(t1).buffered_calls, 0);
    assert_eq!(m.state(t1), CircuitState::HalfOpen);
}

// ---- property tests against a reference model ----

/// The model: the same rules, written the obvious way. The window is the whole
/// history of the current CLOSED period, filtered on every question.
#[derive(Debug)]
struct Model {
    cfg: CircuitBreakerConfig,
    state: CircuitState,
    generation: u64,
    closed_since: Instant,
    history: Vec<(Instant, bool, bool)>,
    run: u32,
    open_until: Instant,
    openings: u32,
    probes_left: u32,
    probes: Vec<(bool, bool)>,
    rejected: u64,
}

impl Model {
    fn new(cfg: CircuitBreakerConfig, now: Instant) -> Self {
        Model {
            cfg,
            state: CircuitState::Closed,
            generation: 0,
            closed_since: now,
            history: vec![],
            run: 0,
            open_until: now,
            openings: 0,
            probes_left: 0,
            probes: vec![],
            rejected: 0,
        }
    }

    fn window(&self, now: Instant) -> Vec<(bool, bool)> {
        let all = self.history.iter().map(|&(t, f, s)| (t, f, s));
        match self.cfg.sliding_window_type {
            SlidingWindowType::CountBased => {
                let v: Vec<_> = all.map(|(_, f, s)| (f, s)).collect();
                let n = self.cfg.sliding_window_size as usize;
                v[v.len().saturating_sub(n)..].to_vec()
            }
            SlidingWindowType::TimeBased => {
                let sec = |t: Instant| t.duration_since(self.closed_since).as_secs() as i64;
                let size = i64::from(self.cfg.sliding_window_size);
                all.filter(|&(t, _, _)| sec(t) > sec(now) - size)
                    .map(|(_, f, s)| (f, s))
                    .collect()
            }
        }
    }

    fn minimum(&self) -> u32 {
        match self.cfg.sliding_window_type {
            SlidingWindowType::CountBased => {
                self.cfg.minimum_calls.min(self.cfg.sliding_window_size)
            }
            SlidingWindowType::TimeBased => self.cfg.minimum_calls,
        }
    }

    fn trips(&self, calls: &[(bool, bool)], minimum: u32) -> bool {
        let n = calls.len() as u32;
        if n == 0 || n < minimum {
            return false;
        }
        let failed = calls.iter().filter(|c| c.0).count() as f64;
        let slow = calls.iter().filter(|c| c.1).count() as f64;
        failed * 100.0 / f64::from(n) >= self.cfg.failure_rate_threshold
            || slow * 100.0 / f64::from(n) >= self.cfg.slow_call_rate_threshold
    }

    fn go(&mut self, state: CircuitState) {
        self.state = state;
        self.generation += 1;
    }

    fn tick(&mut self, now: Instant) {
        if self.state == CircuitState::Open && now >= self.open_until {
            self.go(CircuitState::HalfOpen);
            self.probes_left = self.cfg.permitted_calls_in_half_open;
            self.probes.clear();
        }
    }

    fn open(&mut self, now: Instant) {
        self.go(CircuitState::Open);
        self.openings += 1;
        let mut wait = self.cfg.wait_in_open.as_secs_f64();
        for _ in 1..self.openings {
            wait *= self.cfg.wait_in_open_multiplier;
        }
        let cap = self
            .cfg
            .max_wait_in_open
            .unwrap_or(Duration::from_secs(86400))
            .as_secs_f64();
        self.open_until = now + Duration::from_secs_f64(wait.min(cap));
        self.run = 0;
    }

    fn close(&mut self, now: Instant) {
        self.go(CircuitState::Closed);
        self.closed_since = now;
        self.history.clear();
        self.run = 0;
        self.openings = 0;
    }

    fn acquire(&mut self, now: Instant) -> Option<u64> {
        self.tick(now);
        let ok = match self.state {
            CircuitState::Closed | CircuitState::Disabled => true,
            CircuitState::HalfOpen if self.probes_left > 0 => {
                self.probes_left -= 1;
                true
            }
            _ => false,
        };
        if ok {
            Some(self.generation)
        } else {
            self.rejected += 1;
            None
        }
    }

    fn release(&mut self, generation: u64, now: Instant) {
        self.tick(now);
        if generation == self.generation && self.state == CircuitState::HalfOpen {
            self.probes_left += 1;
        }
    }

    fn record(&mut self, generation: u64, outcome: Outcome, elapsed: Duration, now: Instant) {
        if outcome == Outcome::Ignored {
            return self.release(generation, now);
        }
        self.tick(now);
        if generation != self.generation {
            return;
        }
        let failed = outcome == Outcome::Failure;
        let slow = elapsed > self.cfg.slow_call_duration;
        match self.state {
            CircuitState::Closed => {
                self.history.push((now, failed, slow));
                self.run = if failed { self.run + 1 } else { 0 };
                let by_run = self
                    .cfg
                    .consecutive_failure_threshold
                    .is_some_and(|n| self.run >= n);
                if by_run || self.trips(&self.window(now), self.minimum()) {
                    self.open(now);
                }
            }
            CircuitState::HalfOpen => {
                self.probes.push((failed, slow));
                let n = self.cfg.permitted_calls_in_half_open;
                if self.probes.len() as u32 >= n {
                    if self.trips(&self.probes.clone(), n) {
                        self.open(now);
                    } else {
                        self.close(now);
                    }
                }
            }
            _ => {}
        }
    }

    fn buffered(&self, now: Instant) -> (u32, u32, u32) {
        let calls = if self.state == CircuitState::HalfOpen {
            self.probes.clone()
        } else {
            self.window(now)
        };
        (
            calls.len() as u32,
            calls.iter().filter(|c| c.0).count() as u32,
            calls.iter().filter(|c| c.1).count() as u32,
        )
    }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Finish {
        pick: usize,
        outcome: u8,
        slow: bool,
    },
    Cancel {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
    ForceOpen,
    ForceClosed,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        8 => (any::<usize>(), 0u8..4, proptest::bool::weighted(0.2))
            .prop_map(|(pick, outcome, slow)| Op::Finish { pick, outcome, slow }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        3 => prop_oneof![0u64..50, 0u64..3_000, 0u64..40_000].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

fn config() -> impl Strategy<Value = CircuitBreakerConfig> {
    (
        prop_oneof![
            Just(SlidingWindowType::CountBased),
            Just(SlidingWindowType::TimeBased)
        ],
        1u32..8,
        1u32..10,
        prop_oneof![Just(1.0), Just(25.0), Just(50.0), Just(66.6), Just(100.0)],
        prop_oneof![Just(50.0), Just(100.0)],
        1u64..20,
        prop_oneof![Just(1.0), Just(2.0), Just(3.5)],
        proptest::option::of(20u64..60),
        1u32..4,
        proptest::option::of(1u32..5),
    )
        .prop_map(
            |(kind, size, minimum, fail, slow, wait, mult, max, probes, run)| {
                CircuitBreakerConfig {
                    sliding_window_type: kind,
                    sliding_window_size: size,
                    minimum_calls: minimum,
                    failure_rate_threshold: fail,
                    slow_call_rate_threshold: slow,
                    slow_call_duration: Duration::from_millis(100),
                    wait_in_open: Duration::from_secs(wait),
                    wait_in_open_multiplier: mult,
                    max_wait_in_open: max.map(|m| Duration::from_secs(m.max(wait))),
                    permitted_calls_in_half_open: probes,
                    consecutive_failure_threshold: run,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn machine_matches_the_model(cfg in config(), ops in proptest::collection::vec(op(), 1..200)) {
        cfg.validate().unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let mut machine = Machine::new(cfg.clone(), now);
        let mut model = Model::new(cfg.clone(), now);
        let mut held: Vec<(Permit, u64)> = vec![];
        for op in ops {
            match op {
                Op::Acquire => {
                    let got = machine.try_acquire(now);
                    let want = model.acquire(now);
                    prop_assert_eq!(got.is_some(), want.is_some(), "acquire at {:?}", now - t0);
                    if let (Some(p), Some(g)) = (got, want) {
                        held.push((p, g));
                    }
                }
                Op::Finish { pick, outcome, slow } if !held.is_empty() => {
                    let (p, g) = held.remove(pick % held.len());
                    let outcome = match outcome {
                        0 => Outcome::Success,
                        1 | 2 => Outcome::Failure,
                        _ => Outcome::Ignored,
                    };
                    let elapsed = if slow { Duration::from_millis(101) } else { Duration::from_millis(100) };
                    machine.record(p, outcome, elapsed, now);
                    model.record(g, outcome, elapsed, now);
                }
                Op::Cancel { pick } if !held.is_empty() => {
                    let (p, g) = held.remove(pick % held.len());
                    machine.release(p, now);
                    model.release(g, now);
                }
                Op::Finish { .. } | Op::Cancel { .. } => {}
                Op::Advance { ms } => now += Duration::from_millis(ms),
                Op::ForceOpen => { machine.force_open(); model.go(CircuitState::ForcedOpen); }
                Op::ForceClosed => { machine.force_closed(now); model.close(now); }
                Op::Disable => { machine.disable(); model.go(CircuitState::Disabled); }
                Op::Reset => { machine.reset(now); model.close(now); model.rejected = 0; }
            }
            model.tick(now);
            prop_assert_eq!(machine.state(now), model.state);
            let m = machine.metrics(now);
            let (calls, failed, slow) = model.buffered(now);
            prop_assert_eq!((m.buffered_calls, m.failed_calls, m.slow_calls), (calls, failed, slow));
            prop_assert_eq!(m.not_permitted_calls, model.rejected);
            if model.state == CircuitState::Open {
                prop_assert_eq!(machine.open_until(), model.open_until);
            }
            // Invariants that hold whatever the model says.
            if machine.state(now) == CircuitState::HalfOpen {
                let outstanding = held.iter().filter(|(p, _)| p.generation == machine.generation).count() as u32;
                prop_assert!(outstanding + m.buffered_calls <= cfg.permitted_calls_in_half_open);
            }
        }
    }
}
