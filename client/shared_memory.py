"""Shared-memory transport: tensors go through memory regions registered with Triton instead of the socket.

Regions are pooled per client and reused across calls (sizes rounded up to powers of two); a call holds its
regions exclusively. Regions used by a failed call, and all regions at ``close()``, are unregistered from the
server and destroyed. ``system`` uses POSIX shared memory (server on the same host); ``cuda`` uses CUDA IPC
(needs a GPU and ``tritonclient[cuda]``).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import UsageError

MIN_REGION = 1 << 16


@dataclass
class Region:
    name: str
    size: int
    handle: Any


class _System:
    kind = "system"

    def __init__(self) -> None:
        import tritonclient.utils.shared_memory as shm

        self.shm = shm

    def create(self, name: str, size: int) -> Any:
        return self.shm.create_shared_memory_region(name, f"/{name}", size)

    def register_args(self, region: Region) -> tuple[str, tuple[Any, ...]]:
        return "register_system_shared_memory", (region.name, f"/{region.name}", region.size)

    unregister = "unregister_system_shared_memory"

    def write(self, handle: Any, array: NDArray[Any]) -> None:
        self.shm.set_shared_memory_region(handle, [np.ascontiguousarray(array)])

    def read(self, handle: Any, dtype: np.dtype[Any], shape: list[int]) -> NDArray[Any]:
        return np.array(self.shm.get_contents_as_numpy(handle, dtype, shape), copy=True)

    def destroy(self, handle: Any) -> None:
        self.shm.destroy_shared_memory_region(handle)


class _Cuda(_System):
    kind = "cuda"

    def __init__(self, device_id: int = 0) -> None:
        try:
            import tritonclient.utils.cuda_shared_memory as cudashm
        except Exception as exc:
            raise UsageError(f"shared_memory='cuda' needs a GPU and tritonclient[cuda] ({exc})") from None
        self.shm = cudashm
        self.device_id = device_id

    def create(self, name: str, size: int) -> Any:
        return self.shm.create_shared_memory_region(name, size, self.device_id)

    def register_args(self, region: Region) -> tuple[str, tuple[Any, ...]]:
        return "register_cuda_shared_memory", (region.name, self.shm.get_raw_handle(region.handle),
                                               self.device_id, region.size)

    unregister = "unregister_cuda_shared_memory"


def backend(kind: str) -> _System:
    if kind == "system":
        return _System()
    if kind == "cuda":
        return _Cuda()
    raise UsageError(f"shared_memory: got {kind!r}, expected 'none', 'system' or 'cuda'")


class RegionPool:
    """Local regions, free or in use; registration with the server is the caller's (sync or async) job."""

    _ids = itertools.count()

    def __init__(self, kind: str) -> None:
        self.backend = backend(kind)
        self._free: list[Region] = []
        self._all: list[Region] = []
        self._lock = threading.Lock()
        self._prefix = f"tritonize_{os.getpid()}_{next(self._ids)}"

    def acquire(self, nbytes: int) -> tuple[Region, bool]:
        """A free region of at least ``nbytes``; True when it is new (and must be registered)."""
        size = max(MIN_REGION, 1 << max(nbytes - 1, 1).bit_length())
        with self._lock:
            for region in self._free:
                if region.size >= size:
                    self._free.remove(region)
                    return region, False
            name = f"{self._prefix}_{len(self._all)}"
            region = Region(name, size, self.backend.create(name, size))
            self._all.append(region)
            return region, True

    def release(self, regions: list[Region]) -> None:
        with self._lock:
            self._free.extend(regions)

    def discard(self, regions: list[Region]) -> None:
        """Forget regions (the caller unregisters them) and free their memory."""
        with self._lock:
            for region in regions:
                if region in self._all:
                    self._all.remove(region)
                if region in self._free:
                    self._free.remove(region)
        for region in regions:
            self.backend.destroy(region.handle)

    def everything(self) -> list[Region]:
        with self._lock:
            return list(self._all)


@dataclass
class ShmPlan:
    """The regions of one call: inputs written, outputs to read back."""

    inputs: dict[str, tuple[str, int]]
    outputs: dict[str, tuple[str, int]]
    regions: list[Region]
    new: list[Region]
    handles: dict[str, Any]


def plan(pool: RegionPool, arrays: dict[str, NDArray[Any]],
         output_sizes: dict[str, int]) -> ShmPlan:
    """Take regions for every input and for each output of known byte size; write the inputs."""
    result = ShmPlan({}, {}, [], [], {})
    try:
        for name, array in arrays.items():
            if array.dtype.kind == "O":
                continue  # strings travel in the request
            region, new = pool.acquire(array.nbytes)
            result.regions.append(region)
            if new:
                result.new.append(region)
            pool.backend.write(region.handle, array)
            result.inputs[name] = (region.name, array.nbytes)
        for name, nbytes in output_sizes.items():
            region, new = pool.acquire(nbytes)
            result.regions.append(region)
            if new:
                result.new.append(region)
            result.outputs[name] = (region.name, nbytes)
            result.handles[name] = region.handle
    except BaseException:
        pool.discard(result.new)
        pool.release([r for r in result.regions if r not in result.new])
        raise
    return result


def output_sizes(outputs: list[Any], names: list[str], batch: int | None) -> dict[str, int]:
    """Byte sizes of the outputs whose shape the config fixes (given the batch size)."""
    sizes = {}
    for spec in outputs:
        if spec.name in names and not spec.dtype.is_string and -1 not in spec.dims:
            count = int(np.prod(spec.dims)) * (batch or 1)
            sizes[spec.name] = count * spec.dtype.numpy.itemsize
    return sizes


def read_output(pool: RegionPool, handle: Any, datatype: str, shape: list[int]) -> NDArray[Any]:
    from tritonize.core.datatypes import BY_WIRE

    return pool.backend.read(handle, BY_WIRE[datatype].numpy, shape)


Registrar = Callable[[str, tuple[Any, ...]], Any]
