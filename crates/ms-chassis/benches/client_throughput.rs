//! Throughput of the chassis [`HttpClient`] against plain `reqwest` (issue 4: at least
//! 0.90× plain reqwest), both calling the same local axum server in one run.
//!
//! The machine is shared and noisy, so the two clients are measured in alternating rounds
//! (plain, chassis, then chassis, plain, ...) of a fixed duration, and the result is the
//! median of the per-round ratios: a ratio only compares numbers taken seconds apart.
//! Criterion is not used because it measures one case to the end before the next and
//! cannot alternate them.
//!
//! The server runs in this process, on its own thread and current-thread runtime; the
//! clients run on another current-thread runtime, on the main thread. So the client's work
//! never shares a thread with the server's, and the client thread's CPU time per request
//! (from `/proc/thread-self/schedstat`) is the client's whole cost: this is reported beside
//! the throughput, as throughput at concurrency 1 also contains the server and the
//! loopback round trip, which both clients pay alike.
//!
//! Concurrency is 1 and 24 calls in flight: the client's default bulkhead admits 25 and
//! refuses the 26th at once (`max_wait: 0`), which would measure refusals, not calls.
//!
//! ```sh
//! cargo bench -p ms-chassis --bench client_throughput                  # about 60 s
//! cargo bench -p ms-chassis --bench client_throughput -- --rounds 3 --secs 1 --concurrency 24
//! cargo bench -p ms-chassis --bench client_throughput -- --only chassis   # for perf
//! cargo bench -p ms-chassis --bench client_throughput -- --only chassis --requests 1000
//! cargo bench -p ms-chassis --bench client_throughput -- --without retry,breaker,bulkhead
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it only checks that both clients
//! work, with a few requests each.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use ms_chassis::client::{ClientConfig, HttpClient};
use tokio::runtime::Runtime;

/// The body the server answers, and both clients check.
const BODY: &str = "ok";

/// Which client a round measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Plain,
    Chassis,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::Plain => "reqwest",
            Which::Chassis => "chassis",
        }
    }
}

/// What the command line asks for.
struct Options {
    bench: bool,
    rounds: usize,
    secs: f64,
    concurrency: Vec<usize>,
    only: Option<Which>,
    requests: Option<u64>,
    without: Vec<String>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            bench: false,
            rounds: 7,
            secs: 2.0,
            concurrency: vec![1, 24],
            only: None,
            requests: None,
            without: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .unwrap_or_else(|| panic!("{name} expects a value"))
            };
            match arg.as_str() {
                "--bench" => o.bench = true,
                "--rounds" => o.rounds = value("--rounds").parse().expect("--rounds: a count"),
                "--secs" => o.secs = value("--secs").parse().expect("--secs: seconds"),
                "--concurrency" => {
                    o.concurrency = value("--concurrency")
                        .split(',')
                        .map(|c| c.trim().parse().expect("--concurrency: counts, as 1,24"))
                        .collect();
                }
                "--without" => {
                    o.without = value("--without")
                        .split(',')
                        .map(|l| l.trim().to_owned())
                        .collect();
                }
                "--requests" => {
                    o.requests = Some(value("--requests").parse().expect("--requests: a count"));
                }
                "--only" => {
                    o.only = Some(match value("--only").as_str() {
                        "reqwest" | "plain" => Which::Plain,
                        "chassis" => Which::Chassis,
                        other => panic!("--only: reqwest or chassis, found {other:?}"),
                    });
                }
                // Anything else cargo passes (a filter, `--nocapture`) is ignored.
                _ => {}
            }
        }
        o
    }
}

/// Starts the server on its own thread and runtime; returns its address.
fn start_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the server's runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                tx.send(listener.local_addr().expect("an address"))
                    .expect("the bench waits for the address");
                let app = Router::new().route("/x", get(|| async { BODY }));
                axum::serve(listener, app).await.expect("the server runs");
            });
        })
        .expect("the server thread");
    rx.recv().expect("the server's address")
}

/// Time this thread has spent on a CPU, when the kernel says.
fn thread_cpu() -> Option<Duration> {
    let raw = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = raw.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// One measurement: requests completed, wall time, and the client thread's CPU time.
struct Sample {
    requests: u64,
    wall: Duration,
    cpu: Option<Duration>,
}

impl Sample {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn cpu_us_per_request(&self) -> Option<f64> {
        self.cpu
            .map(|c| c.as_secs_f64() * 1e6 / self.requests.max(1) as f64)
    }
}

/// `tasks` tasks each calling `once` in a loop until `secs` have passed (or, with
/// `limit`, until each has made that many calls).
fn drive<F, Fut>(rt: &Runtime, tasks: usize, secs: f64, limit: Option<u64>, once: F) -> Sample
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let once = once.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while limit.map_or_else(|| Instant::now() < deadline, |l| n < l) {
                        once().await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut requests = 0;
        for h in handles {
            requests += h.await.expect("a request task");
        }
        let wall = start.elapsed();
        let cpu = cpu0.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
        Sample {
            requests,
            wall,
            cpu,
        }
    })
}

/// The two clients under test, built with the same connection settings.
struct Clients {
    plain: reqwest::Client,
    plain_url: Arc<str>,
    chassis: HttpClient,
}

impl Clients {
    fn new(addr: SocketAddr, without: &[String]) -> Clients {
        let mut config = ClientConfig::default();
        config.url = Some(format!("http://{addr}"));
        for layer in without {
            match layer.as_str() {
                "retry" => config.retry.enabled = false,
                "breaker" => config.breaker.enabled = false,
                "bulkhead" => config.bulkhead.enabled = false,
                other => panic!("--without: retry, breaker or bulkhead, found {other:?}"),
            }
        }
        // The chassis client's reqwest settings, on plain reqwest.
        let plain = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool.max_idle_per_host)
            .pool_idle_timeout(config.pool.idle_timeout)
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client");
        let chassis = HttpClient::new("bench", config).expect("a valid client config");
        Clients {
            plain,
            plain_url: format!("http://{addr}/x").into(),
            chassis,
        }
    }

    fn run(
        &self,
        rt: &Runtime,
        which: Which,
        tasks: usize,
        secs: f64,
        limit: Option<u64>,
    ) -> Sample {
        match which {
            Which::Plain => {
                let (client, url) = (self.plain.clone(), Arc::clone(&self.plain_url));
                drive(rt, tasks, secs, limit, move || {
                    let (client, url) = (client.clone(), Arc::clone(&url));
                    async move {
                        let res = client.get(&*url).send().await.expect("reqwest: a response");
                        let body = res.bytes().await.expect("reqwest: the body");
                        assert_eq!(body, BODY);
                    }
                })
            }
            Which::Chassis => {
                let client = self.chassis.clone();
                drive(rt, tasks, secs, limit, move || {
                    let client = client.clone();
                    async move {
                        let res = client.get("/x").send().await.expect("chassis: a response");
                        let body = res.bytes().await.expect("chassis: the body");
                        assert_eq!(body, BODY);
                    }
                })
            }
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn fmt_cpu(us: Option<f64>) -> String {
    us.map_or_else(|| "n/a".into(), |u| format!("{u:.2}"))
}

fn main() {
    let o = Options::parse();
    let addr = start_server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the clients' runtime");
    let clients = Clients::new(addr, &o.without);

    if !o.bench {
        // Test mode: both clients work, sequentially and concurrently.
        for which in [Which::Plain, Which::Chassis] {
            for tasks in [1, 4] {
                let s = clients.run(&rt, which, tasks, 0.0, Some(25));
                assert_eq!(s.requests, 25 * tasks as u64, "{}", which.label());
            }
        }
        println!("client_throughput: both clients answered (run with `cargo bench` to measure)");
        return;
    }

    if let Some(which) = o.only {
        // One client only, for a profiler: for `rounds * secs` seconds, or `requests` per
        // task (a fixed amount of work, for an instruction count under callgrind).
        for &tasks in &o.concurrency {
            let secs = o.secs * o.rounds as f64;
            let s = clients.run(&rt, which, tasks, secs, o.requests);
            println!(
                "{} c={tasks}: {} requests, {:.0} req/s, {} µs client CPU per request",
                which.label(),
                s.requests,
                s.per_second(),
                fmt_cpu(s.cpu_us_per_request())
            );
        }
        return;
    }

    println!(
        "client_throughput: GET http://{addr}/x ({BODY:?}), {} rounds of {} s per client and \
         concurrency, alternating; chassis client without: {:?}",
        o.rounds, o.secs, o.without
    );
    for &tasks in &o.concurrency {
        // Warm up both: connections in the pool, allocator and caches.
        for which in [Which::Plain, Which::Chassis] {
            clients.run(&rt, which, tasks, 0.5, None);
        }
        println!("\nconcurrency {tasks}");
        println!(
            "{:>5} {:>12} {:>12} {:>7} {:>13} {:>13}",
            "round", "reqwest/s", "chassis/s", "ratio", "reqwest µs", "chassis µs"
        );
        let (mut plain_rps, mut chassis_rps, mut ratios) = (vec![], vec![], vec![]);
        let (mut plain_cpu, mut chassis_cpu, mut cpu_ratios) = (vec![], vec![], vec![]);
        for round in 0..o.rounds {
            let order = if round % 2 == 0 {
                [Which::Plain, Which::Chassis]
            } else {
                [Which::Chassis, Which::Plain]
            };
            let mut plain = None;
            let mut chassis = None;
            for which in order {
                let s = clients.run(&rt, which, tasks, o.secs, None);
                match which {
                    Which::Plain => plain = Some(s),
                    Which::Chassis => chassis = Some(s),
                }
            }
            let (p, c) = (plain.expect("measured"), chassis.expect("measured"));
            let ratio = c.per_second() / p.per_second();
            println!(
                "{:>5} {:>12.0} {:>12.0} {:>7.3} {:>13} {:>13}",
                round + 1,
                p.per_second(),
                c.per_second(),
                ratio,
                fmt_cpu(p.cpu_us_per_request()),
                fmt_cpu(c.cpu_us_per_request()),
            );
            plain_rps.push(p.per_second());
            chassis_rps.push(c.per_second());
            ratios.push(ratio);
            if let (Some(pc), Some(cc)) = (p.cpu_us_per_request(), c.cpu_us_per_request()) {
                plain_cpu.push(pc);
                chassis_cpu.push(cc);
                cpu_ratios.push(cc / pc);
            }
        }
        println!(
            "median {:>11.0} {:>12.0} {:>7.3} {:>13} {:>13}",
            median(plain_rps),
            median(chassis_rps),
            median(ratios.clone()),
            fmt_cpu((!plain_cpu.is_empty()).then(|| median(plain_cpu.clone()))),
            fmt_cpu((!chassis_cpu.is_empty()).then(|| median(chassis_cpu.clone()))),
        );
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        print!(
            "concurrency {tasks}: chassis/reqwest throughput, median {:.3} (rounds {lo:.3}–{hi:.3})",
            median(ratios)
        );
        if !cpu_ratios.is_empty() {
            let overhead = median(chassis_cpu) - median(plain_cpu);
            print!(
                "; client CPU per request chassis/reqwest, median {:.3} ({overhead:+.2} µs)",
                median(cpu_ratios)
            );
        }
        println!();
    }
}
