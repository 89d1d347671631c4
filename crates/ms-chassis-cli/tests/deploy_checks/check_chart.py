"""Checks a generated service's Helm chart (deploy/helm/<name>/) without a cluster.

    python check_chart.py SERVICE_DIR

There is no helm CLI and no Kubernetes cluster here, so the chart is checked the way a
cluster would first see it:
  * helm-python-sdk (Helm v4's Go SDK) lints it strictly (kube version 1.31) and renders it,
    with the default values and with every option on, for two release names;
  * every rendered object is validated by `kubernetes-validate --strict -k 1.31.0`: unknown
    fields are errors, and so is any WARN (an apiVersion Kubernetes 1.31 does not serve);
    the ServiceMonitor, a CRD that tool has no schema for, is checked field by field
    against the Prometheus Operator's documented API instead;
  * yamllint runs on the rendered output (duplicate keys), values.yaml and Chart.yaml;
  * the objects are asserted to agree with the service's own config (config.yaml with
    config.prod.yaml over it, read here independently of the chart's own parsing): probe
    paths and ports, the grace period against drain_delay + grace, the security context, the
    preStop sleep, the config checksum, the env, the mounts;
  * bad values are asserted to fail (the schema, and the chart's own `fail`s), and copies of
    the chart with a changed config (no management port, other durations) to follow it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

# No __pycache__ beside the checks, in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    LIVE_PATH,
    READY_PATH,
    STARTED_PATH,
    YAMLLINT_RENDERED,
    YAMLLINT_SOURCE,
    CheckFailed,
    ServiceConfig,
    check,
    duration_ms,
    duration_secs_ceil,
    kubernetes_validate,
    main,
    service_config,
    yamllint,
)

import helm_python as helm  # noqa: E402

KUBE_VERSION = "1.31.0"
NAMESPACE = "shop"
# The distroless nonroot user the image runs as (Dockerfile: USER 65532:65532).
UID = 65532
# A Fernet key in the PyMS format (urlsafe base64 of 32 bytes), made up for the test.
KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# The ServiceMonitor fields the Prometheus Operator's monitoring.coreos.com/v1 API
# documents (its CRD's openAPIV3Schema): anything else would be pruned or refused.
SERVICE_MONITOR_SPEC = {
    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "endpoints",
    "fallbackScrapeProtocol", "jobLabel", "keepDroppedTargets", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "namespaceSelector",
    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor", "podTargetLabels",
    "sampleLimit", "scrapeClass", "scrapeClassicHistograms", "scrapeProtocols", "selector",
    "selectorMechanism", "serviceDiscoveryRole", "targetLabels", "targetLimit",
}
SERVICE_MONITOR_ENDPOINT = {
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
    "metricRelabelings", "noProxy", "oauth2", "params", "path", "port", "proxyConnectHeader",
    "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme", "scrapeTimeout",
    "targetPort", "tlsConfig", "trackTimestampsStaleness",
}
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def all_on(name: str) -> dict:
    """Every option of the chart on, with the key given by content."""
    return {
        "replicaCount": 3,
        "image": {
            "repository": f"registry.example.com/shop/{name}",
            "digest": "sha256:" + "0123456789abcdef" * 4,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccount": {
            "create": True,
            "name": f"{name}-runtime",
            "annotations": {"example.com/role": "shop"},
        },
        "keyFile": {"content": KEY + "\n"},
        "tracing": {"endpoint": "http://otel-collector.observability:4317"},
        "env": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "envFrom": [{"configMapRef": {"name": "shared-env", "optional": True}}],
        "podAnnotations": {"example.com/team": "shop"},
        "podLabels": {"team": "shop"},
        "service": {"type": "LoadBalancer", "port": 80, "annotations": {"example.com/lb": "internal"}},
        "autoscaling": {
            "enabled": True,
            "minReplicas": 2,
            "maxReplicas": 6,
            "targetCPUUtilizationPercentage": 60,
            "targetMemoryUtilizationPercentage": 80,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
        "networkPolicy": {
            "enabled": True,
            "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
            "managementFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        },
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "5s",
            "labels": {"release": "kube-prometheus-stack"},
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            }
        ],
        "priorityClassName": "shop-high",
        "shutdown": {"preStopSleepSeconds": 3, "marginSeconds": 7},
    }


def all_on_existing_secret(name: str) -> dict:
    """Every option on, with the key from a Secret that exists."""
    values = all_on(name)
    values["keyFile"] = {"existingSecret": f"{name}-fernet", "existingSecretKey": "fernet.key"}
    return values


class Rendered:
    """One render: its objects by (kind, name), with their source text."""

    def __init__(self, label: str, files: dict[str, str], chart_files: dict[str, str]):
        self.label = label
        # The chart's files/ (config.yaml, config.prod.yaml), which the ConfigMap carries.
        self.chart_files = chart_files
        self.files = files
        self.docs: list[tuple[str, str, dict]] = []
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                continue
            for i, part in enumerate(re.split(r"(?m)^---\s*$", text)):
                doc = yaml.safe_load(part)
                if doc is None:
                    continue
                check(isinstance(doc, dict), f"{label}: {path} part {i} is not a mapping")
                self.docs.append((f"{path}#{i}", part, doc))

    def of_kind(self, kind: str) -> list[dict]:
        return [d for _, _, d in self.docs if d.get("kind") == kind]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        check(len(found) == 1, f"{self.label}: expected one {kind}, found {len(found)}")
        return found[0]

    def file(self, suffix: str) -> str:
        hits = [t for p, t in self.files.items() if p.endswith(suffix)]
        check(len(hits) == 1, f"{self.label}: no rendered {suffix}")
        return hits[0]


def lint(chart: Path, values: dict, label: str) -> None:
    report = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(
        not problems and not report.get("errors"),
        f"{label}: helm lint --strict: {json.dumps(problems + report.get('errors', []), indent=1)}",
    )


def render(chart: Path, values: dict, release: str, label: str) -> Rendered:
    with helm.Chart.load(str(chart)) as ch:
        files = ch.render(values, name=release, namespace=NAMESPACE, is_install=True)
    chart_files = {p.name: p.read_text(encoding="utf-8") for p in (chart / "files").iterdir()}
    return Rendered(label, files, chart_files)


def render_fails(chart: Path, values: dict, expect: str, label: str) -> None:
    """The render must fail, and its message must contain `expect`."""
    try:
        render(chart, values, "orders", label)
    except helm.HelmError as e:
        check(expect in str(e), f"{label}: the render failed, but not with {expect!r}: {e}")
        return
    raise CheckFailed(f"{label}: the render should have failed ({expect!r})")


def validate(r: Rendered) -> None:
    """Schemas and YAML lint for every rendered object."""
    yamllint({f"{r.label}/{p}": t for p, t in r.files.items() if not p.endswith("NOTES.txt")}, YAMLLINT_RENDERED)
    docs = [(label, text) for label, text, doc in r.docs if doc.get("kind") != "ServiceMonitor"]
    kubernetes_validate(docs, KUBE_VERSION)
    seen = set()
    for label, _, doc in r.docs:
        meta = doc.get("metadata") or {}
        name = meta.get("name", "")
        check(
            len(name) <= 63 and DNS_LABEL.match(name) is not None,
            f"{r.label}: {label}: {name!r} is not a DNS-1123 label of at most 63 characters",
        )
        check(meta.get("namespace") == NAMESPACE, f"{r.label}: {label}: not in the release namespace")
        key = (doc["apiVersion"], doc["kind"], name)
        check(key not in seen, f"{r.label}: {key} rendered twice")
        seen.add(key)
    for sm in r.of_kind("ServiceMonitor"):
        check_service_monitor(r, sm)


def check_service_monitor(r: Rendered, sm: dict) -> None:
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", f"{r.label}: ServiceMonitor apiVersion")
    check(set(sm) <= {"apiVersion", "kind", "metadata", "spec"}, f"{r.label}: ServiceMonitor top-level keys {set(sm)}")
    spec = sm["spec"]
    unknown = set(spec) - SERVICE_MONITOR_SPEC
    check(not unknown, f"{r.label}: ServiceMonitor spec has fields the API does not: {unknown}")
    check(set(spec["selector"]) <= {"matchLabels", "matchExpressions"}, f"{r.label}: ServiceMonitor selector")
    check(set(spec.get("namespaceSelector", {})) <= {"any", "matchNames"}, f"{r.label}: namespaceSelector")
    check(spec.get("endpoints"), f"{r.label}: ServiceMonitor has no endpoints")
    for ep in spec["endpoints"]:
        unknown = set(ep) - SERVICE_MONITOR_ENDPOINT
        check(not unknown, f"{r.label}: ServiceMonitor endpoint has fields the API does not: {unknown}")
        for key in ("interval", "scrapeTimeout"):
            if key in ep:
                check(
                    isinstance(ep[key], str) and PROMETHEUS_DURATION.match(ep[key]) is not None,
                    f"{r.label}: ServiceMonitor {key} {ep[key]!r} is not a Prometheus duration",
                )
        check(isinstance(ep.get("port"), str), f"{r.label}: ServiceMonitor endpoint port must be a Service port name")


def container_port(container: dict, name_or_number: object) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    for p in container.get("ports", []):
        if p.get("name") == name_or_number:
            return p["containerPort"]
    raise CheckFailed(f"container {container['name']} has no port named {name_or_number!r}")


def selects(selector: dict, labels: dict) -> bool:
    check(not selector.get("matchExpressions"), "selectors here use matchLabels only")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def check_objects(r: Rendered, cfg: ServiceConfig, values: dict, release: str) -> None:
    """What the rendered objects must say, given the service's config and the values."""
    label = r.label
    name = cfg.name
    fullname = release if name in release else f"{release}-{name}"
    merged_values = values

    dep = r.one("Deployment")
    check(dep["apiVersion"] == "apps/v1", f"{label}: Deployment apiVersion")
    check(dep["metadata"]["name"] == fullname, f"{label}: Deployment name {dep['metadata']['name']!r}, expected {fullname!r}")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    annotations = spec["template"]["metadata"].get("annotations") or {}
    check(selects(spec["selector"], pod_labels), f"{label}: the Deployment's selector does not select its pods")
    containers = pod["containers"]
    check(len(containers) == 1, f"{label}: expected one container")
    c = containers[0]

    # Ports: named, and the numbers the service listens on in the prod profile.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("http") == cfg.http_port, f"{label}: container port http {ports.get('http')} != server.port {cfg.http_port}")
    check(cfg.http_host == "0.0.0.0", f"config.prod.yaml: server.host is {cfg.http_host}: a pod must listen on 0.0.0.0")
    if cfg.management_port is not None:
        check(
            ports.get("management") == cfg.management_port,
            f"{label}: container port management {ports.get('management')} != server.management.port {cfg.management_port}",
        )
        check(cfg.management_host == "0.0.0.0", "config.prod.yaml: server.management.host must be 0.0.0.0 for the kubelet's probes")
        probe_port_name = "management"
    else:
        check("management" not in ports, f"{label}: a management port, but the config has none")
        probe_port_name = "http"
    check(all(p.get("protocol", "TCP") == "TCP" for p in c["ports"]), f"{label}: ports are TCP")

    # Probes: the chassis's paths, on the named port its endpoints are on.
    for probe, path in (("startupProbe", STARTED_PATH), ("livenessProbe", LIVE_PATH), ("readinessProbe", READY_PATH)):
        p = c.get(probe)
        check(p is not None, f"{label}: no {probe}")
        get = p.get("httpGet")
        check(get is not None and set(p) & {"exec", "tcpSocket", "grpc"} == set(), f"{label}: {probe} must be an httpGet probe")
        check(get["path"] == path, f"{label}: {probe} path {get['path']!r}, expected {path!r}")
        check(get["port"] == probe_port_name, f"{label}: {probe} port {get['port']!r}, expected the named port {probe_port_name!r}")
        check(container_port(c, get["port"]) == cfg.probe_port, f"{label}: {probe} is not on port {cfg.probe_port}")
        check(get.get("scheme", "HTTP") == "HTTP", f"{label}: {probe} scheme")
        # A check that hangs is cut at health.timeout and reported DOWN: the probe must wait
        # longer than that to see the answer rather than time out itself.
        health_timeout_ms = duration_ms((cfg.merged.get("health") or {}).get("timeout", "2s"))
        check(
            p.get("timeoutSeconds", 1) * 1000 > health_timeout_ms,
            f"{label}: {probe} timeoutSeconds {p.get('timeoutSeconds', 1)} is not above health.timeout ({health_timeout_ms} ms)",
        )
    check(c["livenessProbe"].get("successThreshold", 1) == 1, f"{label}: liveness successThreshold must be 1")
    check(c["startupProbe"].get("successThreshold", 1) == 1, f"{label}: startup successThreshold must be 1")

    # Shutdown: preStop sleep (the native action), then SIGTERM: drain_delay + grace.
    pre_stop = c["lifecycle"]["preStop"]
    check(set(pre_stop) == {"sleep"}, f"{label}: preStop must be the sleep action only (distroless has no `sleep` to exec), found {pre_stop}")
    sleep = pre_stop["sleep"]["seconds"]
    shutdown = merged_values.get("shutdown", {})
    check(sleep == shutdown.get("preStopSleepSeconds", 5), f"{label}: preStop sleep {sleep}s")
    grace_period = pod["terminationGracePeriodSeconds"]
    drain = duration_secs_ceil(f"{cfg.drain_delay_ms}ms")
    grace = duration_secs_ceil(f"{cfg.grace_ms}ms")
    check(
        grace_period > (cfg.shutdown_ms / 1000),
        f"{label}: terminationGracePeriodSeconds {grace_period} does not exceed drain_delay + grace ({cfg.shutdown_ms / 1000}s)",
    )
    expected = sleep + drain + grace + shutdown.get("marginSeconds", 5)
    check(
        grace_period == expected,
        f"{label}: terminationGracePeriodSeconds {grace_period}, expected preStop {sleep} + drain_delay {drain} + grace {grace} + margin = {expected}",
    )
    check(grace_period - sleep > cfg.shutdown_ms / 1000, f"{label}: after the preStop sleep, less than drain_delay + grace is left")

    # The restricted Pod Security Standard.
    psc = pod["securityContext"]
    check(psc.get("runAsNonRoot") is True, f"{label}: pod runAsNonRoot")
    check(psc.get("runAsUser") == UID and psc.get("runAsGroup") == UID, f"{label}: pod runAsUser/runAsGroup {UID}")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: pod seccompProfile RuntimeDefault")
    sc = c["securityContext"]
    check(sc.get("runAsNonRoot") is True, f"{label}: container runAsNonRoot")
    check(sc.get("runAsUser") == UID, f"{label}: container runAsUser {UID} (numeric, as in the image)")
    check(sc.get("readOnlyRootFilesystem") is True, f"{label}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, f"{label}: allowPrivilegeEscalation false")
    check(sc.get("privileged", False) is False, f"{label}: privileged")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}: capabilities drop ALL")
    check(not sc.get("capabilities", {}).get("add"), f"{label}: capabilities added")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: container seccompProfile RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{label}: the pod mounts a service account token")
    check(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), f"{label}: host namespaces")
    check(c["resources"].get("requests") and c["resources"].get("limits"), f"{label}: resources requests and limits")

    # Scheduling: the replicas spread over nodes, unless affinity is given.
    affinity = pod.get("affinity")
    preset = merged_values.get("podAntiAffinityPreset", "soft")
    if merged_values.get("affinity"):
        check(affinity == merged_values["affinity"], f"{label}: the given affinity is not used as is")
    elif preset:
        anti = (affinity or {}).get("podAntiAffinity", {})
        if preset == "hard":
            terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        else:
            terms = [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        check(len(terms) == 1, f"{label}: podAntiAffinity ({preset}) has {len(terms)} terms")
        check(terms[0]["topologyKey"] == "kubernetes.io/hostname", f"{label}: anti-affinity topologyKey")
        check(selects(terms[0]["labelSelector"], pod_labels), f"{label}: the anti-affinity term does not select the pods")
    else:
        check(affinity is None, f"{label}: affinity although the preset is off")

    # Env: the profile, the config and key paths, the pod IP.
    env = {e["name"]: e for e in c["env"]}
    check(env.get("MS_PROFILE", {}).get("value") == "prod", f"{label}: MS_PROFILE=prod")
    pod_ip = env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {})
    check(pod_ip.get("fieldPath") == "status.podIP", f"{label}: POD_IP from the downward API (status.podIP)")
    config_dir = env.get("MS_CONFIG_FILE", {}).get("value")
    key_file = env.get("MS_KEY_FILE", {}).get("value")
    check(config_dir == f"/etc/{name}", f"{label}: MS_CONFIG_FILE {config_dir!r}, expected /etc/{name} (as in the Dockerfile)")
    check(key_file == f"/etc/{name}/secret/key.key", f"{label}: MS_KEY_FILE {key_file!r}")
    check(len(c["env"]) == len(env), f"{label}: an env variable is set twice")
    endpoint = merged_values.get("tracing", {}).get("endpoint")
    if endpoint:
        check(env.get("MS__TRACING__ENDPOINT", {}).get("value") == endpoint, f"{label}: MS__TRACING__ENDPOINT")
    check(
        not [n for n in env if n.startswith("MS__SERVER__")],
        f"{label}: an MS__SERVER__* override would move the ports the chart derives from the config",
    )

    # The config: the ConfigMap carries the service's files, mounted where MS_CONFIG_FILE points.
    cm = r.one("ConfigMap")
    check(set(cm["data"]) == {"config.yaml", "config.prod.yaml"}, f"{label}: ConfigMap keys {set(cm['data'])}")
    for f, text in cm["data"].items():
        check(
            text == r.chart_files[f],
            f"{label}: the ConfigMap's {f} is not the chart's files/{f}",
        )
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(config_dir in mounts, f"{label}: nothing is mounted at MS_CONFIG_FILE {config_dir}")
    config_volume = volumes[mounts[config_dir]["name"]]
    check(mounts[config_dir].get("readOnly") is True, f"{label}: the config mount is writable")
    sources = config_volume.get("projected", {}).get("sources", [])
    cm_sources = [s["configMap"] for s in sources if "configMap" in s]
    check(
        [s["name"] for s in cm_sources] == [cm["metadata"]["name"]],
        f"{label}: the volume at {config_dir} does not carry the ConfigMap {cm['metadata']['name']}",
    )
    # The checksum: sha256 of the rendered ConfigMap, as `include ... | sha256sum` makes it.
    cm_text = r.file("templates/configmap.yaml")
    check(
        annotations.get("checksum/config") == hashlib.sha256(cm_text.encode()).hexdigest(),
        f"{label}: checksum/config is not the sha256 of the rendered ConfigMap",
    )

    # The key: a Secret with key.key, or an existing one, projected at MS_KEY_FILE.
    secret_sources = [s["secret"] for s in sources if "secret" in s]
    key_values = merged_values.get("keyFile", {})
    secrets = r.of_kind("Secret")
    if key_values.get("content"):
        check(len(secrets) == 1, f"{label}: keyFile.content given, but {len(secrets)} Secrets")
        s = secrets[0]
        check(
            base64.b64decode(s["data"]["key.key"]).decode() == KEY + "\n",
            f"{label}: the Secret's key.key is not the key given",
        )
        check(
            secret_sources == [{"name": s["metadata"]["name"], "items": [{"key": "key.key", "path": "secret/key.key"}]}],
            f"{label}: the key Secret is not projected at secret/key.key: {secret_sources}",
        )
        check("checksum/key" in annotations, f"{label}: no checksum/key annotation")
    elif key_values.get("existingSecret"):
        check(not secrets, f"{label}: a Secret rendered although keyFile.existingSecret is given")
        check(
            secret_sources
            == [{"name": key_values["existingSecret"], "items": [{"key": key_values.get("existingSecretKey", "key.key"), "path": "secret/key.key"}]}],
            f"{label}: the existing Secret is not projected at secret/key.key: {secret_sources}",
        )
    else:
        check(not secrets and not secret_sources, f"{label}: a key is mounted though none was given")

    # /tmp: the one writable place, in memory.
    check("/tmp" in mounts, f"{label}: no /tmp mount under a read-only root filesystem")
    check("emptyDir" in volumes[mounts["/tmp"]["name"]], f"{label}: /tmp is not an emptyDir")

    # Prometheus annotations, on by default, pointing at the management port's /metrics.
    if merged_values.get("metricsAnnotations", True) and cfg.metrics_enabled:
        check(annotations.get("prometheus.io/scrape") == "true", f"{label}: prometheus.io/scrape")
        check(annotations.get("prometheus.io/port") == str(cfg.probe_port), f"{label}: prometheus.io/port {annotations.get('prometheus.io/port')!r}")
        check(annotations.get("prometheus.io/path") == cfg.metrics_path, f"{label}: prometheus.io/path")

    # The Service: http only, to the named port, selecting the pods.
    services = {s["metadata"]["name"]: s for s in r.of_kind("Service")}
    svc = services.get(fullname)
    check(svc is not None, f"{label}: no Service {fullname}")
    check(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels), f"{label}: the Service does not select the pods")
    check([p["targetPort"] for p in svc["spec"]["ports"]] == ["http"], f"{label}: the Service must expose only the http port")
    check(svc["spec"]["ports"][0]["port"] == merged_values.get("service", {}).get("port", cfg.http_port), f"{label}: Service port")

    # Autoscaling: exactly one HPA, autoscaling/v2, owning the replica count.
    hpas = r.of_kind("HorizontalPodAutoscaler")
    if merged_values.get("autoscaling", {}).get("enabled"):
        check(len(hpas) == 1, f"{label}: {len(hpas)} HPAs; exactly one per Deployment")
        hpa = hpas[0]
        check(hpa["apiVersion"] == "autoscaling/v2", f"{label}: HPA apiVersion {hpa['apiVersion']}")
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": fullname}, f"{label}: HPA target {ref}")
        check("replicas" not in spec, f"{label}: the Deployment sets replicas although the HPA owns them")
        check(hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], f"{label}: HPA min > max")
        for m in hpa["spec"]["metrics"]:
            check(m["resource"]["name"] in c["resources"]["requests"], f"{label}: HPA on {m['resource']['name']}, which has no request")
    else:
        check(not hpas, f"{label}: an HPA although autoscaling is off")
        check(spec.get("replicas") == merged_values.get("replicaCount", 2), f"{label}: replicas")

    # PDB: policy/v1, selecting the pods.
    pdbs = r.of_kind("PodDisruptionBudget")
    if merged_values.get("podDisruptionBudget", {}).get("enabled", True):
        check(len(pdbs) == 1, f"{label}: {len(pdbs)} PodDisruptionBudgets")
        check(pdbs[0]["apiVersion"] == "policy/v1", f"{label}: PDB apiVersion {pdbs[0]['apiVersion']}")
        check(selects(pdbs[0]["spec"]["selector"], pod_labels), f"{label}: the PDB does not select the pods")
        check(len(set(pdbs[0]["spec"]) & {"minAvailable", "maxUnavailable"}) == 1, f"{label}: PDB needs exactly one bound")

    # NetworkPolicy: off by default; on, it admits both named ports.
    nps = r.of_kind("NetworkPolicy")
    if merged_values.get("networkPolicy", {}).get("enabled"):
        check(len(nps) == 1, f"{label}: {len(nps)} NetworkPolicies")
        np = nps[0]
        check(selects(np["spec"]["podSelector"], pod_labels), f"{label}: the NetworkPolicy does not select the pods")
        admitted = [p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]]
        check(set(admitted) == set(ports), f"{label}: the NetworkPolicy admits {admitted}, the pod listens on {sorted(ports)}")
    else:
        check(not nps, f"{label}: a NetworkPolicy although it is off")

    # ServiceMonitor: off by default; on, it scrapes the management Service's port.
    sms = r.of_kind("ServiceMonitor")
    if merged_values.get("serviceMonitor", {}).get("enabled"):
        check(len(sms) == 1, f"{label}: {len(sms)} ServiceMonitors")
        sm = sms[0]
        targets = [s for s in services.values() if selects(sm["spec"]["selector"], s["metadata"]["labels"])]
        check(len(targets) == 1, f"{label}: the ServiceMonitor selects {len(targets)} Services")
        target = targets[0]
        check(target["spec"]["type"] == "ClusterIP", f"{label}: the management Service must be ClusterIP")
        check(selects({"matchLabels": target["spec"]["selector"]}, pod_labels), f"{label}: the management Service does not select the pods")
        ep = sm["spec"]["endpoints"][0]
        sp = {p["name"]: p for p in target["spec"]["ports"]}
        check(ep["port"] in sp, f"{label}: the ServiceMonitor's port {ep['port']!r} is not a port of {target['metadata']['name']}")
        check(container_port(c, sp[ep["port"]]["targetPort"]) == cfg.management_port, f"{label}: the ServiceMonitor does not scrape the management port")
        check(ep["path"] == cfg.metrics_path, f"{label}: ServiceMonitor path {ep['path']!r}")
        check(NAMESPACE in sm["spec"]["namespaceSelector"]["matchNames"], f"{label}: ServiceMonitor namespaceSelector")
        for k, v in merged_values["serviceMonitor"].get("labels", {}).items():
            check(sm["metadata"]["labels"].get(k) == v, f"{label}: ServiceMonitor label {k}")
    else:
        check(not sms, f"{label}: a ServiceMonitor although it is off")
        check(len(services) == 1, f"{label}: {len(services)} Services")

    notes = r.file("NOTES.txt")
    check(fullname in notes, f"{label}: NOTES.txt does not name the release's objects")


def copy_chart(chart: Path, tmp: Path, label: str, edit) -> Path:
    """A copy of the chart whose files/config.prod.yaml (a dict) went through `edit`."""
    dest = tmp / label / chart.name
    shutil.copytree(chart, dest)
    prod = dest / "files" / "config.prod.yaml"
    doc = yaml.safe_load(prod.read_text()) or {}
    edit(doc)
    prod.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def run(argv: list[str]) -> None:
    check(len(argv) == 1, "usage: check_chart.py SERVICE_DIR")
    service = Path(argv[0]).resolve()
    cfg = service_config(service)
    chart = service / "deploy" / "helm" / cfg.name
    check(chart.is_dir(), f"no chart at {chart}")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    check(meta.get("apiVersion") == "v2" and meta.get("name") == cfg.name, f"Chart.yaml: apiVersion v2, name {cfg.name}")
    check(meta.get("type", "application") == "application", "Chart.yaml: type")
    check("kubeVersion" in meta, "Chart.yaml: kubeVersion (the preStop sleep action needs 1.30+)")
    # The chart's config files start as the service's own.
    for f in ("config.yaml", "config.prod.yaml"):
        check(
            (chart / "files" / f).read_bytes() == (service / f).read_bytes(),
            f"{chart}/files/{f} differs from the service's {f}",
        )
    yamllint(
        {str(chart / f): (chart / f).read_text() for f in ("Chart.yaml", "values.yaml")},
        YAMLLINT_SOURCE,
    )
    schema = json.loads((chart / "values.schema.json").read_text())
    check(schema.get("additionalProperties") is False, "values.schema.json: unknown top-level values must be refused")

    with helm.Chart.load(str(chart)) as ch:
        defaults = ch.values
    scenarios = [
        ("default", {}, cfg.name),
        ("hard-anti-affinity-other-release", {"podAntiAffinityPreset": "hard"}, "prod"),
        ("all-on-key", all_on(cfg.name), cfg.name),
        ("all-on-existing-secret", all_on_existing_secret(cfg.name), "prod"),
    ]
    checked = []
    for label, values, release in scenarios:
        lint(chart, values, label)
        r = render(chart, values, release, label)
        validate(r)
        effective = merge_values(defaults, values)
        check_objects(r, cfg, effective, release)
        checked.append(f"{label} ({len(r.docs)} objects)")

    # Bad values fail, with a message that says why.
    bad = [
        ("unknown-value", {"replicas": 3}, "additional properties 'replicas' not allowed"),
        ("bad-key", {"keyFile": {"content": "not-a-fernet-key"}}, "keyFile/content"),
        ("key-twice", {"keyFile": {"content": KEY, "existingSecret": "x"}}, "not both"),
        ("bad-pull-policy", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ("hpa-no-metric", {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}, "targetCPUUtilizationPercentage or"),
        ("pdb-no-bound", {"podDisruptionBudget": {"maxUnavailable": None}}, "minAvailable or maxUnavailable"),
    ]
    for label, values, expect in bad:
        render_fails(chart, values, expect, label)
    # The schema is also what `helm lint` checks.
    report = helm.lint(str(chart), {"replicas": 3}, strict=True, kube_version=f"v{KUBE_VERSION}")
    check(any(m.get("severity", 0) >= 3 for m in report["messages"]), "helm lint accepts an unknown value")

    # Copies of the chart with another config: the chart follows the config.
    with tempfile.TemporaryDirectory(prefix="chart-variants-") as tmp:
        tmp = Path(tmp)

        def no_management(doc):
            doc.setdefault("server", {}).pop("management", None)

        variant = copy_chart(chart, tmp, "no-management", no_management)
        vcfg = service_config(service, prod=variant / "files" / "config.prod.yaml")
        check(vcfg.management_port is None, "the variant still has a management port")
        r = render(variant, {}, cfg.name, "no-management")
        validate(r)
        check_objects(r, vcfg, merge_values(defaults, {}), cfg.name)
        render_fails(variant, {"serviceMonitor": {"enabled": True}}, "no server.management port", "no-management+serviceMonitor")
        checked.append("no-management (probes on http)")

        def durations(doc):
            doc.setdefault("server", {})["shutdown"] = {"drain_delay": "1m 30s", "grace": "1500ms"}

        variant = copy_chart(chart, tmp, "durations", durations)
        vcfg = service_config(service, prod=variant / "files" / "config.prod.yaml")
        r = render(variant, {}, cfg.name, "durations")
        validate(r)
        check_objects(r, vcfg, merge_values(defaults, {}), cfg.name)
        period = r.one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        check(period == 5 + 90 + 2 + 5, f"durations: terminationGracePeriodSeconds {period}, expected 102")
        checked.append("durations 1m 30s + 1500ms -> 102s")

        def bad_duration(doc):
            doc.setdefault("server", {})["shutdown"] = {"grace": "soon"}

        variant = copy_chart(chart, tmp, "bad-duration", bad_duration)
        render_fails(variant, {}, "server.shutdown.grace", "bad-duration")

        # A config change changes checksum/config, so the pods roll.
        def other_level(doc):
            doc.setdefault("logging", {})["level"] = "warn"

        variant = copy_chart(chart, tmp, "config-change", other_level)
        before = render(chart, {}, cfg.name, "default").one("Deployment")
        after = render(variant, {}, cfg.name, "config-change").one("Deployment")
        check(
            before["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            != after["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
            "a config change leaves checksum/config unchanged",
        )

    print(f"chart {chart}: lint --strict, kubernetes-validate --strict {KUBE_VERSION}, yamllint: ok")
    for c in checked:
        print(f"  {c}")
    print(f"  {len(bad) + 2} bad inputs refused; config change rolls the pods")


def merge_values(defaults: dict, overrides: dict) -> dict:
    """The chart's defaults with the overrides over them; a null removes a key (as Helm does)."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


if __name__ == "__main__":
    main(run)
