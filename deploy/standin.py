"""Stand-ins for Triton's native ``onnxruntime`` and ``pytorch`` backends, run as Python-based backends.

Triton uses ``<backend-directory>/<name>/model.py`` as backend ``<name>`` when there is no
``libtriton_<name>.so``, so the production repository (``backend: "onnxruntime"`` / ``"pytorch"``) loads
unmodified on the pip-installed tritonserver: config parsing, scheduling, dynamic batching, instance groups,
version policy, statistics and metrics are Triton's own; only the kernel runner is ours.

Faithful to the native backends: at load they refuse what those refuse (``backend_load_errors``: the rules
``tritonize check`` applies for them), and a PyTorch model's inputs and outputs map to ``forward()`` exactly as
the native backend maps them. Each request batch the scheduler forms is concatenated, run once and split.
This module runs inside the python backend's stub process (``triton_python_backend_utils`` is importable).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

_INDEXED = re.compile(r"^(.+)__(\d+)$")
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


class _StandIn:
    """What both stand-ins share: config, load-time validation, batching, responses."""

    backend = ""

    def initialize(self, args: dict[str, str]) -> None:
        from google.protobuf import json_format
        from tritonclient.grpc import model_config_pb2

        from tritonize.generator.check import backend_load_errors

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
        filename = self.config.get("default_model_filename") or self.default_filename
        path = model_dir / str(version) / filename
        if path.is_dir():  # model.onnx/ directory holding model.onnx and external data
            path = path / filename
        self.gpu = args["model_instance_kind"] == "GPU"
        self.device_id = int(args["model_instance_device_id"])
        self.load(path)
        self.executions = _executions(self.name, str(version), args["model_instance_name"])

    default_filename = ""

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
                error = pb_utils.TritonError(f"{self.backend} stand-in execute failure: {exc}")
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


class OnnxRuntimeModel(_StandIn):
    backend = "onnxruntime"
    default_filename = "model.onnx"

    def load(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        params = self.parameters
        if "intra_op_thread_count" in params:
            options.intra_op_num_threads = int(params["intra_op_thread_count"])
        if "inter_op_thread_count" in params:
            options.inter_op_num_threads = int(params["inter_op_thread_count"])
        if params.get("execution_mode") == "1":
            options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if params.get("enable_mem_arena") == "0":
            options.enable_cpu_mem_arena = False
        if params.get("enable_mem_pattern") == "0":
            options.enable_mem_pattern = False
        level = int(self.config.get("optimization", {}).get("graph", {}).get("level", 0))
        options.graph_optimization_level = {-1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                            1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}.get(
            level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        providers = ["CPUExecutionProvider"]
        if self.gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device_id}))
        elif self.gpu:
            pb_utils.Logger.log_warn(f"{self.name}: KIND_GPU instance runs on CPU (onnxruntime has no CUDA here)")
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))


class PyTorchModel(_StandIn):
    backend = "pytorch"
    default_filename = "model.pt"

    def load(self, path: Path) -> None:
        import torch

        params = self.parameters
        if "INTRA_OP_THREAD_COUNT" in params:
            torch.set_num_threads(int(params["INTRA_OP_THREAD_COUNT"]))
        if "INTER_OP_THREAD_COUNT" in params:
            with contextlib.suppress(RuntimeError):  # can be set once per process
                torch.set_num_interop_threads(int(params["INTER_OP_THREAD_COUNT"]))
        self.torch = torch
        self.device = f"cuda:{self.device_id}" if self.gpu and torch.cuda.is_available() else "cpu"
        self.module = torch.jit.load(str(path), map_location=self.device).eval()
        self.inference_mode = params.get("INFERENCE_MODE", "true") == "true"
        self.optimized = params.get("DISABLE_OPTIMIZED_EXECUTION", "false") != "true"
        args = [a.name for a in self.module.forward.schema.arguments[1:]]
        self.input_order = self._positions(self.input_names, args)
        self.output_order = self._positions(self.output_names, [])

    @staticmethod
    def _positions(names: list[str], forward_args: list[str]) -> list[int]:
        """Position of each configured tensor, as the native backend resolves it: all forward() argument
        names, or all ``<name>__<index>``; anything else (mixed conventions, other output names) is config order."""
        if forward_args and all(n in forward_args for n in names):
            return [forward_args.index(n) for n in names]
        indexed = [_INDEXED.match(n) for n in names]
        if all(indexed):
            return [int(m.group(2)) for m in indexed if m]
        return list(range(len(names)))

    def input_tensor(self, tensor: Any) -> Any:
        return self.torch.from_dlpack(tensor.to_dlpack())

    def concat(self, arrays: list[Any]) -> Any:
        return arrays[0] if len(arrays) == 1 else self.torch.cat(arrays)

    def output_tensor(self, name: str, value: Any) -> Any:
        return pb_utils.Tensor.from_dlpack(name, self.torch.utils.dlpack.to_dlpack(value.contiguous()))

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        args: list[Any] = [None] * len(self.input_names)
        for name, position in zip(self.input_names, self.input_order):
            args[position] = inputs[name].to(self.device)
        grad = torch.inference_mode() if self.inference_mode else torch.no_grad()
        with grad, torch.jit.optimized_execution(self.optimized):
            result = self.module(*args)
        outputs = [result] if isinstance(result, torch.Tensor) else list(result)
        if len(outputs) < len(self.output_names):
            raise ValueError(f"the model returned {len(outputs)} outputs, the configuration has "
                             f"{len(self.output_names)}")
        return {name: outputs[position] for name, position in zip(self.output_names, self.output_order)}
