"""Stand-ins for Triton's native backends (one module each, named by the format registry's
``Backend.standin``), run as Python-based backends.

Triton uses ``<backend-directory>/<name>/model.py`` as backend ``<name>`` when there is no
``libtriton_<name>.so``, so the production repository (``backend: "onnxruntime"`` / ``"pytorch"``) loads
unmodified on the pip-installed tritonserver: config parsing, scheduling, dynamic batching, instance groups,
version policy, statistics and metrics are Triton's own; only the kernel runner is ours.

Faithful to the native backends: at load they refuse what those refuse (``backend_load_errors``: the rules
``tritonize check`` applies for them), and a PyTorch model's inputs and outputs map to ``forward()`` exactly as
the native backend maps them. Each request batch the scheduler forms is concatenated, run once and split.
These modules run inside the python backend's stub process (``triton_python_backend_utils`` is importable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import triton_python_backend_utils as pb_utils

_EXECUTIONS = None  # one metric family per stub process


def _executions(model: str, version: str, instance: str) -> Any:
    """Counter ``tritonize_standin_executions_total{model,version,instance}`` on Triton's metrics endpoint."""
    global _EXECUTIONS
    if _EXECUTIONS is None:
        _EXECUTIONS = pb_utils.MetricFamily(
            name="tritonize_standin_executions_total",
            description="Batches executed by each instance of a tritonize stand-in backend",
            kind=pb_utils.MetricFamily.COUNTER,
        )
    return _EXECUTIONS.Metric(labels={"model": model, "version": version, "instance": instance})


def _backend(config: dict[str, Any]) -> Any:
    """The registry's record of the model's backend (``tritonize.core.formats.Backend``)."""
    from tritonize.core import formats

    backend = formats.BACKENDS.get(config.get("backend", "")) or formats.by_platform(config.get("platform", ""))
    if backend is None:
        raise pb_utils.TritonModelException(f"no tritonize stand-in for backend {config.get('backend')!r}")
    return backend


def standin_for(config: dict[str, Any]) -> type[StandIn]:
    """The stand-in class the registry names for this model's backend."""
    from tritonize.core.loader import load_callable

    backend = _backend(config)
    cls = cast("type[StandIn]", load_callable(backend.standin, f"{backend.name} stand-in"))
    return cls


class StandIn:
    """What every stand-in shares: config, load-time validation, batching, responses."""

    def initialize(self, args: dict[str, str]) -> None:
        from google.protobuf import json_format
        from tritonclient.grpc import model_config_pb2

        from tritonize.core.check import backend_load_errors

        self.config = json.loads(args["model_config"])
        self.name = args["model_name"]
        model_dir = Path(args["model_repository"])
        version = int(args["model_version"])
        proto = json_format.ParseDict(self.config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        errors = backend_load_errors(model_dir, proto, version)
        if errors:
            raise pb_utils.TritonModelException(f"unable to load model '{self.name}': {errors[0]}")
        self.batching = int(self.config.get("max_batch_size", 0)) > 0
        self.input_names = [t["name"] for t in self.config["input"]]
        self.output_names = [t["name"] for t in self.config["output"]]
        self.parameters = {k: v["string_value"] for k, v in self.config.get("parameters", {}).items()}
        self.backend = _backend(self.config)
        filename = self.config.get("default_model_filename") or self.backend.default_filename
        path = model_dir / str(version) / filename
        if path.is_dir():  # model.onnx/ directory holding model.onnx and external data
            path = path / filename
        self.gpu = args["model_instance_kind"] == "GPU"
        self.device_id = int(args["model_instance_device_id"])
        try:
            self.load(path)
        except ImportError as exc:
            raise pb_utils.TritonModelException(
                f"unable to load model '{self.name}': the {self.backend.name} stand-in needs {exc.name}: "
                "pip install 'tritonize[server]'") from None
        self.executions = _executions(self.name, str(version), args["model_instance_name"])

    def load(self, path: Path) -> None:
        raise NotImplementedError

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run on whole (concatenated) tensors; return every configured output."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        groups = [requests] if self.batching else [[r] for r in requests]
        responses = []
        for group in groups:
            try:
                responses.extend(self._execute_batch(group))
            except Exception as exc:  # a failed batch fails its requests, not the server
                error = pb_utils.TritonError(f"{self.backend.name} stand-in execute failure: {exc}")
                responses.extend(pb_utils.InferenceResponse(error=error) for _ in group)
        self.executions.increment(len(groups))
        return responses

    def _execute_batch(self, requests: list[Any]) -> list[Any]:
        per_request = [[self.input_tensor(pb_utils.get_input_tensor_by_name(r, n)) for n in self.input_names]
                       for r in requests]
        sizes = [int(tensors[0].shape[0]) for tensors in per_request] if self.batching else [0]
        joined = {n: self.concat([tensors[i] for tensors in per_request]) if self.batching else per_request[0][i]
                  for i, n in enumerate(self.input_names)}
        outputs = self.run(joined)
        responses, start = [], 0
        for request, size in zip(requests, sizes):
            wanted = request.requested_output_names() or self.output_names
            tensors = []
            for name in self.output_names:
                if name in wanted:
                    value = outputs[name][start : start + size] if self.batching else outputs[name]
                    tensors.append(self.output_tensor(name, value))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    # numpy by default; the PyTorch stand-in moves tensors with DLPack instead
    def input_tensor(self, tensor: Any) -> Any:
        return tensor.as_numpy()

    def concat(self, arrays: list[Any]) -> Any:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def output_tensor(self, name: str, value: Any) -> Any:
        return pb_utils.Tensor(name, np.ascontiguousarray(value))

    def finalize(self) -> None:
        pass
