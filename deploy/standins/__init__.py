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
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import triton_python_backend_utils as pb_utils

_EXECUTIONS = None  # one metric family per stub process
METRIC_PERIOD_S = 0.5  # how stale tritonize_standin_executions_total may be
_SEQUENCE_START, _SEQUENCE_END = 1, 2  # TRITONSERVER_REQUEST_FLAG_SEQUENCE_START / _END (tritonserver.h)


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


def text(value: bytes, tensor: str) -> str:
    """A string tensor's element as the str that ONNX Runtime's and torch's Python APIs take."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ValueError(f"string input '{tensor}' holds bytes that are not UTF-8, which the stand-in cannot hand "
                         "to the model through Python (the native backend can)") from None


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
        seq = self.config.get("sequence_batching", {})
        # (state input, state output): the python backend cannot hand Triton an updated state, so the stand-in
        # keeps each sequence's last output state itself (``memory``, by correlation id) and feeds it back
        self.states = [(s["input_name"], s["output_name"]) for s in seq.get("state", [])]
        self.memory: dict[Any, dict[str, Any]] = {}
        # what the model is fed from each request: configured inputs, then control inputs, then states
        self.feeds = [*self.input_names, *(c["name"] for c in seq.get("control_input", [])),
                      *(i for i, _ in self.states)]
        self.fetches = [*self.output_names, *(o for _, o in self.states if o not in self.output_names)]
        self.ragged = {t["name"] for t in self.config["input"] if t.get("allow_ragged_batch")}
        self.batch_inputs = self.config.get("batch_input", [])
        self.scattered = {b["target_name"][0]: b["source_input"][0] for b in self.config.get("batch_output", [])}
        self.strings = {t["name"] for t in (*self.config["input"], *self.config["output"])
                        if t.get("data_type") == "TYPE_STRING"}
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
        self.uncounted, self.count_after = 0, 0.0

    @classmethod
    def auto_complete(cls, config: dict[str, Any], model_file: str) -> None:
        """Fill in ``config`` from ``model_file`` as the native backend's auto-complete does (the pytorch backend
        has none)."""

    def load(self, path: Path) -> None:
        raise NotImplementedError

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run on whole (concatenated) tensors; return every fetch (configured outputs and output states)."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        groups = [requests] if self.batching else [[r] for r in requests]
        responses = []
        for group in groups:
            try:
                responses.extend(self._execute_batch(group))
            except Exception as exc:  # a failed batch fails its requests, with the native backend's message
                error = pb_utils.TritonError(self.execute_error(exc))
                responses.extend(pb_utils.InferenceResponse(error=error) for _ in group)
        self._count(len(groups))
        return responses

    def _count(self, executions: int) -> None:
        """Add to the executions counter at most every METRIC_PERIOD_S (the first at once): each increment is a
        round trip to the server process, which at concurrency 16 took a quarter of the stub's time."""
        self.uncounted += executions
        now = time.monotonic()
        if now >= self.count_after:
            self.executions.increment(self.uncounted)
            self.uncounted, self.count_after = 0, now + METRIC_PERIOD_S

    def execute_error(self, exc: Exception) -> str:
        """The message the native backend gives when running the model fails."""
        return f"{self.backend.name} stand-in execute failure: {exc}"

    def _execute_batch(self, requests: list[Any]) -> list[Any]:
        per_request, sizes = zip(*(self._request_inputs(r) for r in requests))
        joined = {}
        for name in self.feeds:
            parts = [feeds[name] for feeds in per_request]
            if parts[0] is not None:  # an optional input the request leaves out (max_batch_size 0: one request)
                joined[name] = self.concat([self.flatten(p) for p in parts] if name in self.ragged else parts) \
                    if self.batching else parts[0]
        joined.update(self._batch_inputs(per_request))
        outputs = self.run(joined)
        responses, start, scattered = [], 0, dict[str, int]()
        for request, feeds, size in zip(requests, per_request, sizes):
            sliced = {name: self.response_value(name, outputs[name], start, size, feeds, scattered)
                      for name in self.fetches}
            self._remember(request, sliced)
            wanted = request.requested_output_names() or self.output_names
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[self.output_tensor(n, sliced[n]) for n in self.output_names if n in wanted]))
            start += size
        return responses

    def _request_inputs(self, request: Any) -> tuple[dict[str, Any], int]:
        """Each feed of one request (None for an optional input it leaves out; its sequence's state as the
        stand-in remembers it) and its batch size: the first dimension of its first input (the scheduler has
        checked that they agree); 0 without batching."""
        feeds, size = {}, 0
        for name in self.feeds:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            feeds[name] = None if tensor is None else self.input_tensor(tensor, name in self.strings)
            if self.batching and not size and tensor is not None:
                size = int(tensor.shape()[0])
        if self.states and not request.flags() & _SEQUENCE_START:
            feeds.update(self.memory.get(request.correlation_id(), {}))
        return feeds, size

    def _remember(self, request: Any, outputs: dict[str, Any]) -> None:
        if not self.states:
            return
        key = request.correlation_id()
        if request.flags() & _SEQUENCE_END:
            self.memory.pop(key, None)
        else:
            self.memory[key] = {i: outputs[o] for i, o in self.states}

    def response_value(self, name: str, value: Any, start: int, size: int, feeds: dict[str, Any],
                       scattered: dict[str, int]) -> Any:
        """One request's part of a batch output: its rows, or for a scattered batch output (batch_output
        BATCH_SCATTER_WITH_INPUT_SHAPE) as many elements as its source input has, shaped as that input;
        ``scattered`` holds where the next request's part of each scattered output begins."""
        if not self.batching:
            return value
        if name not in self.scattered:
            return value[start : start + size]
        shape = tuple(feeds[self.scattered[name]].shape)
        begin = scattered.get(name, 0)
        scattered[name] = begin + int(np.prod(shape))
        return self.reshape(value[begin : scattered[name]], shape)

    def _batch_inputs(self, per_request: list[dict[str, Any]]) -> dict[str, Any]:
        """batch_input tensors as the backends compute them (backend r24.10 backend_input_collector.cc
        BatchInputShape / ProcessBatchInput), from the shapes of each request's source input."""
        out = {}
        for spec in self.batch_inputs:
            shapes = [tuple(feeds[spec["source_input"][0]].shape) for feeds in per_request]
            counts = [int(np.prod(s)) for s in shapes]
            kind = spec["kind"]
            if kind == "BATCH_ELEMENT_COUNT":
                value = np.array(counts)
            elif kind == "BATCH_ACCUMULATED_ELEMENT_COUNT":
                value = np.cumsum(counts)
            elif kind == "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO":
                value = np.cumsum([0, *counts])
            elif kind == "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE":  # only the shape carries meaning
                value = np.zeros(max(counts))
            elif kind in ("BATCH_ITEM_SHAPE", "BATCH_ITEM_SHAPE_FLATTEN"):  # per batch item, its shape less dim 0
                value = np.array([s[1:] for s in shapes for _ in range(s[0])]).reshape(sum(s[0] for s in shapes), -1)
                if kind == "BATCH_ITEM_SHAPE_FLATTEN":
                    value = value.reshape(-1)
            else:
                raise ValueError(f"unsupported batch_input kind {kind}")
            dtype = np.float32 if spec.get("data_type") == "TYPE_FP32" else np.int32
            for target in spec["target_name"]:
                out[target] = self.from_numpy(value.astype(dtype))
        return out

    # numpy by default; the PyTorch stand-in moves tensors with DLPack instead
    def input_tensor(self, tensor: Any, is_string: bool) -> Any:
        return tensor.as_numpy()

    def from_numpy(self, array: np.ndarray) -> Any:
        return array

    def flatten(self, value: Any) -> Any:
        return value.reshape(-1)

    def reshape(self, value: Any, shape: tuple[int, ...]) -> Any:
        return value.reshape(shape)

    def concat(self, arrays: list[Any]) -> Any:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def output_tensor(self, name: str, value: Any) -> Any:
        return pb_utils.Tensor(name, np.ascontiguousarray(value))

    def finalize(self) -> None:
        pass
