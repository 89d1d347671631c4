"""What check_chart.py and check_compose.py share: the generated service's config as the
chassis reads it in the prod profile, config durations, yamllint, and failing loudly.

The config is read here independently of the chart's own parsing (its _helpers.tpl), so
the two can disagree, and a disagreement fails the check.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

# The chassis's defaults for the keys the deploy files depend on (crates/ms-chassis:
# server/config.rs, metrics/config.rs).
DEFAULT_HTTP_PORT = 8080
DEFAULT_MANAGEMENT_PORT = 9090
DEFAULT_DRAIN_DELAY = "5s"
DEFAULT_GRACE = "30s"
DEFAULT_METRICS_PATH = "/metrics"

# The chassis's Kubernetes probe paths (DESIGN.md §4, Health).
STARTED_PATH = "/health/started"
LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"

# Rendered Helm output: long lines and no `---` document start are normal there, and
# toYaml writes sequences unindented under their key; everything else yamllint knows
# (duplicate keys above all, which no schema check sees) stays on.
YAMLLINT_RENDERED = """
extends: default
rules:
  line-length: disable
  document-start: disable
  indentation: {spaces: consistent, indent-sequences: whatever}
  comments: {min-spaces-from-content: 1}
  key-duplicates: enable
"""

# Hand-written YAML (values.yaml, Chart.yaml, compose, prometheus.yml): yamllint's
# defaults, with lines up to 120 and no required `---`.
YAMLLINT_SOURCE = """
extends: default
rules:
  line-length: {max: 120}
  document-start: disable
  key-duplicates: enable
"""


class CheckFailed(Exception):
    """A check that did not hold; its message says which and why."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def deep_merge(base: dict, over: dict) -> dict:
    """`over` layered on `base`, as the chassis layers a profile file on config.yaml."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


_UNITS_MS = {
    "ms": 1, "msec": 1,
    "s": 1000, "sec": 1000, "secs": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000,
    "d": 86_400_000,
}


def duration_ms(text: object) -> int:
    """A config duration ("5s", "250ms", "1m 30s", "0") in milliseconds."""
    s = str(text).strip()
    if s == "0":
        return 0
    parts = re.findall(r"([0-9]+)\s*([a-z]+)", s)
    check(
        bool(parts) and re.fullmatch(r"(\s*[0-9]+\s*[a-z]+\s*)+", s) is not None,
        f"{text!r} is not a duration",
    )
    total = 0
    for count, unit in parts:
        check(unit in _UNITS_MS, f"{text!r}: unknown unit {unit!r}")
        total += int(count) * _UNITS_MS[unit]
    return total


def duration_secs_ceil(text: object) -> int:
    return -(-duration_ms(text) // 1000)


@dataclass
class ServiceConfig:
    """The prod profile's effective values the deploy files must agree with."""

    name: str
    merged: dict
    http_host: str
    http_port: int
    management_host: str | None
    management_port: int | None
    drain_delay_ms: int
    grace_ms: int
    metrics_enabled: bool
    metrics_path: str

    @property
    def probe_port(self) -> int:
        """Where the chassis endpoints are: the management port, when there is one."""
        return self.management_port if self.management_port is not None else self.http_port

    @property
    def shutdown_ms(self) -> int:
        return self.drain_delay_ms + self.grace_ms


def load_yaml(path: Path) -> object:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def service_config(service_dir: Path, base: Path | None = None, prod: Path | None = None) -> ServiceConfig:
    """config.yaml with config.prod.yaml over it (MS_PROFILE=prod), as the chassis reads it."""
    base_doc = load_yaml(base or service_dir / "config.yaml") or {}
    prod_doc = load_yaml(prod or service_dir / "config.prod.yaml") or {}
    check(isinstance(base_doc, dict) and isinstance(prod_doc, dict), "config files must be mappings")
    merged = deep_merge(base_doc, prod_doc)
    server = merged.get("server") or {}
    management = server.get("management")
    shutdown = server.get("shutdown") or {}
    metrics = merged.get("metrics") or {}
    name = (merged.get("service") or {}).get("name")
    check(isinstance(name, str) and name, "config.yaml has no service.name")
    return ServiceConfig(
        name=name,
        merged=merged,
        http_host=str(server.get("host", "127.0.0.1")),
        http_port=int(server.get("port", DEFAULT_HTTP_PORT)),
        management_host=None if management is None else str(management.get("host", "127.0.0.1")),
        management_port=None if management is None else int(management.get("port", DEFAULT_MANAGEMENT_PORT)),
        drain_delay_ms=duration_ms(shutdown.get("drain_delay", DEFAULT_DRAIN_DELAY)),
        grace_ms=duration_ms(shutdown.get("grace", DEFAULT_GRACE)),
        metrics_enabled=bool(metrics.get("enabled", True)),
        metrics_path=str(metrics.get("path", DEFAULT_METRICS_PATH)),
    )


def yamllint(texts: dict[str, str], config: str) -> None:
    """yamllint every text (label -> YAML); any warning or error fails, naming the label."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(config)
    problems = []
    for label, text in texts.items():
        for p in linter.run(text, conf):
            problems.append(f"{label}:{p.line}:{p.column}: [{p.level}] {p.message} ({p.rule})")
    check(not problems, "yamllint:\n  " + "\n  ".join(problems))


def kubernetes_validate(documents: list[tuple[str, str]], version: str) -> list[str]:
    """Runs `kubernetes-validate --strict -k VERSION` on (label, YAML text) documents, one
    file each. It exits 0 on a WARN (an unknown or removed apiVersion/kind), so any line that
    is not a pass is a failure. Returns its pass lines."""
    exe = Path(sys.executable).with_name("kubernetes-validate")
    check(exe.exists(), f"{exe} not found: kubernetes-validate is not installed in this venv")
    with tempfile.TemporaryDirectory(prefix="kv-") as tmp:
        files = []
        for i, (label, text) in enumerate(documents):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
            path = Path(tmp) / f"{i:02d}-{safe}.yaml"
            path.write_text(text, encoding="utf-8")
            files.append(str(path))
        run = subprocess.run(
            [str(exe), "--strict", "-k", version, *files],
            capture_output=True, text=True, check=False,
        )
    lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
    bad = [l for l in lines if not l.startswith("INFO") or "WARN" in l or "ERROR" in l]
    check(
        run.returncode == 0 and not bad and len(lines) >= len(documents),
        f"kubernetes-validate --strict -k {version} (exit {run.returncode}, {len(documents)} objects):\n  "
        + "\n  ".join(bad or lines),
    )
    return lines


def main(run) -> None:
    """Runs `run(argv)`; a failed check prints FAIL and exits 1."""
    try:
        run(sys.argv[1:])
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
