"""The asyncio twin of ``client.py``: ``AsyncTritonClient`` and ``AsyncModelClient``, same names and checks.

    async with AsyncTritonClient("localhost:8001") as triton:
        digits = await triton.model("digits_onnx")
        out = await digits.infer(image=batch)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from numpy.typing import NDArray

from . import calls
from .client import _OPTIONS, Outputs
from .errors import ModelNotFoundError, TritonClientError
from .model_info import ModelInfo
from .retry import DEFAULT_RETRY, UNREGISTER_RETRY, Attempts, RetryPolicy
from .shared_memory import Region, RegionPool
from .transport import DEFAULT_OPTIONS, AsyncTransport, Endpoint, RequestOptions, normalize


class AsyncTritonClient:
    """See ``TritonClient``; every method is a coroutine."""

    def __init__(self, url: str = "localhost:8001", *, protocol: str | None = None, timeout_s: float | None = 60.0,
                 retry: RetryPolicy | None = DEFAULT_RETRY, headers: Mapping[str, str] | None = None,
                 shared_memory: str = "none", max_concurrency: int = 4, **options: Any) -> None:
        self.endpoint = Endpoint.parse(url, protocol)
        calls.check_client_options(timeout_s, max_concurrency)
        self.timeout_s = timeout_s
        self.retry = retry
        self.headers = dict(headers or {})
        self.max_concurrency = max_concurrency
        self.transport = AsyncTransport(self.endpoint, timeout_s, options)
        self.pool = RegionPool(shared_memory) if shared_memory != "none" else None
        self._models: dict[tuple[str, str], AsyncModelClient] = {}

    async def _call(self, what: str, method: str, *args: Any, idempotent: bool = True,
                    timeout_s: float | None = None, policy: RetryPolicy | None = None, **kwargs: Any) -> Any:
        attempts = Attempts(policy or (self.retry if idempotent else None), timeout_s or self.timeout_s, what)
        if self.headers:
            kwargs.setdefault("headers", self.headers)
        while True:
            try:
                return await self.transport.call(what, method, *args, timeout_s=attempts.remaining(), **kwargs)
            except TritonClientError as exc:
                await asyncio.sleep(attempts.delay_after(exc))

    async def model(self, name: str, version: str = "") -> AsyncModelClient:
        key = (name, str(version))
        if key not in self._models:
            info = ModelInfo.from_config(await self.model_config(name, version), str(version))
            self._models[key] = AsyncModelClient(self, info)
        return self._models[key]

    async def is_live(self) -> bool:
        return bool(await self._call("is_server_live", "is_server_live", idempotent=False))

    async def is_ready(self, timeout_s: float | None = None) -> bool:
        return bool(await self._call("is_server_ready", "is_server_ready", idempotent=False, timeout_s=timeout_s))

    async def is_model_ready(self, name: str, version: str = "", timeout_s: float | None = None) -> bool:
        try:
            return bool(await self._call(f"is_model_ready {name}", "is_model_ready", name, str(version),
                                         idempotent=False, timeout_s=timeout_s))
        except ModelNotFoundError:
            return False

    async def wait_until_ready(self, model: str | None = None, version: str = "", timeout_s: float = 60.0) -> None:
        """As ``TritonClient.wait_until_ready``."""
        deadline = time.monotonic() + timeout_s
        last: TritonClientError | None = None
        index: list[dict[str, Any]] = []
        while True:
            probe = max(deadline - time.monotonic(), 0.1)
            refused = None
            try:
                if model is None:
                    if await self.is_ready(timeout_s=probe):
                        return
                else:
                    if await self.is_model_ready(model, version, timeout_s=probe):
                        return
                    index = await self.list_models(timeout_s=probe)
                    refused = calls.never_ready(model, version, index)
                last = None
            except TritonClientError as exc:
                last = exc
            if refused is not None:
                raise refused
            if time.monotonic() >= deadline:
                raise calls.not_ready_error(model, timeout_s, last, index)
            await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0)))

    async def server_metadata(self) -> dict[str, Any]:
        raw = await self._call("server metadata", "get_server_metadata")
        return dict(normalize(self.endpoint.protocol, "metadata", raw))

    async def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        raw = await self._call(f"metadata of {name}", "get_model_metadata", name, str(version))
        return dict(normalize(self.endpoint.protocol, "metadata", raw))

    async def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        raw = await self._call(f"config of {name}", "get_model_config", name, str(version))
        return dict(normalize(self.endpoint.protocol, "config", raw))

    async def statistics(self, name: str = "", version: str = "",
                         timeout_s: float | None = None) -> list[dict[str, Any]]:
        raw = await self._call(f"statistics of {name or 'all models'}", "get_inference_statistics", name,
                               str(version), timeout_s=timeout_s)
        return list(normalize(self.endpoint.protocol, "stats", raw).get("model_stats", []))

    async def list_models(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        raw = await self._call("repository index", "get_model_repository_index", timeout_s=timeout_s)
        return list(normalize(self.endpoint.protocol, "index", raw))

    async def load_model(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"config": json.dumps(config)} if config else {}
        await self._call(f"load {name}", "load_model", name, idempotent=False, **kwargs)
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    async def unload_model(self, name: str) -> None:
        await self._call(f"unload {name}", "unload_model", name, idempotent=False)
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    async def _register(self, regions: list[Region]) -> None:
        assert self.pool is not None
        for region in regions:
            method, args = self.pool.backend.register_args(region)
            await self._call(f"register {region.name}", method, *args, idempotent=False)

    async def _unregister(self, regions: list[Region]) -> None:
        if self.pool is None or not regions:
            return
        for region in regions:
            with contextlib.suppress(TritonClientError):  # the server may be gone; freed below
                await self._call(f"unregister {region.name}", self.pool.backend.unregister, region.name,
                                 policy=UNREGISTER_RETRY, timeout_s=5)
        self.pool.discard(regions)

    async def close(self) -> None:
        if self.pool is not None:
            await self._unregister(self.pool.everything())
        await self.transport.close()

    async def __aenter__(self) -> AsyncTritonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncModelClient:
    """See ``ModelClient``; ``infer``, ``infer_sample`` and ``infer_batch`` are coroutines."""

    def __init__(self, client: AsyncTritonClient, info: ModelInfo) -> None:
        self.client = client
        self.info = info
        self._options = RequestOptions(headers=client.headers) if client.headers else DEFAULT_OPTIONS

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def max_batch_size(self) -> int:
        return self.info.max_batch_size

    async def infer(self, inputs: Mapping[str, Any] | None = None, /, *, outputs: Sequence[str] | None = None,
                    cast: bool | str = False, timeout_s: float | None = None, priority: int = 0,
                    server_timeout_us: int | None = None, parameters: Mapping[str, Any] | None = None,
                    request_id: str = "", sequence_id: int | str = 0, sequence_start: bool = False,
                    sequence_end: bool = False, headers: Mapping[str, str] | None = None, **named: Any) -> Outputs:
        arrays = self.info.check_inputs(calls.merge_inputs(self.info, inputs, named), cast)
        calls.require_samples(self.info, arrays)
        options = calls.call_options(self._options, self.client.headers, headers, priority=priority,
                                     server_timeout_us=server_timeout_us, request_id=request_id,
                                     sequence_id=sequence_id, sequence_start=sequence_start,
                                     sequence_end=sequence_end, parameters=parameters)
        return await self._send(arrays, self.info.output_names(outputs) if outputs else None, options, timeout_s)

    async def infer_sample(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Outputs:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
        sample = calls.add_batch_dim(self.info, calls.merge_inputs(self.info, inputs, kwargs))
        return {name: value[0] for name, value in (await self.infer(sample, **options)).items()}

    async def infer_batch(self, inputs: Mapping[str, Any] | None = None, /, *, max_concurrency: int | None = None,
                          outputs: Sequence[str] | None = None, cast: bool | str = False,
                          timeout_s: float | None = None, **named: Any) -> Outputs:
        calls.check_client_options(timeout_s, max_concurrency)
        parts = calls.checked_chunks(self.info, calls.merge_inputs(self.info, inputs, named), cast)
        names = self.info.output_names(outputs) if outputs else None
        options = self._options
        gate = asyncio.Semaphore(max(1, max_concurrency or self.client.max_concurrency))
        start = time.monotonic()

        async def one(part: dict[str, NDArray[Any]]) -> Outputs:
            async with gate:
                return await self._send(part, names, options, timeout_s, start)

        tasks = [asyncio.ensure_future(one(p)) for p in parts]
        try:
            return calls.concat(await asyncio.gather(*tasks))
        finally:  # the first failure cancels the rest (a no-op for the tasks that finished)
            for task in tasks:
                task.cancel()

    async def _send(self, arrays: dict[str, NDArray[Any]], names: list[str] | None, options: RequestOptions,
                    timeout_s: float | None, start: float | None = None) -> Outputs:
        client = self.client
        budget = timeout_s or client.timeout_s
        if start is None:
            start = time.monotonic()
        try:
            return await self._attempt(arrays, names, options,
                                       budget if budget is None else max(start + budget - time.monotonic(), 0.001))
        except TritonClientError as exc:
            attempts = Attempts(client.retry, budget, f"infer {self.name}", start)
            await asyncio.sleep(attempts.delay_after(exc))
        while True:
            try:
                return await self._attempt(arrays, names, options, attempts.remaining())
            except TritonClientError as exc:
                await asyncio.sleep(attempts.delay_after(exc))

    async def _attempt(self, arrays: dict[str, NDArray[Any]], names: list[str] | None, options: RequestOptions,
                       timeout_s: float | None) -> Outputs:
        client = self.client
        wanted = names or self.info.all_outputs
        shm = calls.shm_plan(client.pool, self.info, arrays, wanted)
        try:
            if shm is not None:
                await client._register(shm.new)
            requests = client.transport.requests
            tensors = requests.inputs(arrays, shm.inputs if shm else None)
            requested = requests.outputs(wanted, shm.outputs) if shm else requests.outputs(names, None)
            kwargs = requests.infer_kwargs(self.name, self.info.version, tensors, requested, options, timeout_s)
            result = await client.transport.call(f"infer {self.name}", "infer", timeout_s=timeout_s, **kwargs)
            out = calls.extract(result, wanted, shm, client.pool)
        except BaseException:
            if shm is not None:
                await client._unregister(shm.regions)
            raise
        if shm is not None and client.pool is not None:
            client.pool.release(shm.regions)
        return self.info.keyed(out)  # by the model's own names (TorchScript's OUTPUT__i renamed)
