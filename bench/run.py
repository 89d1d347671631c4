#!/usr/bin/env python3
"""Chassis vs bare axum and vs a hand-assembled stack: throughput, server CPU per request,
latency, memory and start-up time, measured where the server is the bottleneck.

Builds (release, the workspace's profile) `bare-axum` (hello's /hello handler on bare axum;
its package also holds `otlp-sink`, a counting OTLP/gRPC receiver), `hand-assembled` (the same
handler behind the stack a team builds by hand: tower-http, axum-prometheus,
tracing-opentelemetry) and `hello` (the chassis demo), then runs the scenarios:
  bare                 bare axum: the limit
  hand-assembled       the hand-assembled stack (bench/README.md maps it onto the chassis)
  chassis              hello on its default config (trace ids and propagation, nothing exported)
  otlp-default         hello exporting to the local sink with the default sampler (parent ratio 0.1)
  otlp-all             hello exporting every request to the local sink (sampling 1.0)
  otlp-down            hello exporting to a closed port (the collector is down), default sampler
  chassis-access-null  hello with the access log on (logging.access: true), stdout to /dev/null
  chassis-access-pipe  the same, stdout a pipe drained by `wc -l` (counts the lines written)
  hand-access-pipe     hand-assembled with its access log on (TraceLayer's response event at
                       INFO), stdout a pipe drained by `wc -l`

Server-bound by default: the server runs on one CPU and wrk (with the sink and the log reader)
on another (`taskset -c`), so the server's core is the bottleneck and its extra CPU per request
shows as lost throughput. `--unpinned` lets everything share every core, as before: then the
client is the bottleneck and the ratios mostly measure wrk, which the output says.

Rounds alternate the scenarios (odd rounds run them in reverse order, so none always follows
the same one), `--rounds` of `--duration` seconds each. Each run of a scenario starts the
server, waits for its first 200 on /hello, idles 0.5 s, then loads it with `wrk -t1
-c32`. It reports:
  - requests/s, and its ratio to bare in the same round: median of the rounds (min-max);
  - the server process's CPU per request (user + system from /proc/<pid>/stat over the wrk
    run, divided by the requests wrk completed), and its ratio to bare's in the same round;
  - the saturation check: the server's CPU over the run as a share of one core (near 100%
    when pinned means server-bound; under 90% is flagged), and wrk's (from its rusage);
  - p50 and p99, idle RSS and RSS after the load, the time from exec to the first 200;
  - the span exporter thread's CPU (included in the server's) and the sink's (not included);
  - for the access-log scenarios, the log cost per request over the scenario without the
    log in the same round, the log writer thread's CPU, `ms_chassis_log_lines_dropped_total`
    and the lines the pipe's reader counted.
Then chassis against hand-assembled, round by round; and, with --latency-rounds, the latency
each adds without queueing: wrk with one connection, bare, hand-assembled and chassis
alternating.

Before any measurement it checks that every scenario answers /hello with the same body as
bare, and that hand-assembled and chassis serve /metrics.

Usage: python3 bench/run.py [--rounds 9] [--duration 3] [--connections 32] [--only a,b]
                            [--latency-rounds 3] [--pin SERVER_CPUS:WRK_CPUS | --unpinned]
                            [--hello PATH] [--interleave] [--no-build] [--sink-nice N]
Needs: apt-get install -y wrk (taskset is in util-linux)
"""
import argparse, atexit, os, re, resource, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Thread names of span exporters: the SDK's batch processor, and the chassis's own; and of
# the chassis's log writer. comm keeps 15 characters.
EXPORTER_THREADS = ("OpenTelemetry.T", "ms-chassis-otlp")
LOG_WRITER_THREADS = ("ms-chassis-log-",)
TICK = os.sysconf("SC_CLK_TCK")
# CPU lists for taskset, or None (unpinned).
PIN = {"server": None, "wrk": None}
# The same, as sets of CPU numbers.
PIN_SETS = {"server": set(), "wrk": set()}
# A run whose server used less of its core than this (pinned) was not server-bound.
SATURATED = 0.90
# wrk at more than this share of its core may be near its own limit.
WRK_BUSY = 0.95
# Other processes using more than this share of a pinned CPU make the run not server-bound.
OTHERS = 0.05
DROPPED = "ms_chassis_log_lines_dropped_total"
# The servers' working directory: empty, so hello finds no config.yaml or key.key there and
# runs on its embedded defaults wherever the script is started from.
WORKDIR = tempfile.mkdtemp(prefix="ms-chassis-bench-")
atexit.register(shutil.rmtree, WORKDIR, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(path):
    """User + system time (s) of the process or thread whose stat file is `path`."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def threads_cpu_s(pid, prefixes):
    """User + system time (s) of the threads of `pid` whose name starts with a prefix."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            if name.startswith(prefixes):
                total += cpu_s(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return total


def cpu_list(spec):
    """The CPUs of a taskset list such as "0", "0,2" or "1-3"."""
    cpus = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpus_busy_s(cpus):
    """Time (s) the CPUs in `cpus` were busy, whoever ran (from /proc/stat), steal included:
    time a hypervisor gave to another machine is time the server could not have."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m and int(m.group(1)) in cpus:
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, m.group(2).split()[:8])
                total += user + nice + system + irq + softirq + steal
    return total / TICK


def children_cpu_s():
    """User + system time (s) of this script's children that have ended and been waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pinned(which, argv):
    """`argv` run on the CPUs of `which` ("server" or "wrk") with taskset, when pinned."""
    cpus = PIN[which]
    return ["taskset", "-c", cpus] + argv if cpus else argv


def get(url, timeout=1.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def start(binary, port, extra_env, stdout, path="/hello"):
    """Starts `binary` on `port`; returns the process, ms from exec to the first 200 on
    `path`, and that response's body."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MS_", "OTEL_", "BENCH_")) and k != "RUST_LOG"}
    env.update({"MS__SERVER__PORT": str(port), "BENCH_PORT": str(port),
                "MS__SERVER__SHUTDOWN__DRAIN_DELAY": "0s"})
    env.update(extra_env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(pinned("server", [binary]), env=env, stdout=stdout,
                            stderr=subprocess.DEVNULL, cwd=WORKDIR)
    url = f"http://127.0.0.1:{port}{path}"
    deadline = t0 + 30
    while True:
        try:
            status, body = get(url)
            if status == 200:
                return proc, (time.perf_counter() - t0) * 1000, body
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"{binary} exited with {proc.returncode} before answering")
        if time.perf_counter() > deadline:
            proc.kill()
            sys.exit(f"{binary} did not answer within 30 s")
        time.sleep(0.0005)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1000, "s": 1e6}[unit]


def wrk(port, duration, connections):
    before = children_cpu_s()
    out = subprocess.run(
        pinned("wrk", ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                       f"http://127.0.0.1:{port}/hello"]),
        capture_output=True, text=True, check=True).stdout
    wrk_cpu = children_cpu_s() - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_us(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_us(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx responses:\n{out}")
    return rps, p50, p99, requests, wrk_cpu


def scrape(port, name):
    """The value of metric `name` on the server's /metrics, or None."""
    try:
        _, body = get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except OSError:
        return None
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else None


class Scenario:
    def __init__(self, binary, env=None, stdout="null", baseline=None):
        self.binary, self.env = binary, env or {}
        # "null": stdout to /dev/null; "pipe": to a pipe that `wc -l` drains and counts.
        self.stdout = stdout
        # For an access-log scenario, the scenario without the log that it is compared with.
        self.baseline = baseline


def measure(sc, duration, connections, sink_pid=None):
    port = free_port()
    reader = None
    stdout = subprocess.DEVNULL
    if sc.stdout == "pipe":
        reader = subprocess.Popen(pinned("wrk", ["wc", "-l"]), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        stdout = reader.stdin
    proc, startup_ms, _ = start(sc.binary, port, sc.env, stdout)
    if reader:
        reader.stdin.close()  # the server holds the pipe's write end now
        reader.stdin = None
    try:
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        stat = f"/proc/{proc.pid}/stat"
        sink_stat = f"/proc/{sink_pid}/stat" if sink_pid else None
        reader_stat = f"/proc/{reader.pid}/stat" if reader else None
        cpu0 = cpu_s(stat)
        exp0 = threads_cpu_s(proc.pid, EXPORTER_THREADS)
        log0 = threads_cpu_s(proc.pid, LOG_WRITER_THREADS)
        sink0 = cpu_s(sink_stat) if sink_stat else 0.0
        rd0 = cpu_s(reader_stat) if reader_stat else 0.0
        busy0 = {k: cpus_busy_s(v) for k, v in PIN_SETS.items()}
        t0 = time.perf_counter()
        rps, p50, p99, requests, wrk_cpu = wrk(port, duration, connections)
        wall = time.perf_counter() - t0
        busy1 = {k: cpus_busy_s(v) for k, v in PIN_SETS.items()}
        cpu1 = cpu_s(stat)
        exp1 = threads_cpu_s(proc.pid, EXPORTER_THREADS)
        log1 = threads_cpu_s(proc.pid, LOG_WRITER_THREADS)
        sink1 = cpu_s(sink_stat) if sink_stat else 0.0
        rd1 = cpu_s(reader_stat) if reader_stat else 0.0
        loaded = rss_kib(proc.pid)
        dropped = scrape(port, DROPPED) if sc.env.get("MS__LOGGING__ACCESS") else None
    finally:
        stop(proc)
    lines = None
    if reader:
        lines = int(reader.communicate(timeout=30)[0].strip() or 0)
    per_req = 1e6 / max(requests, 1)
    return dict(rps=rps, p50=p50, p99=p99, startup_ms=startup_ms, idle_kib=idle,
                loaded_kib=loaded, requests=requests,
                cpu_us=(cpu1 - cpu0) * per_req, exporter_us=(exp1 - exp0) * per_req,
                log_writer_us=(log1 - log0) * per_req, sink_us=(sink1 - sink0) * per_req,
                reader_us=(rd1 - rd0) * per_req,
                server_use=(cpu1 - cpu0) / wall, wrk_use=wrk_cpu / wall,
                # What the rest of the machine took of the server's CPU and of wrk's (pinned).
                others_server=others(busy1["server"] - busy0["server"], cpu1 - cpu0, wall),
                others_wrk=others(busy1["wrk"] - busy0["wrk"],
                                  wrk_cpu + (sink1 - sink0) + (rd1 - rd0), wall),
                dropped=dropped, lines=lines)


def others(busy, ours, wall):
    """The share of a pinned CPU that processes other than ours used over `wall` seconds."""
    return max(busy - ours, 0.0) / wall if PIN["server"] else 0.0


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt="{:.2f}"):
    """'median (min–max)' of xs."""
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def pct(x):
    return f"{100 * x:.0f}%"


def check_bodies(scenarios):
    """Every scenario's /hello answers bare's body; hand-assembled and hello serve /metrics."""
    expected = None
    checked = {}
    for name, sc in scenarios.items():
        key = (sc.binary, tuple(sorted(sc.env.items())))
        if key in checked:
            continue
        port = free_port()
        proc, _, body = start(sc.binary, port, sc.env, subprocess.DEVNULL)
        try:
            metrics = None
            if name != "bare":
                try:
                    metrics = get(f"http://127.0.0.1:{port}/metrics", timeout=5)[0]
                except OSError as e:
                    metrics = e
        finally:
            stop(proc)
        if expected is None:
            expected = body
        if body != expected:
            sys.exit(f"{name} answers /hello with {body!r}, bare with {expected!r}: "
                     "the handlers do not do the same work")
        if name != "bare" and metrics != 200:
            sys.exit(f"{name} does not serve /metrics: {metrics}")
        checked[key] = name
    print(f"checked: every scenario answers /hello with {expected.decode()} (as bare does), "
          "and serves /metrics (bare has none)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--duration", type=int, default=3, help="seconds of load per run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", default="", help="comma-separated scenario names (bare is always run)")
    ap.add_argument("--latency-rounds", type=int, default=3,
                    help="one-connection rounds of bare, hand-assembled and chassis (0 to skip)")
    ap.add_argument("--interleave", action="store_true",
                    help="run chassis between every two scenarios; CPU ratios to its neighbours")
    ap.add_argument("--hello", default="", help="a hello binary to load instead of the one built")
    ap.add_argument("--pin", default="0:1",
                    help="SERVER_CPUS:WRK_CPUS as taskset -c lists (default 0:1); the OTLP sink "
                         "and the log reader run with wrk")
    ap.add_argument("--unpinned", action="store_true",
                    help="no pinning: wrk and the server share every core (client-bound)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--sink-nice", type=int, default=0,
                    help="run the OTLP sink at this nice level (e.g. 19), so that on wrk's CPU it "
                         "takes only what wrk leaves idle instead of slowing the client")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")
    if not a.unpinned:
        if not shutil.which("taskset"):
            sys.exit("taskset is required for pinning (util-linux), or pass --unpinned")
        PIN["server"], PIN["wrk"] = a.pin.split(":")
        allowed = os.sched_getaffinity(0)
        for k, spec in PIN.items():
            PIN_SETS[k] = cpu_list(spec)
            if not PIN_SETS[k] <= allowed:
                sys.exit(f"CPUs {spec} are not all available here (have {sorted(allowed)}); "
                         "pass --pin or --unpinned")
        if PIN_SETS["server"] & PIN_SETS["wrk"]:
            sys.exit(f"--pin {a.pin}: the server and wrk must not share a CPU")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "bare-axum", "-p", "hand-assembled",
                        "-p", "hello"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    release = os.path.join(target, "release")
    bare = os.path.join(release, "bare-axum")
    hand = os.path.join(release, "hand-assembled")
    hello = a.hello or os.path.join(release, "hello")
    sink_port = free_port()
    otlp = {"MS__TRACING__EXPORTER": "otlp",
            "MS__TRACING__ENDPOINT": f"http://127.0.0.1:{sink_port}"}
    access = {"MS__LOGGING__ACCESS": "true"}
    scenarios = {
        "bare": Scenario(bare),
        "hand-assembled": Scenario(hand),
        "chassis": Scenario(hello),
        "otlp-default": Scenario(hello, otlp),
        "otlp-all": Scenario(hello, {**otlp, "MS__TRACING__SAMPLER__TYPE": "always_on"}),
        "otlp-down": Scenario(hello, {"MS__TRACING__EXPORTER": "otlp",
                                      "MS__TRACING__ENDPOINT": f"http://127.0.0.1:{free_port()}"}),
        "chassis-access-null": Scenario(hello, access, "null", baseline="chassis"),
        "chassis-access-pipe": Scenario(hello, access, "pipe", baseline="chassis"),
        "hand-access-pipe": Scenario(hand, {"BENCH_ACCESS_LOG": "true"}, "pipe",
                                     baseline="hand-assembled"),
    }
    if a.only:
        keep = set(a.only.split(",")) | {"bare"}
        unknown = keep - set(scenarios)
        if unknown:
            sys.exit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(scenarios)}")
        scenarios = {k: v for k, v in scenarios.items() if k in keep}
    sink = None
    if any(k.startswith("otlp-") and k != "otlp-down" for k in scenarios):
        niced = ["nice", "-n", str(a.sink_nice)] if a.sink_nice else []
        sink = subprocess.Popen(pinned("wrk", niced + [os.path.join(release, "otlp-sink")]),
                                env={**os.environ, "SINK_PORT": str(sink_port)},
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    if a.unpinned:
        mode = ("CLIENT-BOUND: unpinned, wrk and the server share every core; wrk is then the "
                "bottleneck and the ratios mostly measure the client's limit, not the server's cost")
    else:
        mode = (f"server-bound: the server pinned to CPU {PIN['server']}, wrk (and the OTLP sink, "
                f"the log reader) to CPU {PIN['wrk']} with taskset -c; tokio sizes its runtime "
                "by the affinity mask (one worker per CPU)")
    order = list(scenarios)
    if a.interleave and "chassis" in scenarios:
        order = [n for n in order if n != "chassis"]
        order = [x for n in order for x in (("chassis", n) if n != "bare" else (n,))] + ["chassis"]
    runs = a.rounds * len(order) + a.latency_rounds * len(
        [k for k in ("bare", "hand-assembled", "chassis") if k in scenarios])
    print(f"mode: {mode}")
    secs = runs * (a.duration + 0.75)
    print(f"{a.rounds} alternating rounds of {a.duration} s (odd rounds in reverse order), "
          f"wrk -t1 -c{a.connections} on 127.0.0.1; {runs} runs, about "
          + (f"{secs / 60:.0f} min" if secs >= 120 else f"{secs:.0f} s"))
    print(f"scenarios: {', '.join(scenarios)}")
    print("each round line: requests/s, the server's CPU per request, the server's and wrk's use "
          "of their CPUs" + ("" if a.unpinned else
                             ", what other processes took of the server's CPU / of wrk's")
          + ", p50, p99, exec to first 200, RSS idle/after load")
    try:
        check_bodies(scenarios)
        print()
        results, neighbours = rounds(scenarios, order, a, sink)
    finally:
        spans = ""
        if sink:
            sink.stdin.close()
            spans = sink.stdout.read().strip()
            sink.wait(timeout=30)
    report(scenarios, results, neighbours, a, mode)
    if sink:
        print()
        print(f"otlp-sink: {spans}")
    if a.latency_rounds:
        latency(scenarios, a.latency_rounds, a.duration)


def rounds(scenarios, order, a, sink):
    results = {k: [] for k in scenarios}
    # With --interleave, `chassis` also runs after every other scenario, and each
    # scenario's CPU is compared with the mean of the chassis runs just before and after it.
    neighbours = {k: [] for k in scenarios}
    for r in range(a.rounds):
        last_chassis, waiting = None, []
        first_chassis = True
        for name in (order if r % 2 == 0 else order[::-1]):
            m = measure(scenarios[name], a.duration, a.connections, sink.pid if sink else None)
            if name == "chassis":
                for w in waiting:
                    neighbours[w[0]].append(w[1] / ((w[2] + m["cpu_us"]) / 2))
                waiting = []
                if first_chassis or not a.interleave:
                    results[name].append(m)
                first_chassis = False
                last_chassis = m["cpu_us"]
            else:
                results[name].append(m)
                if a.interleave and last_chassis is not None:
                    waiting.append((name, m["cpu_us"], last_chassis))
            flag = ""
            if not a.unpinned and m["server_use"] < SATURATED:
                flag = "  << server not saturated" + (
                    f": other processes took {pct(m['others_server'])} of its CPU"
                    if m["others_server"] >= OTHERS else "")
            busy = (f" (others {pct(m['others_server'])}/{pct(m['others_wrk'])})"
                    if not a.unpinned else "")
            extra = ""
            if m["exporter_us"] or m["sink_us"]:
                extra += f"  exporter {m['exporter_us']:.2f} sink {m['sink_us']:.2f}"
            if m["log_writer_us"] or m["lines"] is not None:
                extra += f"  log writer {m['log_writer_us']:.2f}"
            if m["dropped"] is not None:
                extra += f"  dropped {m['dropped']:.0f}"
            if m["lines"] is not None:
                extra += f"  lines {m['lines']}"
            print(f"round {r + 1:>2} {name:19} {m['rps']:>8.0f} req/s  cpu {m['cpu_us']:5.2f} µs/req  "
                  f"server {pct(m['server_use']):>4}  wrk {pct(m['wrk_use']):>4}{busy}  "
                  f"p50 {m['p50']:>5.0f} us  p99 {m['p99']:>5.0f} us  "
                  f"start {m['startup_ms']:4.1f} ms  "
                  f"rss {m['idle_kib'] / 1024:.1f}/{m['loaded_kib'] / 1024:.1f} MiB{extra}{flag}",
                  flush=True)
    return results, neighbours


def report(scenarios, results, neighbours, a, mode):
    bare = results["bare"]
    print()
    print(f"mode: {mode}")
    print(f"{a.rounds} rounds of {a.duration} s; ratios are per round (each scenario against "
          "bare in the same round), median of the rounds (min–max)")
    print()
    print("| scenario | req/s (median) | × bare req/s | server CPU/req (median) | CPU/req × bare "
          f"| server's CPU use{' (of one CPU)' if a.unpinned else ''}, median (min) "
          "| wrk's CPU use, median (max) "
          "| others on the server's CPU, median (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in results.items():
        tput = [m["rps"] / b["rps"] for m, b in zip(v, bare)]
        cpu = [m["cpu_us"] / b["cpu_us"] for m, b in zip(v, bare)]
        use = [m["server_use"] for m in v]
        wuse = [m["wrk_use"] for m in v]
        theirs = [m["others_server"] for m in v]
        print(f"| {name} | {med([m['rps'] for m in v]):.0f} | {spread(tput)} | "
              f"{med([m['cpu_us'] for m in v]):.2f} µs | {spread(cpu)} | "
              f"{pct(med(use))} ({pct(min(use))}) | {pct(med(wuse))} ({pct(max(wuse))}) | "
              + (f"{pct(med(theirs))} ({pct(max(theirs))}) |" if not a.unpinned else "n/a |"))
    print()
    print("| scenario | p50 (median) | p99 (median) | idle RSS | RSS after load | exec to first 200 "
          "(fastest) | exporter thread CPU/req | sink CPU/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in results.items():
        print(f"| {name} | {med([m['p50'] for m in v]):.0f} us | {med([m['p99'] for m in v]):.0f} us "
              f"| {med([m['idle_kib'] for m in v]) / 1024:.1f} MiB "
              f"| {med([m['loaded_kib'] for m in v]) / 1024:.1f} MiB "
              f"| {min(m['startup_ms'] for m in v):.1f} ms "
              f"| {med([m['exporter_us'] for m in v]):.2f} µs | {med([m['sink_us'] for m in v]):.2f} µs |")

    if a.unpinned and "chassis" in results:
        print()
        print("(client-bound run: issue 14's targets below are for the server-bound one)")
    if "chassis" in results and "hand-assembled" in results:
        c, h = results["chassis"], results["hand-assembled"]
        print()
        print("chassis against hand-assembled, per round, median (min–max):")
        print(f"  throughput, chassis / hand-assembled:           "
              f"{spread([x['rps'] / y['rps'] for x, y in zip(c, h)])}   (issue 14 asks ≥ 1.5)")
        print(f"  server CPU per request, chassis / hand-assembled: "
              f"{spread([x['cpu_us'] / y['cpu_us'] for x, y in zip(c, h)])}")
    if "chassis" in results:
        c = results["chassis"]
        print()
        print("chassis against bare, per round, median (min–max):")
        print(f"  server CPU per request, chassis / bare: "
              f"{spread([x['cpu_us'] / y['cpu_us'] for x, y in zip(c, bare)])}   (issue 14 asks ≤ 1.15)")
        print(f"  throughput, chassis / bare:             "
              f"{spread([x['rps'] / y['rps'] for x, y in zip(c, bare)])}   (issue 14 asks ≥ 0.87)")

    logged = [n for n, sc in scenarios.items() if sc.baseline and sc.baseline in results]
    if logged:
        print()
        print("access log: its cost per request over the same server without it, in the same round, "
              "median (min–max)")
        for name in logged:
            sc, v, base = scenarios[name], results[name], results[scenarios[name].baseline]
            added = [x["cpu_us"] - y["cpu_us"] for x, y in zip(v, base)]
            tput = [x["rps"] / y["rps"] for x, y in zip(v, base)]
            line = (f"  {name:19} +{spread(added)} µs server CPU/req; throughput × {spread(tput)} "
                    f"of {sc.baseline}")
            writer = [m["log_writer_us"] for m in v]
            if any(writer):
                line += f"; of which the log writer thread {med(writer):.2f} µs"
            dropped = [m["dropped"] for m in v if m["dropped"] is not None]
            if sc.env.get("MS__LOGGING__ACCESS"):
                line += (f"; {DROPPED} {sum(dropped):.0f} over all rounds" if dropped
                         else f"; {DROPPED} not exposed")
            lines = [m["lines"] for m in v if m["lines"] is not None]
            if lines:
                reqs = sum(m["requests"] for m in v)
                line += (f"; the pipe's reader counted {sum(lines)} lines for {reqs} requests "
                         f"({med([m['reader_us'] for m in v]):.2f} µs/req of its CPU)")
            print(line)

    if a.interleave:
        print()
        for name, ratios in neighbours.items():
            if ratios:
                print(f"{name}: service CPU per request / the mean of the chassis runs just before "
                      f"and after, {spread(ratios, '{:.3f}')}")
    elif "chassis" in results:
        print()
        print("service CPU per request / chassis's in the same round, median (min–max):")
        for name, v in results.items():
            if name != "chassis":
                ratios = [m["cpu_us"] / c["cpu_us"] for m, c in zip(v, results["chassis"])]
                print(f"  {name:19} {spread(ratios, '{:.3f}')}")

    print()
    if a.unpinned:
        print("saturation check: not meaningful unpinned (wrk and the server share the cores); "
              "these numbers are client-bound")
        return
    warned, busy_machine = False, False
    for name, v in results.items():
        use = [m["server_use"] for m in v]
        wuse = [m["wrk_use"] for m in v]
        theirs = med([m["others_server"] for m in v])
        low = sum(u < SATURATED for u in use)
        if med(use) < SATURATED:
            warned = True
            if theirs >= OTHERS:
                busy_machine = True
                why = (f"other processes took {pct(theirs)} of the server's CPU (median): the "
                       "machine is busy, so this run is not server-bound")
            elif max(wuse) > WRK_BUSY:
                why = f"wrk used {pct(med(wuse))} of its CPU: the client was the limit"
            else:
                why = "neither the server's CPU nor wrk's was full: latency-bound"
            print(f"WARNING: {name}: the server used {pct(med(use))} of its CPU (median; min "
                  f"{pct(min(use))}): {why}; its throughput ratio understates its cost (its CPU "
                  "per request is still its own, if noisier)")
        elif low:
            print(f"note: {name}: {low} of {len(use)} rounds had the server under "
                  f"{pct(SATURATED)} of its CPU")
        if max(wuse) > WRK_BUSY:
            print(f"note: {name}: wrk reached {pct(max(wuse))} of its CPU: the client was near "
                  "its limit too")
    if busy_machine:
        print("Other processes were running on the pinned CPUs (a build, another benchmark): "
              "rerun on a quiet machine (`uptime` load under 0.2 before starting) for numbers "
              "worth recording.")
    if not warned:
        print(f"saturation check: every scenario's server used ≥ {pct(SATURATED)} of its CPU "
              "(median of rounds): server-bound")


def latency(scenarios, rounds, duration):
    """p50 and p99 with one connection: the time each request takes, without queueing."""
    runs = {k: [] for k in ("bare", "hand-assembled", "chassis") if k in scenarios}
    print()
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            m = measure(scenarios[name], duration, 1)
            runs[name].append(m)
            print(f"latency round {r + 1} {name:14} p50 {m['p50']:>5.0f} us  p99 {m['p99']:>5.0f} us",
                  flush=True)
    meds = {k: {q: med([m[q] for m in v]) for q in ("p50", "p99")} for k, v in runs.items()}
    print()
    print("| one connection, median of rounds | p50 | p99 |")
    print("|---|---:|---:|")
    for name, m in meds.items():
        print(f"| {name} | {m['p50']:.0f} us | {m['p99']:.0f} us |")
    for name in ("hand-assembled", "chassis"):
        if name in meds:
            print(f"| added by {name} | {meds[name]['p50'] - meds['bare']['p50']:+.0f} us | "
                  f"{meds[name]['p99'] - meds['bare']['p99']:+.0f} us |")


if __name__ == "__main__":
    main()
