"""Stand-in for Triton's native onnxruntime backend: ONNX Runtime sessions configured from the model's
``parameters`` and graph optimization level, as the native backend configures them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from . import StandIn, text

_DEFAULT_MAX_BATCH_SIZE = 4  # tritonserver's --backend-config default-max-batch-size
_CONFIG_TYPES = {f"tensor({ort})": f"TYPE_{triton}" for ort, triton in (
    ("float", "FP32"), ("double", "FP64"), ("float16", "FP16"), ("bfloat16", "BF16"), ("int8", "INT8"),
    ("int16", "INT16"), ("int32", "INT32"), ("int64", "INT64"), ("uint8", "UINT8"), ("uint16", "UINT16"),
    ("uint32", "UINT32"), ("uint64", "UINT64"), ("bool", "BOOL"), ("string", "STRING"))}
_ORT_ERROR = re.compile(r"^\[ONNXRuntimeError\] : (\d+) : \w+ : ", re.S)


class OnnxRuntimeModel(StandIn):
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
        providers: list[str | tuple[str, dict[str, Any]]] = ["CPUExecutionProvider"]
        if self.gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device_id}))
        elif self.gpu:
            pb_utils.Logger.log_warn(f"{self.name}: KIND_GPU instance runs on CPU (onnxruntime has no CUDA here)")
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    @classmethod
    def auto_complete(cls, config: dict[str, Any], model_file: str) -> None:
        """onnxruntime.cc AutoCompleteConfig (r24.10): nothing when inputs (or batch inputs) and outputs are both
        listed; else max_batch_size and dynamic batching from whether every model tensor has a dynamic first
        dimension, then every model input (output) when none is listed."""
        import onnxruntime as ort

        listed = {"input": len(config.get("input", [])) + len(config.get("batch_input", [])),
                  "output": len(config.get("output", []))}
        if all(listed.values()):
            return
        session = ort.InferenceSession(model_file, providers=["CPUExecutionProvider"])
        tensors = {"input": session.get_inputs(), "output": session.get_outputs()}
        shapes = {t.name: [d if isinstance(d, int) else -1 for d in t.shape] for io in tensors.values() for t in io}
        if all(shape and shape[0] == -1 for shape in shapes.values()):
            if not config.get("max_batch_size"):
                config["max_batch_size"] = _DEFAULT_MAX_BATCH_SIZE
            if config["max_batch_size"] > 1 and "sequence_batching" not in config:
                config.setdefault("dynamic_batching", {})
        elif config.get("max_batch_size"):
            raise pb_utils.TritonModelException(
                f"autofill failed for model '{config['name']}': model does not support batching while non-zero "
                "max_batch_size is specified")
        batched = config.get("max_batch_size", 0) > 0
        for key in ("input", "output"):
            if listed[key]:
                continue
            config[key] = []
            for t in tensors[key]:
                dims = shapes[t.name][1 if batched else 0:] or [1]
                entry: dict[str, Any] = {"name": t.name, "data_type": _CONFIG_TYPES[t.type], "dims": dims}
                if batched and not t.shape[1:]:
                    entry["reshape"] = {"shape": []}
                config[key].append(entry)

    def input_tensor(self, tensor: Any, is_string: bool) -> Any:
        value = tensor.as_numpy()
        if is_string:  # ONNX Runtime's Python API takes str elements; Triton hands over bytes
            value = np.array([text(b, tensor.name()) for b in value.reshape(-1)], dtype=object).reshape(value.shape)
        return value

    def output_tensor(self, name: str, value: Any) -> Any:
        if value.dtype == object:
            value = np.array([v.encode() for v in value.reshape(-1)], dtype=object).reshape(value.shape)
        return super().output_tensor(name, value)

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return dict(zip(self.fetches, self.session.run(self.fetches, inputs)))

    def execute_error(self, exc: Exception) -> str:
        """``onnx runtime error <code>: <message>``, as onnxruntime_utils.h RETURN_IF_ORT_ERROR words it."""
        match = _ORT_ERROR.match(str(exc))
        return f"onnx runtime error {match.group(1)}: {str(exc)[match.end():]}" if match else super().execute_error(exc)

