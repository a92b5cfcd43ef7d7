"""What each model's route takes and returns, read from the repository (no Triton needed to build the app):
an ensemble behind image preprocessing takes an upload (``image_bytes``), one behind a tokenizer takes ``text``,
any other model JSON tensors; outputs with a label file are classified (probabilities, top-k labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format
from numpy.typing import NDArray

from tritonize.client import ModelInfo, TensorInfo
from tritonize.core.check.model import read_configs
from tritonize.core.distribution import probabilities
from tritonize.core.errors import SpecError

IMAGE, TEXT, TENSORS = "image", "text", "tensors"
RAW_INPUTS = {"image_bytes": IMAGE, "text": TEXT}  # the raw inputs generator/ensemble.py gives an ensemble
TOP_K = 5


@dataclass(frozen=True)
class ModelRoute:
    info: ModelInfo
    kind: str  # IMAGE, TEXT or TENSORS
    model_dir: Path
    drift_dir: Path  # whose manifest holds the outputs' reference: an ensemble's is its model's
    labels: dict[str, list[str]] = field(default_factory=dict)  # output key -> class names

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def path(self) -> str:
        return f"/predict/{self.name}"

    @property
    def raw_input(self) -> TensorInfo:
        return self.info.inputs[0]


def _kind(info: ModelInfo) -> str:
    if len(info.inputs) == 1 and info.inputs[0].dtype.is_string and info.inputs[0].name in RAW_INPUTS:
        return RAW_INPUTS[info.inputs[0].name]
    return TENSORS


def _config(model_dir: Path) -> dict[str, Any] | None:
    sources = [s for s in read_configs(model_dir) if s.rel == "config.pbtxt"]
    if not sources or sources[0].config is None:
        return None
    config: dict[str, Any] = json_format.MessageToDict(sources[0].config, preserving_proto_field_name=True)
    config.setdefault("name", model_dir.name)
    return config


def _steps(config: dict[str, Any]) -> list[str]:
    return [str(s["model_name"]) for s in (config.get("ensemble_scheduling") or {}).get("step", [])]


def read_routes(repo: Path) -> list[ModelRoute]:
    """One route per model of ``repo`` except the preprocessing steps an ensemble calls, in name order."""
    if not repo.is_dir():
        raise SpecError("REPO", str(repo), "a model repository (a folder of model folders)")
    configs = {d.name: c for d in sorted(repo.iterdir()) if d.is_dir() and (c := _config(d)) is not None}
    steps = {s for c in configs.values() for s in _steps(c)[:-1]}  # every step before an ensemble's model
    routes = []
    for name, config in configs.items():
        if name in steps:
            continue
        info = ModelInfo.from_config(config)
        model_dir = repo / name
        last = _steps(config)[-1:] or [name]
        label_dir = repo / last[0]
        labels = {}
        for out in info.outputs:
            label_file = out.label_filename or _model_label_file(configs.get(last[0], {}), out.name)
            if label_file and (label_dir / label_file).is_file():
                labels[out.key] = (label_dir / label_file).read_text().splitlines()
            elif label_file and (model_dir / label_file).is_file():
                labels[out.key] = (model_dir / label_file).read_text().splitlines()
        routes.append(ModelRoute(info, _kind(info), model_dir, repo / last[0], labels))
    if not routes:
        raise SpecError("REPO", str(repo), "a model repository with at least one model (a folder with config.pbtxt)")
    return routes


def _model_label_file(config: dict[str, Any], output: str) -> str:
    """An ensemble's output takes its labels from the model output it maps to (same name in generated ones)."""
    return next((str(o.get("label_filename", "")) for o in config.get("output", []) if o.get("name") == output), "")


def classify(scores: NDArray[Any], labels: list[str], top_k: int = TOP_K) -> dict[str, Any]:
    """One sample's class scores (logits or probabilities) as the seed's answer: class, confidence and the top-k
    labels."""
    probs = probabilities(scores.reshape(-1))
    order = np.argsort(-probs, kind="stable")[:top_k]
    name = [labels[i] if i < len(labels) else str(i) for i in order]
    return {"class": name[0], "confidence": float(probs[order[0]]),
            "labels": [{"label": n, "score": float(probs[i])} for n, i in zip(name, order)]}
