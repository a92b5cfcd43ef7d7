"""``tritonize deploy --target kserve``: an ``InferenceService`` served by KServe's Triton runtime
(``kserve-tritonserver``); KServe's storage initializer puts ``storageUri`` at /mnt/models."""

from __future__ import annotations

from typing import Any

from .files import to_yaml
from .plan import Plan

KSERVE_MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri


def inference_service(plan: Plan) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", plan.options.cpu), ("memory", plan.options.memory)) if v}
    limits: dict[str, Any] = {k: v for k, v in (("memory", plan.options.memory),) if v}
    if plan.gpus:
        limits["nvidia.com/gpu"] = str(plan.gpus)
    # the runtime's own args set the repository (/mnt/models) and ports; these are added to them
    args = [a for a in plan.server_args(KSERVE_MOUNT) if not a.startswith("--model-repository=")]
    model: dict[str, Any] = {
        "modelFormat": {"name": "triton"}, "runtime": "kserve-tritonserver",
        "runtimeVersion": f"{plan.release.name}-py3", "storageUri": plan.uri, "args": args}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if resources:
        model["resources"] = resources
    predictor: dict[str, Any] = {"minReplicas": plan.options.replicas, "maxReplicas": plan.max_replicas}
    if plan.scheme:  # the storage initializer reads the bucket with the credentials of this service account
        predictor["serviceAccountName"] = f"{plan.options.name}-storage"
    predictor["model"] = model
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": plan.options.name, "labels": {"app.kubernetes.io/managed-by": "tritonize"}},
            "spec": {"predictor": predictor}}


def files(plan: Plan) -> dict[str, str]:
    return {"inferenceservice.yaml": to_yaml(inference_service(plan))}
