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
(requests/s, p50, p99), RSS after load. Prints a table of the best round of each with the
ratio to bare, and the median of the rounds' ratios (a round runs every scenario, one
after another). Then the latency bare and chassis add per request without queueing: wrk
with one connection, in alternating rounds (--latency-rounds, 0 to skip).
Usage: python3 bench/run.py [--duration 10] [--rounds 3] [--connections 32] [--only a,b]
                            [--latency-rounds 3]
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


def start(binary, port, extra_env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MS_", "OTEL_")) and k != "RUST_LOG"}
    env.update({"MS__SERVER__PORT": str(port), "BENCH_PORT": str(port),
                "MS__SERVER__SHUTDOWN__DRAIN_DELAY": "0s"})
    env.update(extra_env)
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_us(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_us(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx responses:\n{out}")
    return rps, p50, p99


def measure(binary, extra_env, duration, connections):
    port = free_port()
    proc, startup_ms = start(binary, port, extra_env)
    try:
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        rps, p50, p99 = wrk(port, duration, connections)
        loaded = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return dict(rps=rps, p50=p50, p99=p99, startup_ms=startup_ms, idle_kib=idle, loaded_kib=loaded)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--latency-rounds", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")
    subprocess.run(["cargo", "build", "--release", "-p", "hello", "-p", "bare-axum"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bare = os.path.join(target, "release", "bare-axum")
    hello = os.path.join(target, "release", "hello")
    sink_port = free_port()
    sink = subprocess.Popen([os.path.join(target, "release", "otlp-sink")],
                            env={**os.environ, "SINK_PORT": str(sink_port)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
    try:
        for r in range(a.rounds):
            for name, (path, env) in scenarios.items():
                m = measure(path, env, a.duration, a.connections)
                results[name].append(m)
                print(f"round {r + 1} {name:13} {m['rps']:>10.0f} req/s  p50 {m['p50']:>7.0f} us  "
                      f"p99 {m['p99']:>7.0f} us  start {m['startup_ms']:.1f} ms  "
                      f"rss {m['idle_kib'] / 1024:.1f}/{m['loaded_kib'] / 1024:.1f} MiB", flush=True)
    finally:
        sink.stdin.close()
        spans = sink.stdout.read().strip()
        sink.wait(timeout=30)
    best = {k: max(v, key=lambda m: m["rps"]) for k, v in results.items()}
    fastest_start = {k: min(m["startup_ms"] for m in v) for k, v in results.items()}
    b = best["bare"]
    print()
    print("| scenario | requests/s | × bare | p50 | p99 | idle RSS | RSS after load | exec to first 200 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in best.items():
        print(f"| {name} | {m['rps']:.0f} | {m['rps'] / b['rps']:.2f} | {m['p50']:.0f} us | "
              f"{m['p99']:.0f} us | {m['idle_kib'] / 1024:.1f} MiB | {m['loaded_kib'] / 1024:.1f} MiB | "
              f"{fastest_start[name]:.1f} ms |")
    print()
    for name, v in results.items():
        ratios = sorted(m["rps"] / r["rps"] for m, r in zip(v, results["bare"]))
        print(f"{name}: per-round ratio to bare, median {ratios[len(ratios) // 2]:.2f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")
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
