#!/usr/bin/env python3
"""Chassis vs bare axum: throughput, latency, memory and start-up time.

Builds `hello` (the chassis demo) and `bare-axum` (the same /hello handler on bare axum,
plus `otlp-sink`, a counting OTLP/gRPC receiver) in release mode, then runs each scenario in
alternating rounds:
  bare          bare axum
  chassis       hello on its default config (tracing ids and propagation, nothing exported)
  otlp-default  hello exporting to the local sink with the default sampler (parent ratio 0.1)
  otlp-all      hello exporting every request to the local sink (sampling 1.0)
  otlp-down     hello exporting to a closed port (the collector is down), default sampler
For each: time from exec to the first 200 on /hello, idle RSS, wrk load on 127.0.0.1
(requests/s, p50, p99), RSS after load, and the CPU per request (user + system time from
/proc/<pid>/stat over the wrk run, divided by the requests wrk completed) of the service
process, of its span exporter thread (included in the service's figure) and of the sink. Prints a table of the best round of each with the
ratio to bare, and the median of the rounds' ratios (a round runs every scenario, one
after another); then each scenario's service CPU per request as a ratio to `chassis` (no
exporter) in the same round, median of the rounds. Then the latency bare and chassis add per request without queueing: wrk
with one connection, in alternating rounds (--latency-rounds, 0 to skip).
Usage: python3 bench/run.py [--duration 10] [--rounds 3] [--connections 32] [--only a,b]
                            [--latency-rounds 3] [--pin SERVER_CPUS:WRK_CPUS] [--hello PATH]
                            [--interleave]
--pin 0:1 runs the service on CPU 0 and wrk and the sink on CPU 1 (sched_setaffinity).
Needs: apt-get install -y wrk
"""
import argparse, os, re, shutil, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# Thread names of span exporters: the SDK's batch processor, and the chassis's own.
EXPORTER_THREADS = ("OpenTelemetry.T", "ms-chassis-otlp")  # comm keeps 15 characters
TICK = os.sysconf("SC_CLK_TCK")
PIN = {"server": None, "wrk": None}


def cpu_s(path):
    """User + system time (s) of the process or thread whose stat file is `path`."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def exporter_cpu_s(pid):
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            if name.startswith(EXPORTER_THREADS):
                total += cpu_s(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return total


def pinned(which):
    cpus = PIN[which]
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def start(binary, port, extra_env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MS_", "OTEL_")) and k != "RUST_LOG"}
    env.update({"MS__SERVER__PORT": str(port), "BENCH_PORT": str(port),
                "MS__SERVER__SHUTDOWN__DRAIN_DELAY": "0s"})
    env.update(extra_env)
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=pinned("server"))
    url = f"http://127.0.0.1:{port}/hello"
    deadline = t0 + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, (time.perf_counter() - t0) * 1000
        except OSError:
            pass
        if time.perf_counter() > deadline:
            proc.kill()
            sys.exit(f"{binary} did not answer within 30 s")
        time.sleep(0.0005)


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1000, "s": 1e6}[unit]


def wrk(port, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         f"http://127.0.0.1:{port}/hello"],
        capture_output=True, text=True, check=True, preexec_fn=pinned("wrk")).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_us(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_us(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx responses:\n{out}")
    return rps, p50, p99, requests


def measure(binary, extra_env, duration, connections, sink_pid=None):
    port = free_port()
    proc, startup_ms = start(binary, port, extra_env)
    try:
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        stat = f"/proc/{proc.pid}/stat"
        sink_stat = f"/proc/{sink_pid}/stat" if sink_pid else None
        cpu0, exp0 = cpu_s(stat), exporter_cpu_s(proc.pid)
        sink0 = cpu_s(sink_stat) if sink_stat else 0.0
        rps, p50, p99, requests = wrk(port, duration, connections)
        cpu1, exp1 = cpu_s(stat), exporter_cpu_s(proc.pid)
        sink1 = cpu_s(sink_stat) if sink_stat else 0.0
        loaded = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    per_req = 1e6 / max(requests, 1)
    return dict(rps=rps, p50=p50, p99=p99, startup_ms=startup_ms, idle_kib=idle, loaded_kib=loaded,
                cpu_us=(cpu1 - cpu0) * per_req, exporter_us=(exp1 - exp0) * per_req,
                sink_us=(sink1 - sink0) * per_req)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--interleave", action="store_true",
                    help="run chassis between every two scenarios; CPU ratios to its neighbours")
    ap.add_argument("--hello", default="", help="a hello binary to load instead of the one built")
    ap.add_argument("--pin", default="", help="SERVER_CPUS:WRK_CPUS, e.g. 0:1 (the sink runs with wrk)")
    a = ap.parse_args()
    if a.pin:
        server_cpus, wrk_cpus = a.pin.split(":")
        PIN["server"] = {int(c) for c in server_cpus.split(",")}
        PIN["wrk"] = {int(c) for c in wrk_cpus.split(",")}
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")
    subprocess.run(["cargo", "build", "--release", "-p", "hello", "-p", "bare-axum"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bare = os.path.join(target, "release", "bare-axum")
    hello = a.hello or os.path.join(target, "release", "hello")
    sink_port = free_port()
    sink = subprocess.Popen([os.path.join(target, "release", "otlp-sink")],
                            env={**os.environ, "SINK_PORT": str(sink_port)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=pinned("wrk"))
    otlp = {"MS__TRACING__EXPORTER": "otlp",
            "MS__TRACING__ENDPOINT": f"http://127.0.0.1:{sink_port}"}
    scenarios = {
        "bare": (bare, {}),
        "chassis": (hello, {}),
        "otlp-default": (hello, otlp),
        "otlp-all": (hello, {**otlp, "MS__TRACING__SAMPLER__TYPE": "always_on"}),
        "otlp-down": (hello, {"MS__TRACING__EXPORTER": "otlp",
                              "MS__TRACING__ENDPOINT": f"http://127.0.0.1:{free_port()}"}),
    }
    if a.only:
        keep = set(a.only.split(",")) | {"bare"}
        scenarios = {k: v for k, v in scenarios.items() if k in keep}
    results = {k: [] for k in scenarios}
    # With --interleave, `chassis` also runs after every other scenario, and each
    # scenario's CPU is compared with the mean of the chassis runs just before and after it.
    neighbours = {k: [] for k in scenarios}
    order = list(scenarios)
    if a.interleave and "chassis" in scenarios:
        order = [n for n in order if n != "chassis"]
        order = [x for n in order for x in (("chassis", n) if n != "bare" else (n,))] + ["chassis"]
    try:
        for r in range(a.rounds):
            last_chassis, waiting = None, []
            for name in order:
                path, env = scenarios[name]
                m = measure(path, env, a.duration, a.connections, sink.pid)
                if name == "chassis":
                    for w in waiting:
                        neighbours[w[0]].append(w[1] / ((w[2] + m["cpu_us"]) / 2))
                    waiting = []
                    if last_chassis is None or not a.interleave:
                        results[name].append(m)
                    last_chassis = m["cpu_us"]
                else:
                    results[name].append(m)
                    if a.interleave and last_chassis is not None:
                        waiting.append((name, m["cpu_us"], last_chassis))
                print(f"round {r + 1} {name:13} {m['rps']:>10.0f} req/s  p50 {m['p50']:>7.0f} us  "
                      f"p99 {m['p99']:>7.0f} us  start {m['startup_ms']:.1f} ms  "
                      f"rss {m['idle_kib'] / 1024:.1f}/{m['loaded_kib'] / 1024:.1f} MiB  "
                      f"cpu {m['cpu_us']:.2f} us/req (exporter {m['exporter_us']:.2f}, "
                      f"sink {m['sink_us']:.2f})", flush=True)
    finally:
        sink.stdin.close()
        spans = sink.stdout.read().strip()
        sink.wait(timeout=30)
    best = {k: max(v, key=lambda m: m["rps"]) for k, v in results.items()}
    fastest_start = {k: min(m["startup_ms"] for m in v) for k, v in results.items()}
    b = best["bare"]
    print()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print("| scenario | requests/s | × bare | p50 | p99 | idle RSS | RSS after load | exec to first 200 "
          "| service CPU/req (median) | of which exporter | sink CPU/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in best.items():
        v = results[name]
        print(f"| {name} | {m['rps']:.0f} | {m['rps'] / b['rps']:.2f} | {m['p50']:.0f} us | "
              f"{m['p99']:.0f} us | {m['idle_kib'] / 1024:.1f} MiB | {m['loaded_kib'] / 1024:.1f} MiB | "
              f"{fastest_start[name]:.1f} ms | {med([x['cpu_us'] for x in v]):.2f} us | "
              f"{med([x['exporter_us'] for x in v]):.2f} us | {med([x['sink_us'] for x in v]):.2f} us |")
    print()
    for name, v in results.items():
        ratios = sorted(m["rps"] / r["rps"] for m, r in zip(v, results["bare"]))
        print(f"{name}: per-round ratio to bare, median {ratios[len(ratios) // 2]:.2f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")
    if a.interleave:
        print()
        for name, ratios in neighbours.items():
            if ratios:
                ratios.sort()
                print(f"{name}: service CPU per request / the mean of the chassis runs just before "
                      f"and after, median {med(ratios):.3f} "
                      f"(rounds {', '.join(f'{x:.3f}' for x in ratios)})")
    elif "chassis" in results:
        print()
        for name, v in results.items():
            ratios = sorted(m["cpu_us"] / c["cpu_us"] for m, c in zip(v, results["chassis"]))
            print(f"{name}: service CPU per request / chassis's in the same round, median "
                  f"{med(ratios):.3f} (rounds {', '.join(f'{x:.3f}' for x in ratios)})")
    print()
    print(f"otlp-sink: {spans}")
    if a.latency_rounds:
        latency(scenarios, a.latency_rounds)


def latency(scenarios, rounds):
    """p50 and p99 with one connection: the time each request takes, without queueing."""
    runs = {k: [] for k in ("bare", "chassis") if k in scenarios}
    for r in range(rounds):
        for name in runs:
            path, env = scenarios[name]
            m = measure(path, env, 5, 1)
            runs[name].append(m)
            print(f"latency round {r + 1} {name:8} p50 {m['p50']:>5.0f} us  p99 {m['p99']:>5.0f} us",
                  flush=True)
    med = {k: {q: sorted(m[q] for m in v)[len(v) // 2] for q in ("p50", "p99")}
           for k, v in runs.items()}
    print()
    print("| one connection, median of rounds | p50 | p99 |")
    print("|---|---:|---:|")
    for name, m in med.items():
        print(f"| {name} | {m['p50']:.0f} us | {m['p99']:.0f} us |")
    if "chassis" in med:
        print(f"| added by the chassis | {med['chassis']['p50'] - med['bare']['p50']:+.0f} us | "
              f"{med['chassis']['p99'] - med['bare']['p99']:+.0f} us |")


if __name__ == "__main__":
    main()
