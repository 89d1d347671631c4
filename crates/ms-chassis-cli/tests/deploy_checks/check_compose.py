"""Checks a generated service's docker-compose.yaml, its Prometheus config and its
Dockerfile, without a Docker daemon.

    python check_compose.py SERVICE_DIR

There is no Docker daemon here (so no `docker compose config`, no build, no run). What is
checked instead is the structure, against the service's own config (config.yaml with
config.prod.yaml over it):
  * yamllint on docker-compose.yaml and deploy/prometheus/prometheus.yml;
  * compose: the service, Prometheus and Jaeger; the service built from `.`; its healthcheck
    is the self-probe in exec form (the image has no shell); `depends_on` uses
    `condition: service_healthy`, only on services that have a healthcheck; ports are
    published on 127.0.0.1 and match the config; images are pinned; the stop grace period
    outlasts drain_delay + grace; the Prometheus config is mounted where its image reads it;
  * prometheus.yml: a job scraping the compose service at its management port, on the
    config's metrics path; `promtool check config` when promtool is on PATH;
  * Dockerfile: cargo-chef stages, builder and runtime on the same Debian release, the
    distroless cc runtime as numeric user 65532, the config and env the chart also uses, the
    exec-form HEALTHCHECK and ENTRYPOINT; .dockerignore keeps target/ and key.key out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# No __pycache__ beside the checks, in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    YAMLLINT_SOURCE,
    ServiceConfig,
    check,
    duration_ms,
    main,
    service_config,
    yamllint,
)

UID = 65532


def port_mappings(service: dict, label: str) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port, short or long syntax."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), int(p.get("published", 0)), int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        check(len(parts) == 3, f"{label}: port {p!r} does not name the host address (127.0.0.1:HOST:CONTAINER)")
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def check_compose(service_dir: Path, cfg: ServiceConfig) -> dict:
    path = service_dir / "docker-compose.yaml"
    text = path.read_text(encoding="utf-8")
    yamllint({str(path): text}, YAMLLINT_SOURCE)
    doc = yaml.safe_load(text)
    check("version" not in doc, "compose: the top-level `version` is obsolete in the Compose Specification")
    services = doc.get("services") or {}
    name = cfg.name
    check(name in services, f"compose: no service named {name!r} (the service's name)")
    check("prometheus" in services and "jaeger" in services, f"compose: services {sorted(services)}; expected {name}, prometheus, jaeger")
    svc = services[name]

    # Built from this directory's Dockerfile.
    build = svc.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    check(context == ".", f"compose: {name} must be built from `.`, found {build!r}")

    # The healthcheck is the self-probe, in exec form: the image has no shell.
    hc = svc.get("healthcheck") or {}
    test = hc.get("test")
    check(
        test == ["CMD", f"/usr/local/bin/{name}", "healthcheck"],
        f"compose: {name}'s healthcheck must be [\"CMD\", \"/usr/local/bin/{name}\", \"healthcheck\"], found {test!r}",
    )
    for key in ("interval", "timeout"):
        check(key in hc and duration_ms(hc[key]) > 0, f"compose: {name} healthcheck {key}")

    # The prod profile, tracing to the Jaeger service's OTLP gRPC port.
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    check(env.get("MS_PROFILE") == "prod", f"compose: {name} must run MS_PROFILE=prod")
    endpoint = env.get("MS__TRACING__ENDPOINT", "")
    m = re.fullmatch(r"http://([a-z0-9-]+):([0-9]+)", endpoint)
    check(m is not None, f"compose: MS__TRACING__ENDPOINT {endpoint!r} must name a compose service")
    check(m.group(1) == "jaeger" and m.group(2) == "4317", f"compose: traces must go to jaeger:4317 (OTLP gRPC), found {endpoint!r}")
    check(not [k for k in env if k.startswith("MS__SERVER__")], "compose: MS__SERVER__* would move the ports prometheus.yml scrapes")
    check(cfg.merged.get("tracing", {}).get("exporter") == "otlp", "config.prod.yaml: tracing.exporter must be otlp for Jaeger to get traces")

    # Ports: on 127.0.0.1 only, the service's as in its config, no host port twice.
    published = {}
    for sname, s in services.items():
        for host_ip, host_port, target in port_mappings(s, f"compose: {sname}"):
            check(host_ip == "127.0.0.1", f"compose: {sname} publishes {host_port} on {host_ip or 'every address'}, not 127.0.0.1")
            check(host_port not in published, f"compose: host port {host_port} published by {published.get(host_port)} and {sname}")
            published[host_port] = sname
    targets = {t for _, _, t in port_mappings(svc, name)}
    check(cfg.http_port in targets, f"compose: {name} does not publish its http port {cfg.http_port}")
    if cfg.management_port is not None:
        check(cfg.management_port in targets, f"compose: {name} does not publish its management port {cfg.management_port}")
    check(
        cfg.http_host == "0.0.0.0" and cfg.management_host in (None, "0.0.0.0"),
        "config.prod.yaml: the listeners must bind 0.0.0.0 in a container",
    )

    # Dependencies: service_healthy, and only on services with a healthcheck.
    for sname, s in services.items():
        deps = s.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            check(dep in services, f"compose: {sname} depends on {dep}, which is not a service")
            if spec.get("condition") == "service_healthy":
                check("healthcheck" in services[dep], f"compose: {sname} waits for {dep} to be healthy, which has no healthcheck")
    prom_deps = services["prometheus"].get("depends_on") or {}
    check(
        isinstance(prom_deps, dict) and prom_deps.get(name, {}).get("condition") == "service_healthy",
        f"compose: prometheus must depend on {name} with condition: service_healthy",
    )
    for sname, s in services.items():
        hct = (s.get("healthcheck") or {}).get("test")
        if hct is not None:
            check(isinstance(hct, list) and hct and hct[0] in ("CMD", "CMD-SHELL", "NONE"), f"compose: {sname} healthcheck test {hct!r}")

    # Shutdown: compose's default 10 s would kill the service mid-drain.
    stop = svc.get("stop_grace_period")
    check(stop is not None and duration_ms(stop) > cfg.shutdown_ms, f"compose: {name} stop_grace_period {stop!r} must exceed drain_delay + grace ({cfg.shutdown_ms} ms)")

    # Images pinned to a version, never latest.
    for sname in ("prometheus", "jaeger"):
        image = services[sname].get("image", "")
        m = re.fullmatch(r"[a-z0-9./-]+:(v?[0-9]+\.[0-9]+\.[0-9]+)", image)
        check(m is not None, f"compose: {sname} image {image!r} must be pinned to a version tag")
    check(re.match(r"(docker\.io/)?prom/prometheus:", services["prometheus"]["image"]), "compose: prometheus image")
    check(re.match(r"(docker\.io/)?jaegertracing/", services["jaeger"]["image"]), "compose: jaeger image")
    jaeger_targets = {t for _, _, t in port_mappings(services["jaeger"], "jaeger")}
    check(16686 in jaeger_targets, "compose: Jaeger's UI (16686) is not published")

    # Prometheus reads the generated config from its image's default path.
    mounts = services["prometheus"].get("volumes") or []
    prom_mount = [v for v in mounts if isinstance(v, str) and v.split(":")[1] == "/etc/prometheus/prometheus.yml"]
    check(len(prom_mount) == 1, "compose: deploy/prometheus/prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
    source = prom_mount[0].split(":")[0]
    check((service_dir / source).resolve() == (service_dir / "deploy/prometheus/prometheus.yml").resolve(), f"compose: mounts {source}")
    check(prom_mount[0].endswith(":ro"), "compose: mount prometheus.yml read-only")
    return doc


def check_prometheus(service_dir: Path, cfg: ServiceConfig) -> None:
    path = service_dir / "deploy" / "prometheus" / "prometheus.yml"
    text = path.read_text(encoding="utf-8")
    yamllint({str(path): text}, YAMLLINT_SOURCE)
    doc = yaml.safe_load(text)
    check(cfg.metrics_enabled, "config: metrics.enabled is false, yet Prometheus scrapes the service")
    expected = f"{cfg.name}:{cfg.probe_port}"
    jobs = [
        j for j in doc.get("scrape_configs", [])
        if any(expected in sc.get("targets", []) for sc in j.get("static_configs", []))
    ]
    check(len(jobs) == 1, f"prometheus.yml: no (or more than one) job scrapes {expected} (the service at its management port)")
    job = jobs[0]
    check(job.get("metrics_path", "/metrics") == cfg.metrics_path, f"prometheus.yml: metrics_path {job.get('metrics_path')!r} != the config's {cfg.metrics_path!r}")
    check(job.get("scheme", "http") == "http", "prometheus.yml: the management port speaks plain http")
    names = [j["job_name"] for j in doc["scrape_configs"]]
    check(len(names) == len(set(names)), f"prometheus.yml: job names repeat: {names}")
    promtool = shutil.which("promtool")
    if promtool:
        run = subprocess.run([promtool, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True, check=False)
        check(run.returncode == 0, f"promtool check config {path}:\n{run.stdout}{run.stderr}")
        print("  promtool check config: ok")
    else:
        print("  promtool not on PATH: prometheus.yml checked structurally only")


def exec_form(text: str, what: str) -> list:
    """The JSON array of an exec-form instruction; the shell form fails (no shell in distroless)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    check(
        isinstance(value, list) and all(isinstance(v, str) for v in value),
        f"Dockerfile: {what} {text!r} is not the exec form (a JSON array): distroless has no shell",
    )
    return value


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def check_dockerfile(service_dir: Path, cfg: ServiceConfig) -> None:
    name = cfg.name
    ins = dockerfile_instructions((service_dir / "Dockerfile").read_text(encoding="utf-8"))
    args = {}
    stages = []  # (image, alias, [instructions])
    for word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v
        elif word == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            # FROM an earlier stage: that stage's base image.
            image = next((i for i, a, _ in stages if a == image), image)
            alias = rest.split()[2] if len(rest.split()) == 3 and rest.split()[1].upper() == "AS" else None
            stages.append((image, alias, []))
        else:
            check(bool(stages), f"Dockerfile: {word} before FROM")
            stages[-1][2].append((word, rest))
    check(len(stages) >= 3, f"Dockerfile: {len(stages)} stages; expected cargo-chef's planner and builder and a runtime")
    aliases = [a for _, a, _ in stages]
    check("planner" in aliases and "builder" in aliases, f"Dockerfile: stages {aliases}; expected planner and builder")
    runs = [r for _, _, s in stages for w, r in s if w == "RUN"]
    check(any("cargo chef prepare" in r for r in runs), "Dockerfile: no `cargo chef prepare`")
    check(any("cargo chef cook" in r and "--release" in r for r in runs), "Dockerfile: no `cargo chef cook --release`")
    build = [r for r in runs if "cargo build" in r]
    check(len(build) == 1 and "--release" in build[0] and "--locked" in build[0], f"Dockerfile: cargo build --release --locked, found {build}")

    # Builder and runtime on the same Debian release.
    runtime_image, _, runtime = stages[-1]
    builder_images = {i for i, a, _ in stages[:-1] if a in ("chef", "planner", "builder") or "cargo-chef" in i or "rust" in i}
    debian = {"bookworm": "12", "trixie": "13", "bullseye": "11"}
    m = re.fullmatch(r"gcr\.io/distroless/cc-debian([0-9]+)(:[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?", runtime_image)
    check(m is not None, f"Dockerfile: the runtime {runtime_image!r} must be distroless cc (glibc and libgcc for a Rust binary)")
    for image in builder_images:
        release = [r for r in debian if r in image]
        check(len(release) == 1, f"Dockerfile: the builder image {image!r} names no Debian release")
        check(debian[release[0]] == m.group(1), f"Dockerfile: builder {image} (Debian {debian[release[0]]}) and runtime {runtime_image} differ: GLIBC not found at start")

    final = {}
    for word, rest in runtime:
        final.setdefault(word, []).append(rest)
    check(final.get("USER") == [f"{UID}:{UID}"], f"Dockerfile: the runtime's USER must be numeric {UID}:{UID}, found {final.get('USER')}")
    copies = final.get("COPY", [])
    check(any(c.startswith("--from=builder") and c.endswith(f"/usr/local/bin/{name}") and f"/release/{name}" in c for c in copies), f"Dockerfile: the binary is not copied to /usr/local/bin/{name}")
    check(any(c.split()[:2] == ["config.yaml", "config.prod.yaml"] and c.split()[-1].rstrip("/") == f"/etc/{name}" for c in copies), f"Dockerfile: config.yaml and config.prod.yaml are not copied to /etc/{name}/")
    env = {}
    for e in final.get("ENV", []):
        for k, v in re.findall(r"(\w+)=(\S+)", e):
            env[k] = v
    check(env.get("MS_CONFIG_FILE") == f"/etc/{name}", f"Dockerfile: MS_CONFIG_FILE {env.get('MS_CONFIG_FILE')!r}")
    check(env.get("MS_PROFILE") == "prod", "Dockerfile: MS_PROFILE=prod")
    check(env.get("MS_KEY_FILE") == f"/etc/{name}/secret/key.key", f"Dockerfile: MS_KEY_FILE {env.get('MS_KEY_FILE')!r}")
    exposed = {int(p.split("/")[0]) for e in final.get("EXPOSE", []) for p in e.split()}
    want = {cfg.http_port} | ({cfg.management_port} if cfg.management_port else set())
    check(exposed == want, f"Dockerfile: EXPOSE {sorted(exposed)}, the config listens on {sorted(want)}")
    hc = final.get("HEALTHCHECK", [])
    check(len(hc) == 1, "Dockerfile: one HEALTHCHECK")
    cmd = hc[0].split("CMD", 1)
    check(len(cmd) == 2, "Dockerfile: HEALTHCHECK without CMD")
    check(exec_form(cmd[1].strip(), "HEALTHCHECK CMD") == [f"/usr/local/bin/{name}", "healthcheck"], f"Dockerfile: HEALTHCHECK must be the exec form of the self-probe, found {cmd[1].strip()}")
    ep = final.get("ENTRYPOINT", [])
    check(len(ep) == 1 and exec_form(ep[0], "ENTRYPOINT") == [f"/usr/local/bin/{name}"], f"Dockerfile: ENTRYPOINT must be the exec form [\"/usr/local/bin/{name}\"]")
    check("RUN" not in final, "Dockerfile: RUN in the distroless runtime stage (it has no shell)")

    ignore = [l.strip() for l in (service_dir / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    for must in ("target/", "key.key", ".git/"):
        check(must in ignore or must.rstrip("/") in ignore, f".dockerignore: {must} is not ignored")
    for keep in ("Cargo.lock", "Cargo.toml", "src", "config.yaml", "config.prod.yaml"):
        check(keep not in ignore and f"{keep}/" not in ignore, f".dockerignore: {keep} is needed by the build")


def run(argv: list[str]) -> None:
    check(len(argv) == 1, "usage: check_compose.py SERVICE_DIR")
    service = Path(argv[0]).resolve()
    cfg = service_config(service)
    doc = check_compose(service, cfg)
    print(f"compose {service / 'docker-compose.yaml'}: services {sorted(doc['services'])}: ok")
    check_prometheus(service, cfg)
    print(f"prometheus.yml: scrapes {cfg.name}:{cfg.probe_port}{cfg.metrics_path}: ok")
    check_dockerfile(service, cfg)
    print("Dockerfile and .dockerignore: ok")


if __name__ == "__main__":
    main(run)
