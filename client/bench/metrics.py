"""Triton's Prometheus metrics (``:8002/metrics``) read before and after a run: per-model queue and compute time
per request, and GPU utilization and memory when the server has GPUs."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = list[tuple[str, dict[str, str], float]]


def parse(text: str) -> Samples:
    samples = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            name, labels, value = match.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def scrape(url: str, timeout_s: float = 5.0) -> Samples | None:
    """None when the endpoint does not answer (metrics disabled, another port)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse(response.read().decode())
    except OSError:
        return None


def _total(samples: Samples, name: str, model: str) -> float:
    return sum(v for n, labels, v in samples if n == name and labels.get("model") == model)


def summarize(before: Samples | None, after: Samples | None, model: str) -> dict[str, Any]:
    """Per-request queue/compute µs over the run (counter deltas) and GPU gauges after it."""
    if before is None or after is None:
        return {"available": False}

    def delta(name: str) -> float:
        return _total(after, name, model) - _total(before, name, model)

    requests = delta("nv_inference_request_success")
    out: dict[str, Any] = {"available": True, "requests": requests,
                           "inferences": delta("nv_inference_count"), "executions": delta("nv_inference_exec_count")}
    for key, metric in (("queue_us", "nv_inference_queue_duration_us"),
                        ("compute_input_us", "nv_inference_compute_input_duration_us"),
                        ("compute_infer_us", "nv_inference_compute_infer_duration_us"),
                        ("compute_output_us", "nv_inference_compute_output_duration_us"),
                        ("request_us", "nv_inference_request_duration_us")):
        out[key] = delta(metric) / requests if requests else None
    gpus = {labels.get("gpu_uuid", "?"): value for n, labels, value in after if n == "nv_gpu_utilization"}
    if gpus:
        memory = {labels.get("gpu_uuid", "?"): value for n, labels, value in after
                  if n == "nv_gpu_memory_used_bytes"}
        out["gpus"] = {uuid: {"utilization": util, "memory_used_bytes": memory.get(uuid)}
                       for uuid, util in gpus.items()}
    return out
