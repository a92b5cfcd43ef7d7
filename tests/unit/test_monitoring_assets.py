"""The monitoring assets against Prometheus's own tool: the rule file passes ``promtool check rules``, a rule unit
test per alert (``promtool test rules``: input series -> the alerts expected, labels and rendered annotations)
passes with the production defaults, prometheus.yml passes ``promtool check config``, and every dashboard query
parses (as a recording rule: promtool parses each rule's expression)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from debian import require

from tritonize.core.errors import SpecError
from tritonize.core.observability import DRIFT_PSI, GATEWAY_REQUESTS, PSI_ALERT
from tritonize.deploy.monitoring import (
    PANELS,
    SCHEMA_VERSION,
    AlertSettings,
    alert_rules,
    dashboard,
    prometheus_config,
)

SETTINGS = AlertSettings()  # the production defaults: 5m window, for 5m
FAULT_AT = 10  # minutes: healthy before, faulty after
MINUTES = 26
FIRING_AT = f"{FAULT_AT + 12}m"  # past the window (5m) and for (5m) after the fault, one evaluation spare
PENDING_AT = f"{FAULT_AT + 3}m"  # the condition holds, not yet for `for`


def promtool() -> str:
    return require("promtool", "prometheus")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def counter(before: float, after: float) -> str:
    """Per-minute increments ``before`` until FAULT_AT, ``after`` from then: cumulative values."""
    values, total = [], 0.0
    for minute in range(MINUTES):
        values.append(total)
        total += before if minute < FAULT_AT else after
    return " ".join(f"{v:g}" for v in values)


def gauge(before: float, after: float) -> str:
    return " ".join(f"{before if m < FAULT_AT else after:g}" for m in range(MINUTES))


def rules_by_name(settings: AlertSettings = SETTINGS) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in alert_rules(settings)["groups"] for r in g["rules"]}


def rendered(template: str, labels: dict[str, str], value: float) -> str:
    """The annotation as Prometheus renders it: the labels, and the value as printf or humanizePercentage
    (Go's ``%.4g%%`` of value * 100) format it."""
    out = re.sub(r'\{\{ \$value \| printf "%\.(\d)f" \}\}', lambda m: f"{value:.{m.group(1)}f}", template)
    out = re.sub(r"\{\{ \$value \| humanizePercentage \}\}", f"{value * 100:.4g}%", out)
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], out)
    assert "{{" not in out, out
    return out


@dataclass
class Case:
    alert: str
    series: dict[str, str]  # series selector -> values
    labels: dict[str, str]  # of the one alert expected to fire
    value: float  # its value


PER_SECOND = 60  # requests a minute: 1/s
S = SETTINGS


def triton(metric: str, model: str, extra: str = "") -> str:
    return f'{metric}{{model="{model}",version="1"{extra}}}'


CASES = [
    Case("TritonDown", {'up{job="triton",instance="a:8002"}': gauge(1, 0),
                        'up{job="triton",instance="b:8002"}': gauge(1, 1),
                        'up{job="gateway",instance="g:8000"}': gauge(1, 0)},  # another job's target: not Triton
         {"job": "triton", "instance": "a:8002"}, 0),
    Case("TritonizeGatewayDown", {'up{job="gateway",instance="g:8000"}': gauge(1, 0),
                                  'up{job="triton",instance="a:8002"}': gauge(1, 0)},  # Triton's own alert
         {"job": "gateway", "instance": "g:8000"}, 0),
    Case("TritonModelFailures",
         {triton("nv_inference_request_success", "flaky"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_request_failure", "flaky", ',reason="BACKEND"'): counter(0, PER_SECOND / 2),
          triton("nv_inference_request_failure", "flaky", ',reason="REJECTED"'): counter(0, PER_SECOND / 2),
          triton("nv_inference_request_success", "fine"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_request_failure", "fine", ',reason="BACKEND"'): counter(0, 0)},
         {"model": "flaky", "version": "1"}, PER_SECOND / (PER_SECOND + PER_SECOND)),
    Case("TritonQueueTimeHigh",
         {triton("nv_inference_request_success", "busy"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_queue_duration_us", "busy"): counter(PER_SECOND * 1_000, PER_SECOND * 250_000),
          triton("nv_inference_request_success", "fine"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_queue_duration_us", "fine"): counter(PER_SECOND * 1_000, PER_SECOND * 1_000)},
         {"model": "busy", "version": "1"}, 250_000 / 1000),
    Case("TritonComputeTimeHigh",
         {triton("nv_inference_request_success", "slow"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_compute_input_duration_us", "slow"): counter(PER_SECOND * 100, PER_SECOND * 10_000),
          triton("nv_inference_compute_infer_duration_us", "slow"): counter(PER_SECOND * 900, PER_SECOND * 580_000),
          triton("nv_inference_compute_output_duration_us", "slow"): counter(PER_SECOND * 100, PER_SECOND * 10_000),
          # 400 ms of inference alone: under the threshold, only the sum of the three parts is over it
          triton("nv_inference_request_success", "fine"): counter(PER_SECOND, PER_SECOND),
          triton("nv_inference_compute_input_duration_us", "fine"): counter(0, 0),
          triton("nv_inference_compute_infer_duration_us", "fine"): counter(PER_SECOND * 400_000,
                                                                            PER_SECOND * 400_000),
          triton("nv_inference_compute_output_duration_us", "fine"): counter(0, 0)},
         {"model": "slow", "version": "1"}, (10_000 + 580_000 + 10_000) / 1000),
    Case("TritonGPUMemoryNearFull",
         {'nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"}': gauge(40e9, 76e9),
          'nv_gpu_memory_total_bytes{gpu_uuid="GPU-a"}': gauge(80e9, 80e9),
          'nv_gpu_memory_used_bytes{gpu_uuid="GPU-b"}': gauge(40e9, 40e9),
          'nv_gpu_memory_total_bytes{gpu_uuid="GPU-b"}': gauge(80e9, 80e9)},
         {"gpu_uuid": "GPU-a"}, 76 / 80),
    Case("TritonGPUSaturated",
         {'nv_gpu_utilization{gpu_uuid="GPU-a"}': gauge(0.5, 0.99),
          'nv_gpu_utilization{gpu_uuid="GPU-b"}': gauge(0.5, 0.5)},
         {"gpu_uuid": "GPU-a"}, 0.99),
    Case("TritonizeGatewayErrors",
         {f'{GATEWAY_REQUESTS}{{model="m",code="200"}}': counter(PER_SECOND, PER_SECOND * 3 / 4),
          f'{GATEWAY_REQUESTS}{{model="m",code="503"}}': counter(0, PER_SECOND / 4),
          f'{GATEWAY_REQUESTS}{{model="ok",code="200"}}': counter(PER_SECOND, PER_SECOND),
          f'{GATEWAY_REQUESTS}{{model="ok",code="415"}}': counter(0, PER_SECOND)},  # bad uploads: 4xx, no alert
         {"model": "m"}, 1 / 4),
    Case("TritonizeOutputDrift",
         {f'{DRIFT_PSI}{{model="m",output="probs"}}': gauge(0.05, PSI_ALERT + 0.15),
          f'{DRIFT_PSI}{{model="m",output="logits"}}': gauge(0.05, PSI_ALERT - 0.05)},
         {"model": "m", "output": "probs"}, PSI_ALERT + 0.15),
]


def test_every_alert_has_a_rule_unit_test() -> None:
    assert sorted(c.alert for c in CASES) == sorted(rules_by_name())


def write_rules(tmp_path: Path, settings: AlertSettings = SETTINGS) -> Path:
    path = tmp_path / "tritonize-rules.yml"
    path.write_text(yaml.safe_dump(alert_rules(settings), sort_keys=False))
    return path


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    path = write_rules(tmp_path)
    done = run("check", "rules", path.name, cwd=tmp_path)
    assert f"SUCCESS: {len(CASES)} rules found" in done.stdout


def test_each_alert_fires_on_its_fault_only_after_for_and_not_on_healthy_series(tmp_path: Path) -> None:
    write_rules(tmp_path)
    rules = rules_by_name()
    tests = []
    for case in CASES:
        rule = rules[case.alert]
        expected = {"exp_labels": {"severity": rule["labels"]["severity"], **case.labels},
                    "exp_annotations": {k: rendered(v, case.labels, case.value)
                                        for k, v in rule["annotations"].items()}}
        tests.append({
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
            "alert_rule_test": [
                {"eval_time": f"{FAULT_AT - 1}m", "alertname": case.alert, "exp_alerts": []},  # healthy
                {"eval_time": PENDING_AT, "alertname": case.alert, "exp_alerts": []},  # pending, not firing
                {"eval_time": FIRING_AT, "alertname": case.alert, "exp_alerts": [expected]},
            ]})
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["tritonize-rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    run("test", "rules", "tests.yml", cwd=tmp_path)


def test_a_wrong_expectation_fails_promtool_test(tmp_path: Path) -> None:
    """The rule tests can fail: the compute fault expected on the healthy model is refused."""
    write_rules(tmp_path)
    case = next(c for c in CASES if c.alert == "TritonComputeTimeHigh")
    wrong = {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
             "alert_rule_test": [{"eval_time": FIRING_AT, "alertname": case.alert,
                                  "exp_alerts": [{"exp_labels": {"severity": "warning", "model": "fine",
                                                                 "version": "1"}}]}]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["tritonize-rules.yml"], "evaluation_interval": "1m", "tests": [wrong]}))
    done = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and 'model="slow"' in done.stdout + done.stderr


def test_short_settings_reach_every_rule() -> None:
    short = AlertSettings(window="10s", for_duration="5s", compute_ms=100)
    for rule in rules_by_name(short).values():
        assert rule["for"] == "5s"
        assert "[5m]" not in rule["expr"]
    assert rules_by_name(short)["TritonComputeTimeHigh"]["expr"].endswith("> 100")


def substituted(expr: str) -> str:
    """A panel's query as Grafana sends it: the rate interval and the model variable filled in."""
    out = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
    assert "$" not in out, out
    return out


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = panel_queries(dashboard())
    records = [{"record": f"dashboard:panel_{i}", "expr": substituted(expr)} for i, (_, expr) in enumerate(queries)]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]}))
    done = run("check", "rules", "panels.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(records)} rules found" in done.stdout
    # and promtool does refuse a query that does not parse
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(
        {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (model (rate(x[1m]))"}]}]}))
    bad = subprocess.run([promtool(), "check", "rules", "bad.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0


def test_dashboard_json_shape() -> None:
    board = dashboard()
    assert board["schemaVersion"] == SCHEMA_VERSION
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["query"]["query"] == "label_values(nv_inference_request_success, model)"
    assert variables["model"]["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in board["panels"] if p["type"] != "row"]
    assert titles == [p.title for p in PANELS]
    cells: set[tuple[int, int]] = set()  # no two panels overlap on the 24-column grid
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert [t["refId"] for t in panel["targets"]] == [chr(ord("A") + i) for i in range(len(panel["targets"]))]
        source = next(p.source for p in PANELS if p.title == panel["title"])
        if source == "triton" and "nv_inference" in panel["targets"][0]["expr"]:
            assert all('model=~"$model"' in t["expr"] for t in panel["targets"]), panel["title"]
    assert yaml.safe_load(yaml.safe_dump(board)) == board  # plain data: JSON/YAML round trip


def test_prometheus_config_passes_promtool_check(tmp_path: Path) -> None:
    write_rules(tmp_path)
    config = prometheus_config({"triton": ["triton:8002", "10.0.0.7:8002"], "gateway": ["gateway:8000"]},
                               ["tritonize-rules.yml"], scrape_interval="10s")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = run("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "SUCCESS: 1 rule files found" in done.stdout
    assert config["global"] == {"scrape_interval": "10s", "evaluation_interval": "10s"}
    assert [(j["job_name"], j["static_configs"][0]["targets"]) for j in config["scrape_configs"]] == \
        [("triton", ["triton:8002", "10.0.0.7:8002"]), ("gateway", ["gateway:8000"])]
    # a missing rule file is what promtool refuses
    (tmp_path / "missing.yml").write_text(yaml.safe_dump(prometheus_config({"triton": ["t:8002"]}, ["nope.yml"])))
    missing = subprocess.run([promtool(), "check", "config", "missing.yml"], cwd=tmp_path, capture_output=True,
                             text=True)
    assert missing.returncode != 0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: AlertSettings(window="5 minutes"), "alert settings.window: got '5 minutes', expected a Prometheus "
                                                 "duration"),
    (lambda: AlertSettings(for_duration=""), "alert settings.for_duration: got ''"),
    (lambda: AlertSettings(failure_ratio=5), "alert settings.failure_ratio: got 5, expected a fraction in (0, 1]"),
    (lambda: AlertSettings(compute_ms=0), "alert settings.compute_ms: got 0, expected a number > 0"),
    (lambda: prometheus_config({"triton": ["http://triton:8002/metrics"]}, []),
     "targets['triton']: got 'http://triton:8002/metrics', expected host:port (no scheme or path)"),
    (lambda: prometheus_config({"triton": "triton:8002"}, []),  # type: ignore[dict-item]
     "targets['triton']: got 'triton:8002', expected a non-empty list of host:port"),
    (lambda: prometheus_config({}, []), "targets: got {}, expected at least one job"),
    (lambda: prometheus_config({"triton": ["t:8002"]}, [""]), "rule_files: got '', expected paths of rule files"),
    (lambda: prometheus_config({"triton": ["t:8002"]}, [], scrape_interval="15"), "scrape_interval: got '15'"),
])
def test_bad_settings_are_one_clear_line(call: Any, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        call()
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
