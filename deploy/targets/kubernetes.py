"""``tritonize deploy --target kubernetes``: one file per object, so ``kubectl apply -f`` the folder applies them
all, and an object a cluster cannot take (no prometheus-operator: servicemonitor.yaml, prometheusrule.yaml) is
one file to leave out; the prometheus-adapter rule the HPA's metric needs, as Helm values, in its own folder
(``kubectl apply -f`` does not descend into it)."""

from __future__ import annotations

from typing import Any

from .. import monitoring
from . import images
from .files import to_yaml
from .plan import GCS_KEY, MOUNT, OBJECT_STORES, PORTS, PROBE_PERIOD_S, Plan

UID = 1000  # triton-server, the NGC image's user
QUEUE_METRIC = "triton_queue_us_per_request"  # what the adapter serves and the HPA scales on
ADAPTER_WINDOW = "2m"


def _labels(plan: Plan) -> dict[str, str]:
    return {"app.kubernetes.io/name": plan.options.name, "app.kubernetes.io/component": "triton",
            "app.kubernetes.io/managed-by": "tritonize"}


def _meta(plan: Plan, name: str | None = None) -> dict[str, Any]:
    return {"name": name or plan.options.name, "labels": _labels(plan)}


def secret_name(plan: Plan) -> str:
    return f"{plan.options.name}-storage"


def _container(plan: Plan) -> dict[str, Any]:
    def probe(path: str, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5,
                "failureThreshold": failures}

    requests = {k: v for k, v in (("cpu", plan.options.cpu), ("memory", plan.options.memory)) if v}
    limits: dict[str, Any] = {k: v for k, v in (("memory", plan.options.memory),) if v}
    if plan.gpus:
        limits["nvidia.com/gpu"] = plan.gpus
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}]
    env: list[dict[str, Any]] = []
    if not plan.scheme:
        mounts.append({"name": "models", "mountPath": MOUNT, "readOnly": True})
    elif plan.scheme == "gs":
        mounts.append({"name": "storage-key", "mountPath": GCS_KEY.rsplit("/", 1)[0], "readOnly": True})
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": GCS_KEY})
    else:
        env += [{"name": v, "valueFrom": {"secretKeyRef": {"name": secret_name(plan), "key": v}}}
                for v in OBJECT_STORES[plan.scheme]]
    container: dict[str, Any] = {
        "name": "triton", "image": images.triton_image(plan), "command": ["tritonserver"],
        "args": plan.server_args(),
        "ports": [{"name": name, "containerPort": port} for name, port in PORTS.items()],
    }
    if env:
        container["env"] = env
    container.update({
        "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
        "startupProbe": probe("/v2/health/ready", plan.startup_failures),
        "livenessProbe": probe("/v2/health/live", 3),
        "readinessProbe": probe("/v2/health/ready", 3),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    })
    return container


def _volumes(plan: Plan) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}},
                                     {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]
    uri = plan.uri
    if uri.startswith("pvc://"):
        claim = uri[len("pvc://"):].partition("/")[0]
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    elif not plan.scheme:
        volumes.append({"name": "models", "hostPath": {"path": uri, "type": "Directory"}})
    elif plan.scheme == "gs":
        volumes.append({"name": "storage-key", "secret": {
            "secretName": secret_name(plan), "items": [{"key": "gcs.json", "path": GCS_KEY.rsplit("/", 1)[1]}]}})
    return volumes


def deployment(plan: Plan) -> dict[str, Any]:
    container = _container(plan)
    sub = plan.uri[len("pvc://"):].partition("/")[2] if plan.uri.startswith("pvc://") else ""
    if sub:
        next(m for m in container["volumeMounts"] if m["name"] == "models")["subPath"] = sub
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(plan),
        "spec": {
            "replicas": plan.options.replicas,
            "selector": {"matchLabels": _labels(plan)},
            "template": {
                "metadata": {"labels": _labels(plan)},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": _volumes(plan),
                }}}}


def service(plan: Plan) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(plan),
            "spec": {"selector": _labels(plan),
                     "ports": [{"name": n, "port": p, "targetPort": n} for n, p in PORTS.items()]}}


def hpa(plan: Plan) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _meta(plan),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.options.name},
                "minReplicas": plan.options.replicas, "maxReplicas": plan.max_replicas,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": QUEUE_METRIC},
                    "target": {"type": "AverageValue", "averageValue": str(plan.options.target_queue_us)}}}]}}


def pdb(plan: Plan) -> dict[str, Any]:
    # maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block every node drain
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(plan),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(plan)}}}


def pvc(plan: Plan) -> dict[str, Any]:
    size = max(1, -(-2 * plan.repo_bytes // (1 << 30)))  # twice the repository, in whole GiB
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(plan, f"{plan.options.name}-models"),
            "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": f"{size}Gi"}}}}


def service_monitor(plan: Plan) -> dict[str, Any]:
    # the job label is the Service's name: the alert rules select on it (alert_settings)
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": _meta(plan),
            "spec": {"selector": {"matchLabels": _labels(plan)},
                     "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}]}}


def prometheus_rule(plan: Plan) -> dict[str, Any]:
    rules = monitoring.alert_rules(monitoring.AlertSettings(triton_job=plan.options.name))
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": _meta(plan),
            "spec": rules}


def adapter_query() -> str:
    """The prometheus-adapter metricsQuery: queue time per request (us) per pod over ``ADAPTER_WINDOW``."""
    def per_pod(metric: str) -> str:
        return f"sum(rate({metric}{{<<.LabelMatchers>>}}[{ADAPTER_WINDOW}])) by (<<.GroupBy>>)"
    return f"{per_pod('nv_inference_queue_duration_us')} / clamp_min({per_pod('nv_inference_request_success')}, 0.001)"


def adapter_values() -> dict[str, Any]:
    """Helm values of prometheus-community/prometheus-adapter that define ``QUEUE_METRIC`` as a Pods metric."""
    return {"rules": {"default": False, "custom": [{
        "seriesQuery": 'nv_inference_queue_duration_us{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^nv_inference_queue_duration_us$", "as": QUEUE_METRIC},
        "metricsQuery": adapter_query()}]}}


def files(plan: Plan) -> dict[str, str]:
    out = {"deployment.yaml": to_yaml(deployment(plan)), "service.yaml": to_yaml(service(plan)),
           "hpa.yaml": to_yaml(hpa(plan)), "pdb.yaml": to_yaml(pdb(plan)),
           "servicemonitor.yaml": to_yaml(service_monitor(plan)),
           "prometheusrule.yaml": to_yaml(prometheus_rule(plan)),
           "prometheus-adapter/values.yaml": to_yaml(adapter_values()),
           **images.triton_files(plan, "image")}
    if plan.uri == f"pvc://{plan.options.name}-models":
        out["pvc.yaml"] = to_yaml(pvc(plan))
    return out
