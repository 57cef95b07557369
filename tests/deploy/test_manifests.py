"""deploy/kubernetes: schema validation with kubeconform (the Kubernetes schemas of two releases, and the
Prometheus Operator's CRDs), then the relations between the objects that no schema sees: probes on a
declared port, the Service's selector on the pods, the ServiceMonitor on the Service's `metrics` port,
the HPA on the Deployment and on the adapter's metric, and the stop timing."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_support import (
    DEPLOY,
    KUBERNETES,
    crd_files,
    crd_schemas,
    kubernetes_schema_dir,
    kustomize,
    load_docs,
    only,
    pod_spec,
    schema_file_name,
    standalone_schema,
    tool,
)

# The oldest Kubernetes the manifests are meant for (autoscaling/v2, policy/v1, startup probes: all GA well
# before it) and the newest that kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES)


@pytest.fixture(scope="module")
def adapter_rules() -> list[dict[str, Any]]:
    (cm,) = load_docs(KUBERNETES / "prometheus-adapter" / "adapter-config.yaml")
    return yaml.safe_load(cm["data"]["config.yaml"])["rules"]  # type: ignore[no-any-return]


def all_manifest_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return objects + load_docs(KUBERNETES / "prometheus-adapter" / "adapter-config.yaml")


def kubeconform(docs: list[dict[str, Any]], schemas: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    manifest = tmp / "manifests.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-output", "json",
         "-schema-location", str(schemas / "{{ .ResourceKind }}{{ .KindSuffix }}.json"), str(manifest)],
        capture_output=True, text=True, timeout=60)


def schema_dir(docs: list[dict[str, Any]], version: str, out: Path) -> Path:
    """Only the schemas the manifests need (each is ~1.5 MB once standalone)."""
    out.mkdir(parents=True, exist_ok=True)
    k8s = kubernetes_schema_dir(version)
    # Only the CRDs of kinds in use (the whole set takes seconds to parse): monitoring.coreos.com_<plural>.yaml
    plurals = {f"_{d['kind'].lower()}s.yaml" for d in docs}
    crds = {name: schema for f in crd_files() if any(f.name.endswith(p) for p in plurals)
            for crd in load_docs(f) for name, schema in crd_schemas(crd)}
    for doc in docs:
        name = schema_file_name(doc["apiVersion"], doc["kind"])
        if name in crds:
            (out / name).write_text(json.dumps(crds[name]))
        elif (k8s / name).is_file():
            (out / name).write_text(json.dumps(standalone_schema(k8s, name)))
    return out


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubeconform_accepts_every_manifest(objects: list[dict[str, Any]], version: str, tmp_path: Path) -> None:
    docs = all_manifest_objects(objects)
    run = kubeconform(docs, schema_dir(docs, version, tmp_path / "schemas"), tmp_path)
    report = json.loads(run.stdout)
    assert run.returncode == 0, json.dumps(report["resources"], indent=1) + run.stderr
    summary = report["summary"]
    # Every object validated against a schema: none skipped for want of one.
    assert summary["valid"] == len(docs) and summary["skipped"] == 0, summary
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
            "PrometheusRule", "ConfigMap"} <= kinds


def test_kubeconform_rejects_broken_manifests(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    """The validation above can fail: a misspelt field, a wrong type and a bad CRD field are each caught."""
    docs = all_manifest_objects(objects)
    schemas = schema_dir(docs, KUBERNETES_VERSIONS[-1], tmp_path / "schemas")
    deployment = json.loads(json.dumps(only(docs, "Deployment")))
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/_ready", "port": 9000}}
    service = json.loads(json.dumps(only(docs, "Service")))
    service["spec"]["ports"][0]["port"] = "eighty"
    monitor = json.loads(json.dumps(only(docs, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "15s"  # the field is `interval`
    for broken in (deployment, service, monitor):
        run = kubeconform([broken], schemas, tmp_path)
        assert run.returncode != 0, f"kubeconform accepted a broken {broken['kind']}"
        assert json.loads(run.stdout)["summary"]["invalid"] == 1


def test_kustomize_renders_the_same_objects(objects: list[dict[str, Any]]) -> None:
    """The tests read the manifests through deploy_support.kustomize(); the real kustomize (kubectl's) agrees."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (optional: deploy_support.kustomize renders the same subset)")
    out = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    real = [d for d in yaml.safe_load_all(out) if d]

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    assert sorted(map(key, real)) == sorted(map(key, objects))
    ours = {key(o): o for o in objects}
    for obj in real:
        assert obj == ours[key(obj)], f"{key(obj)} differs from the real kustomize's rendering"


def test_probes_and_ports(objects: list[dict[str, Any]]) -> None:
    spec = pod_spec(only(objects, "Deployment"))
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    def probe_port(probe: dict[str, Any]) -> int:
        port = probe["httpGet"]["port"]
        assert port in ports or port in ports.values(), f"probe port {port!r} is not a container port"
        return int(ports.get(port, port))

    ops = ports["metrics"]
    for probe, path in (("livenessProbe", "/_health"), ("readinessProbe", "/_ready"), ("startupProbe", "/_health")):
        assert probe_port(container[probe]) == ops, probe
        assert container[probe]["httpGet"]["path"] == path, probe
    # covet listens where the ports say: the app on --port, the operations endpoints on --ops-port.
    args = container["args"]
    assert int(args[args.index("--port") + 1]) == ports["http"]
    assert int(args[args.index("--ops-port") + 1]) == ops
    # The probes and Prometheus connect to the pod's IP; covet's operations listener defaults to 127.0.0.1.
    assert args[args.index("--ops-host") + 1] in {"0.0.0.0", "::"}
    assert "--workers" not in args, "a --workers flag would beat COVET_WORKERS (from the CPU limit)"
    env = {e["name"]: e for e in container["env"]}
    source = env["COVET_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu" and source["containerName"] == container["name"]
    assert "cpu" in container["resources"]["limits"] and "memory" in container["resources"]["limits"]


def test_pods_run_unprivileged(objects: list[dict[str, Any]]) -> None:
    spec = pod_spec(only(objects, "Deployment"))
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # The read-only root filesystem leaves /tmp to an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_stop_timing(objects: list[dict[str, Any]]) -> None:
    """preStop sleep + covet's graceful shutdown + the master's 5 s kill margin (docs/operations.md,
    Restarts) must end before the kubelet's SIGKILL."""
    spec = pod_spec(only(objects, "Deployment"))
    (container,) = spec["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    env = {e["name"]: e.get("value") for e in container["env"]}
    m = re.fullmatch(r"(\d+)s", env["COVET_TIMEOUT_GRACEFUL_SHUTDOWN"])
    assert m, "COVET_TIMEOUT_GRACEFUL_SHUTDOWN: write it in seconds (e.g. 20s)"
    graceful = float(m.group(1))
    assert pre_stop >= 5, "endpoints take a few seconds to drop the pod everywhere"
    assert pre_stop + graceful + 5 < spec["terminationGracePeriodSeconds"]


def test_service_selects_the_pods(objects: list[dict[str, Any]]) -> None:
    deployment, service = only(objects, "Deployment"), only(objects, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (container,) = pod_spec(deployment)["containers"]
    container_ports = {p["name"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_servicemonitor_scrapes_the_metrics_port(objects: list[dict[str, Any]]) -> None:
    service, monitor = only(objects, "Service"), only(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/_metrics"
    # The alerts select job="covet": the job label comes from the Service label jobLabel names.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "covet"
    rules = only(objects, "PrometheusRule")
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            assert 'job="covet"' in rule["expr"], rule["alert"]


def test_hpa_scales_the_deployment_on_the_adapter_metric(objects: list[dict[str, Any]],
                                                          adapter_rules: list[dict[str, Any]]) -> None:
    hpa, deployment = only(objects, "HorizontalPodAutoscaler"), only(objects, "Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (deployment["kind"], deployment["metadata"]["name"])
    pdb = only(objects, "PodDisruptionBudget")
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"], "a drain would take the last pod"
    (pods_metric,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    (rule,) = adapter_rules
    # The adapter names the metric by `name.as`, or by the series name that `matches` rewrites.
    series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"]).group(0)  # type: ignore[union-attr]
    assert re.fullmatch(rule["name"]["matches"], series)
    exposed = re.sub(rule["name"]["matches"], rule["name"]["as"], series)
    assert pods_metric["metric"]["name"] == exposed == "http_server_requests_per_second"
    # The HPA asks per pod: the adapter must map the pod and namespace labels to those resources.
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}


def test_grafana_dashboard_configmap_is_the_dashboard(objects: list[dict[str, Any]]) -> None:
    cm = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "covet-grafana-dashboard"]
    assert len(cm) == 1 and cm[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm[0]["data"]["covet.json"]) == json.loads((DEPLOY / "grafana" / "covet.json").read_text())
