#!/usr/bin/env python3
"""The service CPU that OpenAPI request validation costs per request, measured on a server
under load (issue 12): the same chassis service, `bench/validated`, with validation on and
with it off (`MS__OPENAPI__VALIDATION__REQUESTS=false`), on two routes of one spec (the spec
of the in-process criterion bench, crates/ms-chassis/benches/openapi_validation.rs):
  get   GET /orders?limit=10&status=open: two query parameters (integer with bounds, enum);
        budget 1 us per request
  post  POST /orders, a 1 KiB JSON body against 10 properties (bounds, a pattern, a format,
        an array), Content-Type application/json; budget 5 us per request
The handlers answer at once (the POST handler reads its body as bytes and does not parse
it), so the difference between on and off is what validation adds.

Builds `cargo build --release -p validated` (the workspace's profile: fat LTO), then checks
both servers first: the GET answers 200 and the valid POST 201, and invalid requests (limit
out of bounds; a body breaking the pattern, the format, a bound) get 400 problem+json with
validation on, counted in ms_chassis_openapi_request_validation_failures_total, and
200/201 with it off. So the numbers below are of validation that ran.

For each case, `--rounds` alternating rounds run validation on and off (odd rounds off
first), each a fresh server process pinned to one CPU (`taskset -c`, default 0) and loaded
by `wrk -t1 -c32` pinned to another (default 1) for `--duration` seconds, after its first
200, 0.5 s idle and `--warmup` seconds of the same load that are not counted (the first
second of a fresh process costs more, and more so with validation on). A run reports requests/s and the service's CPU per request: user +
system time of the server from /proc/<pid>/stat over the wrk run, divided by the requests
wrk completed (every one must be 2xx). Per round, and as the median of the rounds (min-max):
on, off, the difference on - off in us per request and the ratio on / off, against the
budget. On a shared VM single runs move by several us, so the verdict also takes the 95%
bootstrap interval of the median difference: met when all of it is within the budget, not
met when all of it is over, undecided otherwise (run more rounds). The saturation check (the server's share of its core, and what other processes took
of it) says whether a run was server-bound.

Usage: python3 bench/validation.py [--rounds 9] [--duration 3] [--warmup 1] [--connections 32]
                                   [--cases get,post] [--pin 0:1] [--no-build]
Needs: apt-get install -y wrk (taskset is in util-linux)
"""
import argparse, http.client, importlib.util, json, os, random, re, shutil, statistics, subprocess, sys
import tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The helpers of the main server benchmark: free_port, the /proc readers, stop, med, spread,
# and its empty working directory (no config.yaml there: the server runs on its own config).
_spec = importlib.util.spec_from_file_location("bench_run", os.path.join(HERE, "run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

SPEC = os.path.join(HERE, "validated", "api.yaml")
GET_PATH = "/orders?limit=10&status=open"
FAILURES = "ms_chassis_openapi_request_validation_failures_total"
BUDGET_US = {"get": 1.0, "post": 5.0}
MODES = {"on": {}, "off": {"MS__OPENAPI__VALIDATION__REQUESTS": "false"}}


def order(**over):
    """The POST body of the criterion bench: 10 properties, about 1 KiB; `over` replaces
    some of them (to make it invalid)."""
    doc = {"sku": "ABC-1234", "quantity": 3, "email": "ann@example.com", "note": "n" * 880,
           "price": 9.5, "gift": False, "tags": ["a", "b"], "country": "ES", "priority": 4,
           "coupon": None}
    doc.update(over)
    return json.dumps(doc, separators=(",", ":"))


BODY = order()
assert 1000 <= len(BODY) < 1100, len(BODY)
# Each breaks one kind of check: the pattern, the format, a bound.
INVALID_BODIES = {"sku breaks the pattern": order(sku="abc-1234"),
                  "email breaks the format": order(email="not-an-email"),
                  "quantity breaks the minimum": order(quantity=0)}
INVALID_GET = "/orders?limit=0&status=open"


def request(port, method, path, body=None):
    """(status, content type, body) of one request to the server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def start(binary, port, mode):
    """Starts `binary` on `port` with validation `mode`, pinned; returns the process once it
    answers the GET with 200."""
    env = {"MS__OPENAPI__FILE": SPEC, **MODES[mode]}
    proc, _, _ = run.start(binary, port, env, subprocess.DEVNULL, path=GET_PATH)
    return proc


def failures(port):
    """The sum of the request validation failure counter on /metrics (0 when absent)."""
    _, _, body = request(port, "GET", "/metrics")
    return sum(float(m.group(1)) for m in
               re.finditer(rf"^{FAILURES}(?:{{[^}}]*}})? (\S+)$", body.decode(), re.M))


def check(binary):
    """Fails unless both servers answer the valid requests and validation on (only) refuses
    the invalid ones."""
    for mode in MODES:
        on = mode == "on"
        port = run.free_port()
        proc = start(binary, port, mode)
        try:
            problems = []
            expect = [("GET", GET_PATH, None, 200, "valid GET"),
                      ("POST", "/orders", BODY, 201, "valid POST"),
                      ("GET", INVALID_GET, None, 400 if on else 200, "GET with limit=0")]
            expect += [("POST", "/orders", b, 400 if on else 201, f"POST whose {what}")
                       for what, b in INVALID_BODIES.items()]
            for method, path, body, want, what in expect:
                status, ctype, text = request(port, method, path, body)
                if status != want:
                    problems.append(f"{what}: {status}, expected {want}: {text[:300]!r}")
                elif want == 400 and not ctype.startswith("application/problem+json"):
                    problems.append(f"{what}: 400 as {ctype!r}, expected problem+json")
            refused = failures(port)
            want_refused = 1 + len(INVALID_BODIES) if on else 0
            if refused != want_refused:
                problems.append(f"{FAILURES} is {refused:g}, expected {want_refused}")
        finally:
            run.stop(proc)
        if problems:
            sys.exit(f"validation {mode}: the server does not behave as the benchmark needs:\n  "
                     + "\n  ".join(problems))
        print(f"check, validation {mode}: GET 200, valid POST 201, invalid requests "
              f"{'400 problem+json, counted' if on else 'let through (200/201)'}")


def wrk(port, case, duration, connections, lua):
    """Loads the server with wrk: (requests/s, requests completed, wrk's CPU s)."""
    before = run.children_cpu_s()
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s"]
    if case == "post":
        argv += ["-s", lua, f"http://127.0.0.1:{port}/orders"]
    else:
        argv += [f"http://127.0.0.1:{port}{GET_PATH}"]
    out = subprocess.run(run.pinned("wrk", argv), capture_output=True, text=True,
                         check=True).stdout
    wrk_cpu = run.children_cpu_s() - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for bad in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: (.*)"):
        m = re.search(bad, out)
        if m:
            sys.exit(f"wrk saw errors ({m.group(0)}):\n{out}")
    return rps, requests, wrk_cpu


def measure(binary, case, mode, a, lua):
    port = run.free_port()
    proc = start(binary, port, mode)
    try:
        time.sleep(0.5)
        if a.warmup:
            wrk(port, case, a.warmup, a.connections, lua)
        stat = f"/proc/{proc.pid}/stat"
        cpu0 = run.cpu_s(stat)
        busy0 = {k: run.cpus_busy_s(v) for k, v in run.PIN_SETS.items()}
        t0 = time.perf_counter()
        rps, requests, wrk_cpu = wrk(port, case, a.duration, a.connections, lua)
        wall = time.perf_counter() - t0
        cpu1 = run.cpu_s(stat)
        busy1 = {k: run.cpus_busy_s(v) for k, v in run.PIN_SETS.items()}
    finally:
        run.stop(proc)
    cpu = cpu1 - cpu0
    return dict(rps=rps, requests=requests, cpu_us=cpu * 1e6 / max(requests, 1),
                server_use=cpu / wall, wrk_use=wrk_cpu / wall,
                # What the rest of the machine took of the server's CPU and of wrk's.
                others=max(busy1["server"] - busy0["server"] - cpu, 0.0) / wall,
                others_wrk=max(busy1["wrk"] - busy0["wrk"] - wrk_cpu, 0.0) / wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--duration", type=int, default=3, help="seconds of load per run")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of load before each measured run, not counted (0: none)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cases", default="get,post", help="comma-separated: get, post")
    ap.add_argument("--pin", default="0:1", help="SERVER_CPUS:WRK_CPUS as taskset -c lists")
    ap.add_argument("--no-build", action="store_true", help="use the binary already built")
    a = ap.parse_args()
    cases = [c for c in a.cases.split(",") if c]
    if not cases or set(cases) - set(BUDGET_US):
        sys.exit(f"--cases {a.cases}: choose from {', '.join(BUDGET_US)}")
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")
    if not shutil.which("taskset"):
        sys.exit("taskset is required (util-linux): apt-get install -y util-linux")
    run.PIN["server"], run.PIN["wrk"] = a.pin.split(":")
    allowed = os.sched_getaffinity(0)
    for k, spec in run.PIN.items():
        run.PIN_SETS[k] = run.cpu_list(spec)
        if not run.PIN_SETS[k] <= allowed:
            sys.exit(f"CPUs {spec} are not all available here (have {sorted(allowed)}); pass --pin")
    if run.PIN_SETS["server"] & run.PIN_SETS["wrk"]:
        sys.exit(f"--pin {a.pin}: the server and wrk must not share a CPU")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "validated"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "validated")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is missing: build it (drop --no-build)")

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(BODY)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n')
        lua = f.name
    try:
        check(binary)
        runs = len(cases) * a.rounds * 2
        print(f"pinned: server on CPU {run.PIN['server']}, wrk -t1 -c{a.connections} on CPU "
              f"{run.PIN['wrk']}; {a.rounds} rounds x {a.duration} s per case; "
              f"{a.warmup} s warm-up; {runs} runs, about {runs * (a.duration + a.warmup + 0.8) / 60:.1f} min; "
              f"load average {os.getloadavg()[0]:.2f}")
        summary = {}
        for case in cases:
            summary[case] = rounds(binary, case, a, lua)
        report(summary, a)
    finally:
        os.unlink(lua)


def rounds(binary, case, a, lua):
    print(f"\n{case.upper()} {'/orders (1 KiB JSON body)' if case == 'post' else GET_PATH}")
    results = []
    for i in range(a.rounds):
        modes = ["on", "off"] if i % 2 == 0 else ["off", "on"]
        r = {m: measure(binary, case, m, a, lua) for m in modes}
        results.append(r)
        on, off = r["on"], r["off"]
        flags = "".join(f" [{m}: server {run.pct(r[m]['server_use'])} of its core; others took "
                        f"{run.pct(r[m]['others'])} of its CPU, {run.pct(r[m]['others_wrk'])} "
                        "of wrk's]" for m in MODES
                        if r[m]["server_use"] < run.SATURATED
                        or max(r[m]["others"], r[m]["others_wrk"]) > run.OTHERS)
        print(f"  round {i + 1}: on {on['rps']:8.0f} req/s {on['cpu_us']:6.2f} us/req | "
              f"off {off['rps']:8.0f} req/s {off['cpu_us']:6.2f} us/req | "
              f"on - off {on['cpu_us'] - off['cpu_us']:+6.2f} us, "
              f"ratio {on['cpu_us'] / off['cpu_us']:.3f}{flags}")
    return results


def interval(xs, n=10000, seed=12):
    """The 95% bootstrap interval of the median of xs."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def report(summary, a):
    print(f"\nmedian of {a.rounds} rounds (min-max); service CPU = user + system of the server "
          "process over the wrk run / requests completed")
    for case, results in summary.items():
        col = lambda m, k: [r[m][k] for r in results]
        diff = [r["on"]["cpu_us"] - r["off"]["cpu_us"] for r in results]
        ratio = [r["on"]["cpu_us"] / r["off"]["cpu_us"] for r in results]
        budget = BUDGET_US[case]
        lo, hi = interval(diff)
        verdict = ("met" if hi <= budget else "NOT met" if lo > budget
                   else f"undecided (the interval straddles it; median {run.med(diff):.2f} us)")
        print(f"\n{case.upper()}")
        for m in MODES:
            print(f"  validation {m:3}: {run.spread(col(m, 'rps'), '{:.0f}')} req/s, "
                  f"{run.spread(col(m, 'cpu_us'))} us CPU/req, server "
                  f"{run.pct(run.med(col(m, 'server_use')))} of its core, wrk "
                  f"{run.pct(run.med(col(m, 'wrk_use')))}; others took "
                  f"{run.pct(run.med(col(m, 'others')))} of the server's CPU, "
                  f"{run.pct(run.med(col(m, 'others_wrk')))} of wrk's")
        print(f"  on - off: {run.spread(diff)} us CPU/req (95% interval of the median "
              f"{lo:.2f}–{hi:.2f}), ratio {run.spread(ratio, '{:.3f}')}; budget {budget:g} us: "
              f"{verdict}")
        rps_ratio = [r["on"]["rps"] / r["off"]["rps"] for r in results]
        print(f"  throughput on / off: {run.spread(rps_ratio, '{:.3f}')}")
        if min(run.med(col(m, "server_use")) for m in MODES) < run.SATURATED:
            print("  WARNING: the server used under 90% of its core (median): not server-bound "
                  "(see what others took of each CPU); the CPU per request still holds, the "
                  "throughput does not")


if __name__ == "__main__":
    main()
