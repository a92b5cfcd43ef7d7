"""``tritonize deploy --target compose``: compose.yaml (Triton, Prometheus with the alert rules, Grafana with the
dashboard, the gateway) and the files it mounts and builds."""

from __future__ import annotations

import os
from typing import Any

from .. import monitoring
from . import images
from .files import to_json, to_yaml
from .plan import GATEWAY_PORT, GCS_KEY, MOUNT, OBJECT_STORES, PORTS, Plan

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
GRAFANA_IMAGE = "grafana/grafana:11.2.2"
SHM_SIZE = "1gb"  # the python backend moves tensors through /dev/shm (Docker's default is 64 MB)


def _memory(quantity: str) -> str:
    """A Kubernetes memory quantity in compose's byte units (k, m, g are binary there)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}
    for unit, short in units.items():
        if quantity.endswith(unit):
            return quantity[: -len(unit)] + short
    factor = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}.get(quantity[-1:], 1)
    number = quantity.rstrip("kMGT")
    return f"{round(float(number) * factor)}b"


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def _triton(plan: Plan, repo_source: str) -> dict[str, Any]:
    service: dict[str, Any] = {"image": images.triton_image(plan)}
    if plan.requirements:
        service["build"] = {"context": "triton"}
    service["command"] = ["tritonserver", *plan.server_args()]
    service["ports"] = [f"{p}:{p}" for p in PORTS.values()]
    source = plan.options.repository_uri or repo_source  # --repository-uri: another path; else REPO
    volumes = [f"{source}:{MOUNT}:ro"] if not plan.scheme else []
    environment: dict[str, str] = {}
    if plan.scheme == "gs":
        volumes.append(f"${{GOOGLE_APPLICATION_CREDENTIALS:?the key file of a service account that reads "
                       f"{plan.uri}}}:{GCS_KEY}:ro")
        environment["GOOGLE_APPLICATION_CREDENTIALS"] = GCS_KEY
    elif plan.scheme:
        environment.update({v: f"${{{v}:?{plan.scheme}:// credentials}}" for v in OBJECT_STORES[plan.scheme]})
    if volumes:
        service["volumes"] = volumes
    if environment:
        service["environment"] = environment
    service["shm_size"] = SHM_SIZE
    service["healthcheck"] = {
        "test": ["CMD", "curl", "-fsS", f"http://localhost:{PORTS['http']}/v2/health/ready"],
        "interval": "10s", "timeout": "5s", "retries": 3, "start_period": f"{plan.startup_seconds}s"}
    resources: dict[str, Any] = {}
    limits = {k: v for k, v in (("cpus", plan.options.cpu and _cpus(plan.options.cpu)),
                                ("memory", plan.options.memory and _memory(plan.options.memory))) if v}
    if limits:
        resources["limits"] = limits
    if plan.gpus:
        resources["reservations"] = {"devices": [{"driver": "nvidia", "count": plan.gpus, "capabilities": ["gpu"]}]}
    if resources:
        service["deploy"] = {"resources": resources}
    service["restart"] = "unless-stopped"
    return service


def files(plan: Plan, repo_source: str) -> dict[str, str]:
    """The asset folder's files; ``repo_source``: REPO as the bind mounts name it (``relative_repo``)."""
    triton = _triton(plan, repo_source)
    services = {
        "triton": triton,
        "gateway": {
            "build": {"context": "gateway"}, "image": f"tritonize-gateway:{plan.version}",
            "command": images.gateway_command("triton"),
            "ports": [f"{GATEWAY_PORT}:{GATEWAY_PORT}"],
            "volumes": [f"{repo_source}:{MOUNT}:ro"],
            "depends_on": {"triton": {"condition": "service_healthy"}},
            "restart": "unless-stopped"},
        "prometheus": {
            "image": PROMETHEUS_IMAGE,
            "command": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
            "ports": ["9090:9090"],
            "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
            "depends_on": ["triton", "gateway"],
            "restart": "unless-stopped"},
        "grafana": {
            "image": GRAFANA_IMAGE,
            "ports": ["3000:3000"],
            "environment": {"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer"},
            "volumes": ["./grafana/provisioning:/etc/grafana/provisioning:ro",
                        "./grafana/dashboards:/var/lib/grafana/dashboards:ro", "grafana-data:/var/lib/grafana"],
            "depends_on": ["prometheus"],
            "restart": "unless-stopped"},
    }
    # no top-level `name` (compose-spec 2022): Debian's docker-compose 1.29 refuses it; -p names the project
    compose = {"services": services,
               "volumes": {"prometheus-data": {}, "grafana-data": {}}}
    prometheus = monitoring.prometheus_config(
        {monitoring.TRITON_JOB: [f"triton:{PORTS['metrics']}"], monitoring.GATEWAY_JOB: [f"gateway:{GATEWAY_PORT}"]},
        ["rules.yml"])  # relative to prometheus.yml: the same file for promtool here and Prometheus there
    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy",
        "url": "http://prometheus:9090", "isDefault": True}]}
    provider = {"apiVersion": 1, "providers": [{
        "name": "tritonize", "type": "file", "disableDeletion": True,
        "options": {"path": "/var/lib/grafana/dashboards"}}]}
    return {
        "compose.yaml": to_yaml(compose),
        "prometheus/prometheus.yml": to_yaml(prometheus),
        "prometheus/rules.yml": to_yaml(monitoring.alert_rules()),
        "grafana/provisioning/datasources/prometheus.yaml": to_yaml(datasource),
        "grafana/provisioning/dashboards/tritonize.yaml": to_yaml(provider),
        "grafana/dashboards/tritonize.json": to_json(monitoring.dashboard()),
        "gateway/Dockerfile": images.gateway_dockerfile(plan),
        **images.triton_files(plan, "triton"),
    }


def relative_repo(plan: Plan, out: str) -> str:
    """REPO relative to the asset folder ``out`` (compose resolves a relative bind source from the compose
    file's folder: the same repository and folder give the same file wherever the project lies)."""
    rel = os.path.relpath(plan.repo, os.path.abspath(out))
    return rel if rel.startswith(".") else "./" + rel
