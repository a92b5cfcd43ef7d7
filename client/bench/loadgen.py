"""The built-in load generator: closed loop at a fixed concurrency, or open loop at a fixed request rate.

Closed loop: ``concurrency`` coroutines, each sending its next request when the previous one answers.
Open loop: requests start on a schedule (constant gaps or Poisson arrivals) whether or not earlier ones have
answered, and latency is measured from each request's *scheduled* time — a stalled server therefore shows up
in the latencies instead of silently slowing the schedule (no coordinated omission).

Load is driven by one or more workers — an asyncio loop in a thread, or several processes when one Python
process cannot saturate the server — each reporting ``(start, end, ok, send_us, recv_us)`` per request on
one monotonic clock (``CLOCK_MONOTONIC`` is shared by processes on Linux). ``measure_level`` turns the records
into windows and applies perf_analyzer's stability rule.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import UsageError
from ..transport import Endpoint


class Record(NamedTuple):
    start: float  # send time (closed loop) or scheduled time (open loop), time.monotonic()
    end: float
    ok: bool
    send_us: float  # building the request on the client
    recv_us: float  # reading the response on the client
    lag_us: float  # how late the request started after its scheduled time (open loop; ~0 closed loop)


@dataclass(frozen=True)
class Target:
    """Where to send, what, and how: everything a worker process needs (picklable)."""

    url: str
    protocol: str
    model: str
    version: str
    inputs: Mapping[str, NDArray[Any]]
    mode: str  # concurrency | request_rate
    distribution: str = "constant"  # request_rate: constant | poisson


async def _request(client: Any, module: Any, target: Target, start: float, emit: Callable[[Record], None]) -> None:
    began = time.monotonic()
    ok = True
    try:
        tensors = []
        for name, array in target.inputs.items():
            tensor = module.InferInput(name, list(array.shape), _wire(array))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        sent = time.monotonic()
        result = await client.infer(target.model, tensors, model_version=target.version)
        answered = time.monotonic()
        result.get_response()
    except Exception:
        sent = answered = time.monotonic()
        ok = False
    end = time.monotonic()
    emit(Record(start, end, ok, (sent - began) * 1e6, (end - answered) * 1e6, (began - start) * 1e6))


def _wire(array: NDArray[Any]) -> str:
    from tritonize.core.datatypes import wire_type

    return wire_type(array.dtype)


async def drive(target: Target, share: float, stop: Callable[[], bool], emit: Callable[[Record], None],
                seed: int = 0) -> None:
    """Run one worker's share of the load (coroutines, or requests/s) until ``stop()``."""
    endpoint = Endpoint.parse(target.url, target.protocol)
    if endpoint.protocol == "grpc":
        import tritonclient.grpc.aio as module
    else:
        import tritonclient.http.aio as module
    client = module.InferenceServerClient(endpoint.address)
    try:
        if target.mode == "concurrency":
            async def loop() -> None:
                while not stop():
                    await _request(client, module, target, time.monotonic(), emit)

            await asyncio.gather(*(loop() for _ in range(int(share))))
        else:
            rng = np.random.default_rng(seed)
            pending: set[asyncio.Task[None]] = set()
            next_at = time.monotonic()
            while not stop():
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(min(delay, 0.05))
                    continue
                task = asyncio.create_task(_request(client, module, target, next_at, emit))
                pending.add(task)
                task.add_done_callback(pending.discard)
                gap = 1.0 / share
                next_at += rng.exponential(gap) if target.distribution == "poisson" else gap
            if pending:
                await asyncio.wait(pending, timeout=30)
    finally:
        await client.close()


class ThreadWorker:
    """The load driven from a thread of this process."""

    def __init__(self, target: Target, share: float, seed: int) -> None:
        self._records: deque[Record] = deque()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(drive(target, share, self._stop.is_set, self._records.append, seed))
            except BaseException as exc:  # surfaced by drain()
                self._errors.append(exc)

        self._thread = threading.Thread(target=run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def drain(self) -> list[Record]:
        if self._errors:
            raise UsageError(f"load generator failed: {type(self._errors[0]).__name__}: {self._errors[0]}")
        out = []
        while self._records:
            out.append(self._records.popleft())
        return out

    def stop(self) -> list[Record]:
        self._stop.set()
        self._thread.join(timeout=60)
        return self.drain()


def _process_main(target: Target, share: float, seed: int, out: Any, stop: Any) -> None:
    batch: list[Record] = []
    last = [time.monotonic()]

    def emit(record: Record) -> None:
        batch.append(record)
        if time.monotonic() - last[0] > 0.1:
            out.put(list(batch))
            batch.clear()
            last[0] = time.monotonic()

    asyncio.run(drive(target, share, stop.is_set, emit, seed))
    out.put(list(batch))
    out.put(None)  # done


class ProcessWorker:
    """The load driven from a separate process (spawned: no inherited gRPC state)."""

    def __init__(self, target: Target, share: float, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue: Any = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(target=_process_main, args=(target, share, seed, self._queue, self._stop),
                                        daemon=True)
        self._done = False

    def start(self) -> None:
        self._process.start()

    def drain(self, wait_s: float = 0.0) -> list[Record]:
        out: list[Record] = []
        deadline = time.monotonic() + wait_s
        while True:
            try:
                chunk = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001) if wait_s else 0.001)
            except queue.Empty:
                if not wait_s or time.monotonic() >= deadline or self._done:
                    return out
                continue
            if chunk is None:
                self._done = True
                return out
            out.extend(chunk)

    def stop(self) -> list[Record]:
        self._stop.set()
        out = []
        while not self._done:
            got = self.drain(wait_s=1.0)
            out.extend(got)
            if not self._process.is_alive() and not got:
                break
        self._process.join(timeout=30)
        return out


def start_workers(target: Target, level: float, workers: int) -> list[ThreadWorker] | list[ProcessWorker]:
    """Split the level over ``workers`` (one: a thread here; more: processes)."""
    if target.mode == "concurrency":
        shares = [float(int(level) // workers + (1 if i < int(level) % workers else 0)) for i in range(workers)]
        shares = [s for s in shares if s > 0]
    else:
        shares = [level / workers] * workers
    pool: list[Any] = [(ThreadWorker if workers == 1 else ProcessWorker)(target, share, seed)
                       for seed, share in enumerate(shares)]
    for worker in pool:
        worker.start()
    return pool
