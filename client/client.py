"""The typed, blocking client: ``TritonClient`` (server) and ``ModelClient`` (one model version).

    with TritonClient("localhost:8001") as triton:           # gRPC; "http://localhost:8000" for HTTP
        digits = triton.model("digits_onnx")                 # reads the config once
        out = digits.infer(image=batch)                       # {"logits": array}, checked before sending
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from numpy.typing import NDArray

from . import calls
from .errors import ModelNotFoundError, TritonClientError
from .model_info import ModelInfo
from .retry import DEFAULT_RETRY, UNREGISTER_RETRY, Attempts, RetryPolicy
from .shared_memory import Region, RegionPool
from .transport import DEFAULT_OPTIONS, Endpoint, RequestOptions, SyncTransport, normalize

Outputs = dict[str, NDArray[Any]]


class TritonClient:
    """A Triton server over gRPC (default) or HTTP. Thread-safe.

    ``timeout_s`` bounds every call, retries included; ``retry`` (None to disable) retries idempotent calls
    when the server is unreachable or the model not ready. ``shared_memory`` is ``"none"``, ``"system"``
    (same host) or ``"cuda"``. ``headers`` go with every request; other keyword arguments (``ssl``,
    ``root_certificates``, ``ssl_options``, ...) go to tritonclient's constructor.
    """

    def __init__(self, url: str = "localhost:8001", *, protocol: str | None = None, timeout_s: float | None = 60.0,
                 retry: RetryPolicy | None = DEFAULT_RETRY, headers: Mapping[str, str] | None = None,
                 shared_memory: str = "none", max_concurrency: int = 4, **options: Any) -> None:
        self.endpoint = Endpoint.parse(url, protocol)
        calls.check_client_options(timeout_s, max_concurrency)
        self.timeout_s = timeout_s
        self.retry = retry
        self.headers = dict(headers or {})
        self.max_concurrency = max_concurrency
        self.transport = SyncTransport(self.endpoint, timeout_s, options)
        self.pool = RegionPool(shared_memory) if shared_memory != "none" else None
        self._models: dict[tuple[str, str], ModelClient] = {}

    # --- calls --------------------------------------------------------------------------------------------
    def _call(self, what: str, method: str, *args: Any, idempotent: bool = True, timeout_s: float | None = None,
              policy: RetryPolicy | None = None, **kwargs: Any) -> Any:
        attempts = Attempts(policy or (self.retry if idempotent else None), timeout_s or self.timeout_s, what)
        if self.headers:
            kwargs.setdefault("headers", self.headers)
        while True:
            try:
                if self.endpoint.protocol == "grpc":
                    kwargs["client_timeout"] = attempts.remaining()
                return self.transport.call(what, method, *args, **kwargs)
            except TritonClientError as exc:
                time.sleep(attempts.delay_after(exc))

    def model(self, name: str, version: str = "") -> ModelClient:
        """A client bound to one model (and version); its config is read once and cached."""
        key = (name, str(version))
        if key not in self._models:
            self._models[key] = ModelClient(self, ModelInfo.from_config(self.model_config(name, version), str(version)))
        return self._models[key]

    # --- health and introspection -------------------------------------------------------------------------
    def is_live(self) -> bool:
        return bool(self._call("is_server_live", "is_server_live", idempotent=False))

    def is_ready(self, timeout_s: float | None = None) -> bool:
        return bool(self._call("is_server_ready", "is_server_ready", idempotent=False, timeout_s=timeout_s))

    def is_model_ready(self, name: str, version: str = "", timeout_s: float | None = None) -> bool:
        try:
            return bool(self._call(f"is_model_ready {name}", "is_model_ready", name, str(version), idempotent=False,
                                   timeout_s=timeout_s))
        except ModelNotFoundError:
            return False

    def wait_until_ready(self, model: str | None = None, version: str = "", timeout_s: float = 60.0) -> None:
        """Block until the server (and ``model``) is ready, at most ``timeout_s``. A model or version the server
        does not have, or whose load failed, fails at once (``calls.never_ready``); when time is up, the error
        gives the model's state, or says the server was unreachable."""
        deadline = time.monotonic() + timeout_s
        last: TritonClientError | None = None
        index: list[dict[str, Any]] = []
        while True:
            probe = max(deadline - time.monotonic(), 0.1)  # no call outlives the wait
            refused = None
            try:
                if model is None:
                    if self.is_ready(timeout_s=probe):
                        return
                else:
                    if self.is_model_ready(model, version, timeout_s=probe):
                        return
                    index = self.list_models(timeout_s=probe)
                    refused = calls.never_ready(model, version, index)
                last = None
            except TritonClientError as exc:
                last = exc
            if refused is not None:
                raise refused
            if time.monotonic() >= deadline:
                raise calls.not_ready_error(model, timeout_s, last, index)
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))

    def server_metadata(self) -> dict[str, Any]:
        return dict(normalize(self.endpoint.protocol, "metadata", self._call("server metadata", "get_server_metadata")))

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        raw = self._call(f"metadata of {name}", "get_model_metadata", name, str(version))
        return dict(normalize(self.endpoint.protocol, "metadata", raw))

    def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        raw = self._call(f"config of {name}", "get_model_config", name, str(version))
        return dict(normalize(self.endpoint.protocol, "config", raw))

    def statistics(self, name: str = "", version: str = "", timeout_s: float | None = None) -> list[dict[str, Any]]:
        raw = self._call(f"statistics of {name or 'all models'}", "get_inference_statistics", name, str(version),
                         timeout_s=timeout_s)
        return list(normalize(self.endpoint.protocol, "stats", raw).get("model_stats", []))

    # --- model management ---------------------------------------------------------------------------------
    def list_models(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The repository index: name, version, state and reason of every model Triton knows."""
        raw = self._call("repository index", "get_model_repository_index", timeout_s=timeout_s)
        return list(normalize(self.endpoint.protocol, "index", raw))

    def load_model(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        """Load (or reload) a model; explicit model-control mode. ``config`` overrides its config.pbtxt."""
        import json

        kwargs: dict[str, Any] = {"config": json.dumps(config)} if config else {}
        self._call(f"load {name}", "load_model", name, idempotent=False, **kwargs)
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    def unload_model(self, name: str) -> None:
        self._call(f"unload {name}", "unload_model", name, idempotent=False)
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    # --- shared memory ------------------------------------------------------------------------------------
    def _register(self, regions: list[Region]) -> None:
        assert self.pool is not None
        for region in regions:
            method, args = self.pool.backend.register_args(region)
            self._call(f"register {region.name}", method, *args, idempotent=False)

    def _unregister(self, regions: list[Region]) -> None:
        if self.pool is None or not regions:
            return
        for region in regions:
            with contextlib.suppress(TritonClientError):  # the server may be gone; freed below
                self._call(f"unregister {region.name}", self.pool.backend.unregister, region.name,
                           policy=UNREGISTER_RETRY, timeout_s=5)
        self.pool.discard(regions)

    def shared_memory_status(self) -> Any:
        method = "get_cuda_shared_memory_status" if self.pool and self.pool.backend.kind == "cuda" \
            else "get_system_shared_memory_status"
        return self._call("shared memory status", method)

    def close(self) -> None:
        if self.pool is not None:
            self._unregister(self.pool.everything())
        self.transport.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ModelClient:
    """One model version: inputs checked against its config before anything is sent."""

    def __init__(self, client: TritonClient, info: ModelInfo) -> None:
        self.client = client
        self.info = info
        self._options = RequestOptions(headers=client.headers) if client.headers else DEFAULT_OPTIONS

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def max_batch_size(self) -> int:
        return self.info.max_batch_size

    def infer(self, inputs: Mapping[str, Any] | None = None, /, *, outputs: Sequence[str] | None = None,
              cast: bool | str = False, timeout_s: float | None = None, priority: int = 0,
              server_timeout_us: int | None = None, parameters: Mapping[str, Any] | None = None,
              request_id: str = "", sequence_id: int | str = 0, sequence_start: bool = False,
              sequence_end: bool = False, headers: Mapping[str, str] | None = None, **named: Any) -> Outputs:
        """Run one request; inputs by name (a dict, keyword arguments, or both). Returns outputs by name: the
        model's own names (``TensorInfo.key``), the same for its ONNX and TorchScript builds."""
        arrays = self.info.check_inputs(calls.merge_inputs(self.info, inputs, named), cast)
        calls.require_samples(self.info, arrays)
        options = calls.call_options(self._options, self.client.headers, headers, priority=priority,
                                     server_timeout_us=server_timeout_us, request_id=request_id,
                                     sequence_id=sequence_id, sequence_start=sequence_start,
                                     sequence_end=sequence_end, parameters=parameters)
        return self._send(arrays, self.info.output_names(outputs) if outputs else None, options, timeout_s)

    def infer_sample(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs:
        """One sample without its batch dimension: added before sending, removed from the outputs."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
        sample = calls.add_batch_dim(self.info, calls.merge_inputs(self.info, inputs, kwargs))
        return {name: value[0] for name, value in self.infer(sample, **options).items()}

    def infer_batch(self, inputs: Mapping[str, Any] | None = None, /, *, max_concurrency: int | None = None,
                    outputs: Sequence[str] | None = None, cast: bool | str = False, timeout_s: float | None = None,
                    **named: Any) -> Outputs:
        """Any batch size: split by max_batch_size, sent concurrently (bounded), reassembled in order.
        ``timeout_s`` bounds the whole call; the first failure cancels the parts not yet sent."""
        calls.check_client_options(timeout_s, max_concurrency)
        parts = calls.checked_chunks(self.info, calls.merge_inputs(self.info, inputs, named), cast)
        names = self.info.output_names(outputs) if outputs else None
        options = self._options
        start = time.monotonic()
        workers = max(1, min(max_concurrency or self.client.max_concurrency, len(parts)))
        if workers == 1:
            return calls.concat([self._send(p, names, options, timeout_s, start) for p in parts])
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(self._send, p, names, options, timeout_s, start) for p in parts]
            try:
                return calls.concat([f.result() for f in futures])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _send(self, arrays: dict[str, NDArray[Any]], names: list[str] | None, options: RequestOptions,
              timeout_s: float | None, start: float | None = None) -> Outputs:
        """One request within the deadline that began at ``start`` (now by default), retried on errors that
        may pass (the retry state is only built after a failure: this path is hot)."""
        client = self.client
        budget = timeout_s or client.timeout_s
        if start is None:
            start = time.monotonic()
        try:
            return self._attempt(arrays, names, options,
                                 budget if budget is None else max(start + budget - time.monotonic(), 0.001))
        except TritonClientError as exc:
            attempts = Attempts(client.retry, budget, f"infer {self.name}", start)
            time.sleep(attempts.delay_after(exc))
        while True:
            try:
                return self._attempt(arrays, names, options, attempts.remaining())
            except TritonClientError as exc:
                time.sleep(attempts.delay_after(exc))

    def _attempt(self, arrays: dict[str, NDArray[Any]], names: list[str] | None, options: RequestOptions,
                 timeout_s: float | None) -> Outputs:
        client = self.client
        wanted = names or self.info.all_outputs
        shm = calls.shm_plan(client.pool, self.info, arrays, wanted)
        try:
            if shm is not None:
                client._register(shm.new)
            requests = client.transport.requests
            tensors = requests.inputs(arrays, shm.inputs if shm else None)
            requested = requests.outputs(wanted, shm.outputs) if shm else requests.outputs(names, None)
            kwargs = requests.infer_kwargs(self.name, self.info.version, tensors, requested, options, timeout_s)
            result = client.transport.call(f"infer {self.name}", "infer", **kwargs)
            out = calls.extract(result, wanted, shm, client.pool)
        except BaseException:
            if shm is not None:  # a failed call gives its regions back to nobody
                client._unregister(shm.regions)
            raise
        if shm is not None and client.pool is not None:
            client.pool.release(shm.regions)
        return self.info.keyed(out)  # by the model's own names (TorchScript's OUTPUT__i renamed)


_OPTIONS = {"outputs", "cast", "timeout_s", "priority", "server_timeout_us", "parameters", "request_id",
            "sequence_id", "sequence_start", "sequence_end", "headers"}
