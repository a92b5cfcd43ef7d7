"""Stand-in for Triton's native onnxruntime backend: ONNX Runtime sessions configured from the model's
``parameters`` and graph optimization level, as the native backend configures them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

from . import StandIn


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

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
