"""Shared helpers of the deploy/ tests: the repository's files, the external checkers (kubeconform, promtool)
and the metric contract that the dashboard, the alerts and the adapter rule may use."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# Where scripts/setup.sh installs the Go-built tools and the Prometheus Operator's CRDs (scripts/deploy-tools.sh).
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covetpy"
# scripts/test.sh sets it: a missing checker then fails the test instead of skipping it.
REQUIRE_TOOLS = os.environ.get("COVET_REQUIRE_DEPLOY_TOOLS") == "1"


def tool(name: str) -> str:
    """The path of a checker: on PATH, else in the cache scripts/deploy-tools.sh installs into."""
    found = shutil.which(name) or (str(CACHE / "bin" / name) if (CACHE / "bin" / name).is_file() else None)
    if found is None:
        message = f"{name} is not installed: run scripts/setup.sh (it runs scripts/deploy-tools.sh)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return found


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- kustomize, the part this repository uses ------------------------------------------------------------

KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "images", "configMapGenerator"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize directory` renders, for the fields deploy/ uses (resources, images,
    configMapGenerator with disableNameSuffixHash); another field fails loudly rather than being ignored.
    test_manifests.py compares this with the real kustomize when kubectl is installed."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - KUSTOMIZE_FIELDS
    assert not unknown, f"{directory}/kustomization.yaml uses {sorted(unknown)}: teach tests/deploy/deploy_support.py"
    objects: list[dict[str, Any]] = []
    for gen in k.get("configMapGenerator", []):
        options = gen.get("options", {})
        assert options.get("disableNameSuffixHash"), f"{directory}: a generated ConfigMap needs a stable name"
        objects.append({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": gen["name"], "labels": dict(options.get("labels", {}))},
            "data": {Path(f).name: (directory / f).read_text() for f in gen["files"]},
        })
    for entry in k.get("resources", []):
        target = (directory / entry).resolve()
        objects.extend(kustomize(target) if target.is_dir() else load_docs(target))
    for image in k.get("images", []):
        for obj in objects:
            for c in pod_spec(obj).get("containers", []) if obj["kind"] == "Deployment" else []:
                name, _, _tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return objects


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# ---- JSON schemas for kubeconform --------------------------------------------------------------------------

def kubernetes_schema_dir(version: str) -> Path:
    """The strict Kubernetes JSON schemas of one release, from the kubernetes-validate package (PyPI; made
    from the Kubernetes OpenAPI documents). Its per-kind files point into one _definitions.json by an
    absolute "/api/..." reference that only its own resolver understands; kubeconform wants standalone
    files, so standalone_schema() inlines the definitions."""
    try:
        import kubernetes_validate
    except ImportError:
        message = "kubernetes-validate is not installed (requirements-dev.txt)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    d = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    assert d.is_dir(), f"kubernetes-validate has no schemas for Kubernetes {version}"
    return d


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("/api/_definitions.json#"):
                value = value[len("/api/_definitions.json"):]
            out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def standalone_schema(source: Path, file_name: str) -> dict[str, Any]:
    schema = json.loads((source / file_name).read_text())
    definitions = json.loads((source / "_definitions.json").read_text())
    out = _rewrite_refs(schema)
    out["$defs"] = definitions["$defs"]
    return out  # type: ignore[no-any-return]


def schema_file_name(api_version: str, kind: str) -> str:
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json: deployment-apps-v1.json, service-v1.json,
    servicemonitor-monitoring-v1.json."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def crd_files() -> list[Path]:
    d = CACHE / "prometheus-operator-crd"
    files = sorted(d.glob("monitoring.coreos.com_*.yaml")) if d.is_dir() else []
    if not files:
        message = f"the Prometheus Operator CRDs are not in {d}: run scripts/setup.sh (scripts/deploy-tools.sh)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return files


def crd_schemas(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, JSON schema) for each served version of a CustomResourceDefinition, strict as the
    built-in ones: an object schema with properties accepts no other field (unless the CRD says it
    preserves unknown fields), and x-kubernetes-int-or-string becomes a string-or-integer."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for v in crd["spec"]["versions"]:
        if not v.get("served", True):
            continue
        yield schema_file_name(f"{group}/{v['name']}", kind), _strict(copy.deepcopy(v["schema"]["openAPIV3Schema"]))


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [{"type": "string"}, {"type": "integer"}]
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


# ---- the metric contract (what covet's GET /_metrics exposes; docs/operations.md's metrics reference) ------

HISTOGRAMS = {
    "http_server_request_duration_seconds": {"http_request_method", "url_scheme", "http_route",
                                             "http_response_status_code", "network_protocol_version",
                                             "error_type"},
    "http_server_request_body_size_bytes": {"http_request_method", "url_scheme", "http_route",
                                            "http_response_status_code", "network_protocol_version"},
    "http_server_response_body_size_bytes": {"http_request_method", "url_scheme", "http_route",
                                             "http_response_status_code", "network_protocol_version"},
    # The Python runtime (covet/server/runtime_metrics.py).
    "covet_event_loop_lag_seconds": set(),
    "covet_gil_wait_seconds": set(),
    "python_gc_pause_seconds": {"generation"},
}
SERIES = {
    "http_server_active_requests": {"http_request_method", "url_scheme"},
    "covet_connections_open": set(),
    "covet_connections_accepted_total": set(),
    "covet_connections_refused_total": {"reason"},
    "covet_tls_handshakes_total": {"result"},
    "covet_http2_streams_total": set(),
    "covet_http2_resets_total": {"side"},
    "covet_websocket_connections_open": set(),
    "covet_websocket_messages_total": {"direction"},
    "covet_protocol_refusals_total": {"status"},
    "covet_worker_restarts_total": {"cause"},
    "covet_workers_ready": set(),
    "covet_generation": set(),
    "covet_reloads_total": {"result"},
    "covet_metrics_dropped_series_total": set(),
    "covet_sla_violations_total": {"http_route"},  # only with PerformanceMiddleware (OPT_IN below)
    "covet_event_loop_ready_callbacks": set(),  # asyncio's loop only (OPT_IN below)
    "covet_threadpool_threads": set(),
    "covet_threadpool_busy_threads": set(),
    "covet_threadpool_queued_tasks": set(),
    "covet_threadpool_tasks_total": set(),
    "covet_threadpool_queue_wait_seconds_total": set(),
    "python_gc_collections_total": {"generation"},
    "python_gc_objects_collected_total": {"generation"},
    "python_gc_objects_uncollectable_total": {"generation"},
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "up": set(),  # written by Prometheus for every scrape target
}
for _name, _labels in HISTOGRAMS.items():
    SERIES[f"{_name}_bucket"] = _labels | {"le"}
    SERIES[f"{_name}_count"] = set(_labels)
    SERIES[f"{_name}_sum"] = set(_labels)
# Series that exist only when the app opts in (PerformanceMiddleware) or under asyncio's loop (not uvloop), so a
# scrape of the Deployment's example app may lack them.
OPT_IN = {"covet_sla_violations_total", "covet_event_loop_ready_callbacks"}
# Labels that Prometheus (job, instance) and the Prometheus Operator (namespace, pod, service, container,
# endpoint) add to every series of a ServiceMonitor target.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}


# ---- PromQL: the metric names and labels an expression uses ------------------------------------------------

_FUNCTIONS_AND_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs", "ceil",
    "floor", "round", "clamp_min", "clamp_max", "clamp", "label_replace", "label_join", "vector", "scalar",
    "time", "timestamp", "absent", "absent_over_time", "changes", "resets", "sort", "sort_desc",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "quantile_over_time", "predict_linear", "sgn", "exp", "ln", "log2", "log10", "sqrt", "inf", "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) that a PromQL expression refers to. The expression must already parse
    (promtool checks that); this reads selectors, matchers and grouping clauses."""
    labels: set[str] = set()
    quoted = _STRING.sub('""', expr)
    for m in _MATCHERS.finditer(quoted):
        for matcher in m.group(1).split(","):
            if matcher.strip():
                labels.add(re.split(r"\s*(?:=~|!~|!=|=)", matcher.strip(), maxsplit=1)[0].strip())
    for m in _GROUPING.finditer(quoted):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    bare = _GROUPING.sub(" ", _MATCHERS.sub(" ", quoted))
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # range and subquery durations
    names = set()
    for m in _IDENT.finditer(bare):
        word = m.group(0)
        after = bare[m.end():].lstrip()
        if word in _FUNCTIONS_AND_KEYWORDS or after.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or bare[m.start() - 1:m.start()].isdigit():
            continue
        names.add(word)
    return names, labels


def unknown_in(expr: str, extra_labels: set[str] | None = None) -> list[str]:
    """What an expression uses outside the contract: unknown metric names, and labels that none of its
    metrics carries."""
    names, labels = promql_names(expr)
    problems = [f"metric {n!r} is not in the contract" for n in sorted(names - set(SERIES))]
    allowed = set(TARGET_LABELS) | set(extra_labels or ())
    for n in names & set(SERIES):
        allowed |= SERIES[n]
    problems += [f"label {lbl!r} is on none of {sorted(names)}" for lbl in sorted(labels - allowed)]
    return problems
