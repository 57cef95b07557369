"""deploy/grafana/covet.json: a dashboard Grafana imports (unique ids and a grid without overlaps, every
query on the datasource variable, every variable it uses defined), whose queries Prometheus' parser accepts
(promtool) and use only the metrics and labels covet exposes, with the panels operators look for first."""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_support import DEPLOY, HISTOGRAMS, SERIES, promql_names, tool, unknown_in

# What Grafana substitutes before a query reaches Prometheus (its built-ins, then the dashboard's variables).
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "covet.json").read_text())  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p, t


def substitute(expr: str, variables: set[str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        assert name in variables, f"variable ${name} is not defined in templating"
        return ".*"
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def variables(dashboard: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dashboard["templating"]["list"]}


def test_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels(dashboard):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, f"{p['title']} is wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    (ds,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert ds["query"] == "prometheus"
    for p, t in queries(dashboard):
        assert p["datasource"]["uid"] == t["datasource"]["uid"] == "${" + ds["name"] + "}", p["title"]
        assert t["refId"] and t["expr"].strip(), p["title"]
    for p in panels(dashboard):
        assert p["type"] == "row" or p.get("targets"), f"{p['title']} has no query"


def test_queries_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each query (and each variable's label_values selector), after Grafana's substitutions, is valid
    PromQL for Prometheus' parser: promtool checks them as recording rules."""
    names = variables(dashboard)
    rules = [{"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": substitute(t["expr"], names)}
             for p, t in queries(dashboard)]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
            assert m, v["query"]["query"]
            rules.append({"record": f"dashboard:variable_{v['name']}", "expr": substitute(m.group(1), names)})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout


def test_queries_use_only_the_metric_contract(dashboard: dict[str, Any]) -> None:
    names = variables(dashboard)
    problems = [f"{p['title']} ({t['refId']}): {problem}"
                for p, t in queries(dashboard) for problem in unknown_in(substitute(t["expr"], names))]
    assert problems == []


def test_contract_check_catches_mistakes() -> None:
    """The check above can fail: a name that covet does not expose, or a label its metric lacks."""
    assert unknown_in('sum by (route) (rate(http_requests_total{job="covet"}[5m]))') == [
        "metric 'http_requests_total' is not in the contract", "label 'route' is on none of ['http_requests_total']"]
    assert unknown_in("sum by (cause) (covet_connections_open)") == [
        "label 'cause' is on none of ['covet_connections_open']"]
    names, labels = promql_names(
        'histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket'
        '{http_response_status_code=~"5..", job="a{b}"}[5m] offset 1h)))')
    assert names == {"http_server_request_duration_seconds_bucket"}
    assert labels == {"le", "http_route", "http_response_status_code", "job"}


def test_the_panels_operators_need(dashboard: dict[str, Any]) -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(dashboard) if p.get("targets")}

    def panel_with(*needles: str) -> str:
        found = [title for title, e in exprs.items() if all(n in e for n in needles)]
        assert found, f"no panel uses {needles}"
        return str(found[0])

    panel_with("sum by (http_route)", "rate(http_server_request_duration_seconds_count")  # rate by route
    latency = exprs[panel_with("histogram_quantile(0.99", "http_route", "_bucket")]
    assert "histogram_quantile(0.5" in latency and "histogram_quantile(0.95" in latency
    panel_with('http_response_status_code=~"5.."')  # error ratio
    panel_with("http_server_active_requests")
    panel_with("covet_connections_open")
    panel_with("covet_worker_restarts_total")
    panel_with("sum by (pod)", "process_cpu_seconds_total")
    panel_with("sum by (pod)", "process_resident_memory_bytes")
    # Every metric of the contract appears somewhere (a metric nobody graphs is one nobody watches).
    used = set().union(*(promql_names(substitute(e, variables(dashboard)))[0] for e in exprs.values()))
    bases = {re.sub(r"_(bucket|count|sum)$", "", n) if re.sub(r"_(bucket|count|sum)$", "", n) in HISTOGRAMS else n
             for n in used}
    assert set(SERIES) - {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "count", "sum")} - {"up"} <= bases


def test_units(dashboard: dict[str, Any]) -> None:
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        unit = p["fieldConfig"]["defaults"]["unit"]
        expr = " ".join(t["expr"] for t in p["targets"])
        if "duration_seconds_bucket" in expr:
            assert unit == "s", p["title"]
        if "_bytes" in expr:
            assert unit == "bytes", p["title"]
        if re.search(r"\bratio\b", p["title"].lower()):
            assert unit == "percentunit", p["title"]
