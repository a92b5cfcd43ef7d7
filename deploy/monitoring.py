"""What watches a served repository, generated from code: Prometheus alert rules (``alert_rules``), a Grafana
dashboard (``dashboard``) and a ``prometheus.yml`` (``prometheus_config``).

Every PromQL expression is written once, below, as a function of the rate window and the label matchers: the
rules call it with ``AlertSettings.window`` and no matchers, the dashboard with ``$__rate_interval`` and
``model=~"$model"``. Triton's own metrics (``:8002/metrics``) are labelled ``{model, version}``; the gateway's
and the drift gauges' names come from ``tritonize.core.observability``.

    import yaml
    Path("rules.yml").write_text(yaml.safe_dump(alert_rules()))
    Path("dashboard.json").write_text(json.dumps(dashboard(), indent=2))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tritonize.core.errors import SpecError
from tritonize.core.observability import DRIFT_PSI, GATEWAY_LATENCY, GATEWAY_REQUESTS, PSI_ALERT

TRITON_JOB = "triton"  # prometheus_config's job names the rules select on (AlertSettings.triton_job)
GATEWAY_JOB = "gateway"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11's dashboard schema
QUANTILES = ("0.5", "0.99")  # of Triton's summaries (it exports 0.5, 0.9, 0.95, 0.99, 0.999)

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")  # Prometheus's duration syntax
_TARGET = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}$")  # host:port, as static_configs want it
_BY = "model, version"


# --- the queries ------------------------------------------------------------------------------------------
def _sel(*matchers: str) -> str:
    given = [m for m in matchers if m]
    return "{" + ", ".join(given) + "}" if given else ""


def _sum_rate(metric: str, window: str, matchers: str) -> str:
    return f"sum by ({_BY}) (rate({metric}{_sel(matchers)}[{window}]))"


def successes_per_s(window: str, matchers: str = "") -> str:
    return _sum_rate("nv_inference_request_success", window, matchers)


def failures_per_s(window: str, matchers: str = "") -> str:
    """Failed requests per second, every reason (2.51 labels them BACKEND, REJECTED, CANCELED, OTHER)."""
    return _sum_rate("nv_inference_request_failure", window, matchers)


def failure_ratio(window: str, matchers: str = "") -> str:
    return (f"{failures_per_s(window, matchers)} / ({successes_per_s(window, matchers)} + "
            f"{failures_per_s(window, matchers)})")


def queue_ms_per_request(window: str, matchers: str = "") -> str:
    return (f"{_sum_rate('nv_inference_queue_duration_us', window, matchers)} / "
            f"{successes_per_s(window, matchers)} / 1000")


def compute_ms_per_request(window: str, matchers: str = "") -> str:
    """Input copy + inference + output copy: what a request spends in the model once it leaves the queue."""
    s = _sel(matchers)
    parts = " + ".join(f"rate(nv_inference_compute_{p}_duration_us{s}[{window}])" for p in ("input", "infer", "output"))
    return f"sum by ({_BY}) ({parts}) / {successes_per_s(window, matchers)} / 1000"


def batch_size(window: str, matchers: str = "") -> str:
    """Inferences per model execution: the batch the dynamic batcher achieved (1 without batching)."""
    return (f"{_sum_rate('nv_inference_count', window, matchers)} / "
            f"{_sum_rate('nv_inference_exec_count', window, matchers)}")


def pending_requests(matchers: str = "") -> str:
    return f"sum by ({_BY}) (nv_inference_pending_request_count{_sel(matchers)})"


def summary_ms(summary: str, matchers: str = "") -> str:
    """A quantile series of one of Triton's latency summaries, in ms (``--metrics-config=summary_latencies=true``)."""
    quantiles = 'quantile=~"' + "|".join(QUANTILES) + '"'
    return f"max by ({_BY}, quantile) ({summary}{_sel(matchers, quantiles)}) / 1000"


def gpu_utilization(window: str) -> str:
    """0..1 per GPU (Triton exports it only where it sees GPUs)."""
    return f"max by (gpu_uuid) (avg_over_time(nv_gpu_utilization[{window}]))"


def gpu_memory_fraction() -> str:
    return "max by (gpu_uuid) (nv_gpu_memory_used_bytes) / max by (gpu_uuid) (nv_gpu_memory_total_bytes)"


def target_down(job: str) -> str:
    """A scrape target of ``job`` Prometheus cannot reach."""
    return f'up{{job="{job}"}} == 0'


def gateway_requests_per_s(window: str, matchers: str = "") -> str:
    return f"sum by (model, code) (rate({GATEWAY_REQUESTS}{_sel(matchers)}[{window}]))"


def gateway_error_ratio(window: str, matchers: str = "") -> str:
    server_errors = _sel(matchers, 'code=~"5.."')
    errors = f"sum by (model) (rate({GATEWAY_REQUESTS}{server_errors}[{window}]))"
    return f"{errors} / sum by (model) (rate({GATEWAY_REQUESTS}{_sel(matchers)}[{window}]))"


def gateway_latency_ms(quantile: str, window: str, matchers: str = "") -> str:
    return (f"histogram_quantile({quantile}, sum by (model, le) "
            f"(rate({GATEWAY_LATENCY}_bucket{_sel(matchers)}[{window}]))) * 1000")


def drift_psi(matchers: str = "") -> str:
    return f"max by (model, output) ({DRIFT_PSI}{_sel(matchers)})"


# --- alert rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertSettings:
    """Rate window, how long a condition must hold (``for``) and the thresholds; defaults suit production."""

    window: str = "5m"
    for_duration: str = "5m"
    failure_ratio: float = 0.05  # failed / all requests of a model
    queue_ms: float = 100.0  # mean queue time per request
    compute_ms: float = 500.0  # mean compute time (input + infer + output) per request
    gpu_memory_fraction: float = 0.9  # used / total
    gpu_utilization: float = 0.95  # mean over the window
    drift_psi: float = PSI_ALERT
    gateway_error_ratio: float = 0.05  # 5xx / all gateway requests of a model
    triton_job: str = TRITON_JOB
    gateway_job: str = GATEWAY_JOB

    def __post_init__(self) -> None:
        for name in ("window", "for_duration"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _DURATION.match(value):
                raise SpecError(f"alert settings.{name}", value, "a Prometheus duration such as 30s, 5m or 1h")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise SpecError(f"alert settings.{f.name}", value, "a number > 0")
        for name in ("failure_ratio", "gpu_memory_fraction", "gpu_utilization", "gateway_error_ratio"):
            if getattr(self, name) > 1:
                raise SpecError(f"alert settings.{name}", getattr(self, name), "a fraction in (0, 1]")
        for name in ("triton_job", "gateway_job"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise SpecError(f"alert settings.{name}", getattr(self, name), "a Prometheus job name")


def _alert(name: str, expr: str, settings: AlertSettings, severity: str, summary: str,
           description: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": settings.for_duration, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description}}


_MODEL = "model {{ $labels.model }} (version {{ $labels.version }})"
_VALUE_MS = '{{ $value | printf "%.1f" }}'
_VALUE_PSI = '{{ $value | printf "%.3f" }}'
_VALUE_PERCENT = "{{ $value | humanizePercentage }}"


def alert_rules(settings: AlertSettings | None = None) -> dict[str, Any]:
    """A Prometheus rule file (``{"groups": [...]}``): Triton, its GPUs, the gateway and output drift."""
    s = settings or AlertSettings()
    w = s.window
    triton = [
        _alert("TritonDown", target_down(s.triton_job), s, "critical",
               "Triton {{ $labels.instance }} is down",
               f"Prometheus cannot scrape {{{{ $labels.instance }}}} (job {s.triton_job}) for {s.for_duration}."),
        _alert("TritonModelFailures", f"{failure_ratio(w)} > {s.failure_ratio:g}", s, "critical",
               f"{_MODEL} fails requests",
               f"{_VALUE_PERCENT} of the requests to {_MODEL} failed over {w} "
               f"(threshold {s.failure_ratio:.0%})."),
        _alert("TritonQueueTimeHigh", f"{queue_ms_per_request(w)} > {s.queue_ms:g}", s, "warning",
               f"{_MODEL} queues requests",
               f"Requests to {_MODEL} waited {_VALUE_MS} ms in the queue on average over {w} "
               f"(threshold {s.queue_ms:g} ms): add instances or replicas."),
        _alert("TritonComputeTimeHigh", f"{compute_ms_per_request(w)} > {s.compute_ms:g}", s, "warning",
               f"{_MODEL} computes slowly",
               f"Requests to {_MODEL} took {_VALUE_MS} ms of compute on average over {w} "
               f"(threshold {s.compute_ms:g} ms)."),
    ]
    gpu = [
        _alert("TritonGPUMemoryNearFull", f"{gpu_memory_fraction()} > {s.gpu_memory_fraction:g}", s, "warning",
               "GPU {{ $labels.gpu_uuid }} memory is nearly full",
               f"GPU {{{{ $labels.gpu_uuid }}}} uses {_VALUE_PERCENT} of its memory "
               f"(threshold {s.gpu_memory_fraction:.0%})."),
        _alert("TritonGPUSaturated", f"{gpu_utilization(w)} > {s.gpu_utilization:g}", s, "info",
               "GPU {{ $labels.gpu_uuid }} is saturated",
               f"GPU {{{{ $labels.gpu_uuid }}}} was {_VALUE_PERCENT} busy over {w} "
               f"(threshold {s.gpu_utilization:.0%}): more load will queue."),
    ]
    gateway = [
        _alert("TritonizeGatewayDown", target_down(s.gateway_job), s, "critical",
               "the gateway {{ $labels.instance }} is down",
               f"Prometheus cannot scrape {{{{ $labels.instance }}}} (job {s.gateway_job}) for {s.for_duration}."),
        _alert("TritonizeGatewayErrors", f"{gateway_error_ratio(w)} > {s.gateway_error_ratio:g}", s, "critical",
               "the gateway fails requests to model {{ $labels.model }}",
               f"{_VALUE_PERCENT} of the gateway's requests to model {{{{ $labels.model }}}} "
               f"answered 5xx over {w} (threshold {s.gateway_error_ratio:.0%})."),
        _alert("TritonizeOutputDrift", f"{drift_psi()} > {s.drift_psi:g}", s, "warning",
               "model {{ $labels.model }} output {{ $labels.output }} drifted",
               f"The PSI of model {{{{ $labels.model }}}}'s output {{{{ $labels.output }}}} against its build-time "
               f"reference is {_VALUE_PSI} (threshold {s.drift_psi:g})."),
    ]
    return {"groups": [{"name": "tritonize-triton", "rules": triton},
                       {"name": "tritonize-gpu", "rules": gpu},
                       {"name": "tritonize-gateway", "rules": gateway}]}


# --- dashboard --------------------------------------------------------------------------------------------
RATE = "$__rate_interval"
MODEL = 'model=~"$model"'


@dataclass(frozen=True)
class Panel:
    """One dashboard panel. ``source`` says what must run for it to show data: ``triton`` (always),
    ``gpu`` (Triton on GPUs), ``gateway`` (tritonize gateway), ``drift`` (the gateway's drift monitor)."""

    title: str
    unit: str
    source: str
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    description: str = ""


PANELS: tuple[Panel, ...] = (
    Panel("Requests / s", "reqps", "triton", ((successes_per_s(RATE, MODEL), "{{model}} v{{version}}"),),
          "Successful inference requests per second."),
    Panel("Failures / s", "reqps", "triton", ((failures_per_s(RATE, MODEL), "{{model}} v{{version}}"),),
          "Failed inference requests per second, every reason."),
    Panel("Failure ratio", "percentunit", "triton", ((failure_ratio(RATE, MODEL), "{{model}} v{{version}}"),),
          "Failed / all requests (the TritonModelFailures alert)."),
    Panel("Queue time per request", "ms", "triton",
          ((queue_ms_per_request(RATE, MODEL), "{{model}} v{{version}}"),),
          "Mean time a request waited for an instance (the TritonQueueTimeHigh alert)."),
    Panel("Compute time per request", "ms", "triton",
          ((compute_ms_per_request(RATE, MODEL), "{{model}} v{{version}}"),),
          "Mean input + inference + output time (the TritonComputeTimeHigh alert)."),
    Panel("Batch size achieved", "short", "triton", ((batch_size(RATE, MODEL), "{{model}} v{{version}}"),),
          "Inferences per model execution: what dynamic batching achieves (1 without it). Failed executions "
          "count as executions, not inferences: below 1 while a model fails."),
    Panel("Pending requests", "short", "triton", ((pending_requests(MODEL), "{{model}} v{{version}}"),),
          "Requests waiting for execution now."),
    Panel("Queue time quantiles", "ms", "triton",
          ((summary_ms("nv_inference_queue_summary_us", MODEL), "{{model}} v{{version}} p{{quantile}}"),),
          "From Triton's summaries: tritonserver with core.observability.TRITON_SUMMARY_FLAG."),
    Panel("Inference time quantiles", "ms", "triton",
          ((summary_ms("nv_inference_compute_infer_summary_us", MODEL), "{{model}} v{{version}} p{{quantile}}"),),
          "From Triton's summaries: tritonserver with core.observability.TRITON_SUMMARY_FLAG."),
    Panel("Request time quantiles", "ms", "triton",
          ((summary_ms("nv_inference_request_summary_us", MODEL), "{{model}} v{{version}} p{{quantile}}"),),
          "End to end inside Triton, from its summaries (summary_latencies=true)."),
    Panel("GPU utilisation", "percentunit", "gpu", ((gpu_utilization(RATE), "{{gpu_uuid}}"),),
          "Only where Triton runs on GPUs."),
    Panel("GPU memory used", "percentunit", "gpu", ((gpu_memory_fraction(), "{{gpu_uuid}}"),),
          "Used / total, only where Triton runs on GPUs."),
    Panel("Gateway requests / s", "reqps", "gateway",
          ((gateway_requests_per_s(RATE, MODEL), "{{model}} {{code}}"),), "tritonize gateway, by status code."),
    Panel("Gateway latency", "ms", "gateway",
          tuple((gateway_latency_ms(q, RATE, MODEL), f"{{{{model}}}} p{q}") for q in QUANTILES),
          "tritonize gateway, end to end (its histogram)."),
    Panel("Gateway 5xx ratio", "percentunit", "gateway", ((gateway_error_ratio(RATE, MODEL), "{{model}}"),),
          "The TritonizeGatewayErrors alert."),
    Panel("Output drift (PSI)", "short", "drift", ((drift_psi(MODEL), "{{model}} {{output}}"),),
          f"Population stability index against the build's reference; above {PSI_ALERT:g} is a shift."),
)

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id, "type": "timeseries", "title": panel.title, "description": panel.description,
        "datasource": _DATASOURCE, "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(panel.targets)],
    }


_ROWS = {"triton": "Triton, per model", "gpu": "GPUs", "gateway": "Gateway", "drift": "Output drift"}


def dashboard() -> dict[str, Any]:
    """Grafana dashboard JSON (plain: import it, or provision it from a file)."""
    panels: list[dict[str, Any]] = []
    y = 0
    for source, title in _ROWS.items():
        panels.append({"id": len(panels) + 1, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        y += 1
        members = [p for p in PANELS if p.source == source]
        for i, panel in enumerate(members):
            panels.append(_panel(len(panels) + 1, panel, 12 * (i % 2), y + 8 * (i // 2)))
        y += 8 * ((len(members) + 1) // 2)
    model_query = "label_values(nv_inference_request_success, model)"
    return {
        "uid": "tritonize-triton", "title": "Triton models (tritonize)", "tags": ["tritonize", "triton"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "timezone": "browser",
        "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            {"name": "model", "label": "Model", "type": "query", "datasource": _DATASOURCE,
             "definition": model_query, "query": {"query": model_query, "refId": "model"},
             "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1,
             "hide": 0},
        ]},
        "panels": panels,
    }


# --- prometheus.yml ---------------------------------------------------------------------------------------
def prometheus_config(targets: Mapping[str, list[str]], rule_files: list[str],
                      scrape_interval: str = "15s") -> dict[str, Any]:
    """A prometheus.yml: one scrape job per key of ``targets`` (``{"triton": ["triton:8002"]}``), the rule
    files, and rules evaluated as often as targets are scraped."""
    if not _DURATION.match(scrape_interval):
        raise SpecError("scrape_interval", scrape_interval, "a Prometheus duration such as 15s")
    if not targets:
        raise SpecError("targets", dict(targets), "at least one job, e.g. {'triton': ['triton:8002']}")
    for path in rule_files:
        if not isinstance(path, str) or not path:
            raise SpecError("rule_files", path, "paths of rule files (as the Prometheus server sees them)")
    jobs = []
    for job, addresses in targets.items():
        if not job or not re.match(r"^[A-Za-z_][A-Za-z0-9_\-]*$", job):
            raise SpecError("targets", job, "a job name (letters, digits, _ and -)")
        if isinstance(addresses, str) or not addresses:
            raise SpecError(f"targets[{job!r}]", addresses, "a non-empty list of host:port")
        for address in addresses:
            if not isinstance(address, str) or not _TARGET.match(address):
                raise SpecError(f"targets[{job!r}]", address, "host:port (no scheme or path), e.g. triton:8002")
        jobs.append({"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": list(addresses)}]})
    return {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": list(rule_files), "scrape_configs": jobs}
