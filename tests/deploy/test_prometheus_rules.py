"""deploy/prometheus/alerts.yaml and the prometheus-adapter rule: PromQL that Prometheus' own parser accepts
(promtool check rules), alerts that fire on the series they are meant for and stay quiet otherwise
(promtool test rules, tests/deploy/alerts_test.yaml), and only the metric names and labels covet exposes."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_support import DEPLOY, KUBERNETES, load_docs, tool, unknown_in

HERE = Path(__file__).resolve().parent


def rules_spec() -> dict[str, Any]:
    (rule,) = load_docs(DEPLOY / "prometheus" / "alerts.yaml")
    assert rule["kind"] == "PrometheusRule"
    return rule["spec"]  # type: ignore[no-any-return]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def write_rules(spec: dict[str, Any], directory: Path) -> Path:
    path = directory / "alerts.rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    run = promtool("check", "rules", str(write_rules(rules_spec(), tmp_path)), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    count = sum(len(group["rules"]) for group in rules_spec()["groups"])
    assert count >= 9 and f"SUCCESS: {count} rules found" in run.stdout


def test_promtool_rejects_bad_promql(tmp_path: Path) -> None:
    """The check above can fail: a PromQL syntax error in one rule is reported."""
    spec = rules_spec()
    spec["groups"][0]["rules"][0]["expr"] = "sum by (job) (rate(http_server_request_duration_seconds_count[5m])"
    run = promtool("check", "rules", str(write_rules(spec, tmp_path)), cwd=tmp_path)
    assert run.returncode != 0 and "parse error" in (run.stdout + run.stderr)


def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    write_rules(rules_spec(), tmp_path)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)
    run = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(("alert", "mutation"), [
    ("CovetHighErrorRatio", ("> 0.05", "> 0.5")),  # a threshold no test series reaches
    ("CovetWorkerRestartStorm", ('cause!~"reload|max_requests"', 'cause="crash_loop"')),
    ("CovetLatencyP99OverSLO", ("_bucket", "_count")),
    ("CovetReloadFailed", ('result="failed"', 'result="ready"')),
    ("CovetEventLoopBlocked", ("> 0.1", "> 1")),
    ("CovetThreadPoolSaturated", ("min_over_time", "max_over_time")),
    ("CovetSlaViolations", ("> 0.01", "> 0.5")),
])
def test_alert_tests_catch_a_broken_rule(alert: str, mutation: tuple[str, str], tmp_path: Path) -> None:
    """alerts_test.yaml is not vacuous: breaking one rule makes `promtool test rules` fail."""
    spec = rules_spec()
    (rule,) = [r for r in spec["groups"][0]["rules"] if r["alert"] == alert]
    assert mutation[0] in rule["expr"]
    rule["expr"] = rule["expr"].replace(*mutation)
    write_rules(spec, tmp_path)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)
    run = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert run.returncode != 0 and alert in run.stdout + run.stderr


def test_alerts_use_only_the_metric_contract() -> None:
    for group in rules_spec()["groups"]:
        for rule in group["rules"]:
            assert unknown_in(rule["expr"]) == [], rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def adapter_rule() -> dict[str, Any]:
    (cm,) = load_docs(KUBERNETES / "prometheus-adapter" / "adapter-config.yaml")
    (rule,) = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    return rule  # type: ignore[no-any-return]


def test_adapter_rule_is_valid_promql(tmp_path: Path) -> None:
    """prometheus-adapter fills the templates in per request; with the values it uses for an HPA's Pods
    metric, both queries parse and use covet's metric."""
    rule = adapter_rule()
    metrics_query = (rule["metricsQuery"]
                     .replace("<<.Series>>", "http_server_request_duration_seconds_count")
                     .replace("<<.LabelMatchers>>", 'namespace="shop",pod=~"covet-a|covet-b"')
                     .replace("<<.GroupBy>>", "pod"))
    assert "<<" not in metrics_query
    spec = {"groups": [{"name": "adapter", "rules": [
        {"record": "adapter:series", "expr": rule["seriesQuery"]},
        {"record": "adapter:metrics", "expr": metrics_query},
    ]}]}
    run = promtool("check", "rules", str(write_rules(spec, tmp_path)), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert unknown_in(rule["seriesQuery"]) == [] and unknown_in(metrics_query) == []
    assert "rate(" in metrics_query, "the count is a counter: the adapter must serve its rate"


def test_adapter_metric_is_requests_per_second_per_pod(tmp_path: Path) -> None:
    """The HPA's metric on made-up series: each pod's requests/s over all its routes and statuses, as the
    adapter's query computes it for `kubectl get --raw .../pods/*/http_server_requests_per_second`."""
    query = (adapter_rule()["metricsQuery"]
             .replace("<<.Series>>", "http_server_request_duration_seconds_count")
             .replace("<<.LabelMatchers>>", 'namespace="shop",pod=~"covet-a|covet-b"')
             .replace("<<.GroupBy>>", "pod"))
    series = "http_server_request_duration_seconds_count"
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # covet-a: 300 + 60 requests a minute on two routes = 6/s; covet-b: 120 a minute = 2/s.
                {"series": f'{series}{{namespace="shop", pod="covet-a", http_route="/a"}}', "values": "0+300x10"},
                {"series": f'{series}{{namespace="shop", pod="covet-a", http_route="/b"}}', "values": "0+60x10"},
                {"series": f'{series}{{namespace="shop", pod="covet-b", http_route="/a"}}', "values": "0+120x10"},
                # Another namespace's pod of the same name is not counted.
                {"series": f'{series}{{namespace="other", pod="covet-a", http_route="/a"}}', "values": "0+6000x10"},
            ],
            "promql_expr_test": [{"expr": query, "eval_time": "10m", "exp_samples": [
                {"labels": '{pod="covet-a"}', "value": 6},
                {"labels": '{pod="covet-b"}', "value": 2},
            ]}],
        }],
    }
    (tmp_path / "adapter_test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    run = promtool("test", "rules", "adapter_test.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
