"""One interface over tritonclient's four clients (gRPC/HTTP × sync/asyncio), with errors mapped to tritonize's.

The differences hidden here: gRPC returns JSON with int64 as strings and wraps configs in ``{"config": ...}``;
the HTTP client is not thread-safe (one underlying client per thread) and has no per-call network timeout;
a refused HTTP connection is an ``OSError``, not an ``InferenceServerException``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlparse

from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from tritonize.core.datatypes import wire_type

from .errors import (
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    RegionInUseError,
    ServerError,
    ServerUnavailableError,
    TritonClientError,
    UsageError,
)


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # grpc | http
    address: str  # host:port
    ssl: bool = False

    @classmethod
    def parse(cls, url: str, protocol: str | None = None) -> Endpoint:
        """``host:port`` (gRPC), ``grpc://host:port``, ``http://host:port`` or ``https://host:port``."""
        expected = "expected host:port, grpc://host:port or http(s)://host:port"
        try:
            parsed = urlparse(url if "://" in url else f"{protocol or 'grpc'}://{url}")
            parsed.port  # noqa: B018 - raises ValueError on a port that is not a number in 0..65535
        except ValueError as exc:  # e.g. "http://[::1": Invalid IPv6 URL
            raise UsageError(f"url: got {url!r}, {expected} ({exc})") from None
        if parsed.scheme not in ("grpc", "grpcs", "http", "https") or not parsed.netloc:
            raise UsageError(f"url: got {url!r}, {expected}")
        scheme = "grpc" if parsed.scheme.startswith("grpc") else "http"
        if protocol and protocol != scheme:
            raise UsageError(f"url: {url!r} is {scheme}, but protocol {protocol!r} was asked for")
        return cls(scheme, parsed.netloc, parsed.scheme in ("https", "grpcs"))


@dataclass(frozen=True)
class RequestOptions:
    priority: int = 0
    server_timeout_us: int | None = None  # queue timeout enforced by Triton (needs allow_timeout_override)
    request_id: str = ""
    sequence_id: int | str = 0
    sequence_start: bool = False
    sequence_end: bool = False
    parameters: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


DEFAULT_OPTIONS = RequestOptions()


# A connection the server closed mid-call (it stopped or died): geventhttpclient's and aiohttp's names.
_CONNECTION_LOST = {"HTTPConnectionClosed", "ServerDisconnectedError", "RemoteDisconnected"}


def map_error(exc: BaseException, what: str, address: str = "") -> TritonClientError:
    """tritonclient / network errors → tritonize errors, keeping Triton's message."""
    if isinstance(exc, TritonClientError):
        return exc
    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "").replace("StatusCode.", "")
        message = f"{what}: {exc.message() or exc}"
        if "not ready" in message:
            return ModelNotReadyError(message, status)
        if "currently in use" in message:
            return RegionInUseError(message, status)
        if status in ("NOT_FOUND", "404") or "unknown model" in message:
            return ModelNotFoundError(message, status)
        if status in ("INVALID_ARGUMENT", "400"):
            return InvalidInputError(message, status)
        if status in ("UNAVAILABLE", "503") or "failed to connect" in message.lower():
            return ServerUnavailableError(message, status)
        if status in ("DEADLINE_EXCEEDED", "504") or "deadline exceeded" in message.lower():
            return InferenceTimeoutError(message, status)
        return ServerError(message, status)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or type(exc).__name__ == "Timeout":
        return InferenceTimeoutError(f"{what}: timed out ({exc or type(exc).__name__})")
    if isinstance(exc, OSError) or type(exc).__name__ in _CONNECTION_LOST:  # refused, reset, closed, DNS
        at = f"cannot reach {address}: " if address else ""
        return ServerUnavailableError(f"{what}: {at}{type(exc).__name__}: {exc}")
    return ServerError(f"{what}: {type(exc).__name__}: {exc}")


def _ints(value: Any, numbers: bool = False) -> Any:
    """gRPC's JSON writes int64 as strings: dims/shape become ints, and with ``numbers`` (statistics) every
    digit string does."""
    if isinstance(value, dict):
        return {k: ([int(x) for x in v] if k in ("dims", "shape") else v if k in ("name", "version")
                    else _ints(v, numbers)) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v, numbers) for v in value]
    if numbers and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class _Requests:
    """Builds tritonclient request objects for one protocol module (grpc, http, or their aio twins)."""

    def __init__(self, module: Any, protocol: str) -> None:
        self.module = module
        self.protocol = protocol

    def inputs(self, arrays: Mapping[str, NDArray[Any]], shm: Mapping[str, tuple[str, int]] | None) -> list[Any]:
        out = []
        for name, array in arrays.items():
            tensor = self.module.InferInput(name, list(array.shape), wire_type(array.dtype))
            if shm and name in shm:
                tensor.set_shared_memory(*shm[name])
            else:
                tensor.set_data_from_numpy(array)
            out.append(tensor)
        return out

    def outputs(self, names: Sequence[str] | None, shm: Mapping[str, tuple[str, int]] | None) -> list[Any] | None:
        """Requested outputs; None (all of them, binary over HTTP too) when ``names`` is None."""
        if names is None:
            return None
        out = []
        for name in names:
            tensor = self.module.InferRequestedOutput(name)
            if shm and name in shm:
                tensor.set_shared_memory(*shm[name])
            out.append(tensor)
        return out

    def infer_kwargs(self, model: str, version: str, inputs: list[Any], outputs: list[Any] | None,
                     options: RequestOptions, timeout_s: float | None) -> dict[str, Any]:
        """tritonclient's infer() arguments; only those that differ from its defaults (calls are hot)."""
        kwargs: dict[str, Any] = {"model_name": model, "inputs": inputs}
        if version:
            kwargs["model_version"] = version
        if outputs is not None:
            kwargs["outputs"] = outputs
        if options is not DEFAULT_OPTIONS:
            if options.request_id:
                kwargs["request_id"] = options.request_id
            if options.sequence_id or options.sequence_start or options.sequence_end:
                kwargs.update(sequence_id=options.sequence_id, sequence_start=options.sequence_start,
                              sequence_end=options.sequence_end)
            if options.priority:
                kwargs["priority"] = options.priority
            if options.server_timeout_us is not None:
                kwargs["timeout"] = options.server_timeout_us
            if options.headers:
                kwargs["headers"] = dict(options.headers)
            if options.parameters:
                kwargs["parameters"] = dict(options.parameters)
        if self.protocol == "grpc":
            kwargs["client_timeout"] = timeout_s
        return kwargs


def tritonclient_module(protocol: str, asynchronous: bool) -> Any:
    """tritonclient's grpc / http module, blocking or asyncio."""
    if protocol == "grpc":
        if asynchronous:
            import tritonclient.grpc.aio as module
        else:
            import tritonclient.grpc as module
    elif asynchronous:
        import tritonclient.http.aio as module
    else:
        import tritonclient.http as module
    return module


def _client_kwargs(endpoint: Endpoint, timeout_s: float | None, options: Mapping[str, Any],
                   asynchronous: bool) -> dict[str, Any]:
    kwargs = dict(options)
    if endpoint.ssl:
        kwargs.setdefault("ssl", True)
    if endpoint.protocol == "http" and not asynchronous and timeout_s is not None:
        kwargs.setdefault("connection_timeout", timeout_s)
        kwargs.setdefault("network_timeout", timeout_s)
    if endpoint.protocol == "http" and asynchronous and timeout_s is not None:
        kwargs.setdefault("conn_timeout", timeout_s)
    return kwargs


# Answers wanted as JSON; statistics come as protobuf and are converted keeping zero counts (see normalize).
_JSON_METHODS = {"get_model_config", "get_model_metadata", "get_model_repository_index", "get_server_metadata"}


def _protocol_kwargs(protocol: str, method: str, kwargs: dict[str, Any], timeout_s: float | None) -> None:
    """gRPC: JSON answers and a deadline on every call (HTTP has neither per call)."""
    if protocol == "grpc":
        if method in _JSON_METHODS:
            kwargs.setdefault("as_json", True)
        kwargs.setdefault("client_timeout", timeout_s)


class SyncTransport:
    """Blocking calls. Thread-safe: gRPC shares one client; HTTP gets one client per thread."""

    def __init__(self, endpoint: Endpoint, timeout_s: float | None, options: Mapping[str, Any]) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.module = tritonclient_module(endpoint.protocol, asynchronous=False)
        self.requests = _Requests(self.module, endpoint.protocol)
        self._kwargs = _client_kwargs(endpoint, timeout_s, options, asynchronous=False)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._shared = self._new() if endpoint.protocol == "grpc" else None

    def _new(self) -> Any:
        client = self.module.InferenceServerClient(self.endpoint.address, **self._kwargs)
        with self._lock:
            self._clients.append(client)
        return client

    @property
    def client(self) -> Any:
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new()
        return client

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        _protocol_kwargs(self.endpoint.protocol, method, kwargs, self.timeout_s)
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise map_error(exc, what, self.endpoint.address) from exc

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()


class AsyncTransport:
    """asyncio calls on tritonclient's aio clients (one client; both are safe to share within a loop)."""

    def __init__(self, endpoint: Endpoint, timeout_s: float | None, options: Mapping[str, Any]) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.module = tritonclient_module(endpoint.protocol, asynchronous=True)
        self.requests = _Requests(self.module, endpoint.protocol)
        self.client = self.module.InferenceServerClient(
            self.endpoint.address, **_client_kwargs(endpoint, timeout_s, options, asynchronous=True))

    async def call(self, what: str, method: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """gRPC enforces ``client_timeout`` itself; the HTTP client has no per-call deadline, so one is
        put around the call (``asyncio.timeout`` where available: cheaper than ``wait_for``)."""
        timeout_s = timeout_s if timeout_s is not None else self.timeout_s
        _protocol_kwargs(self.endpoint.protocol, method, kwargs, timeout_s)
        try:
            if self.endpoint.protocol == "grpc" or timeout_s is None:
                return await getattr(self.client, method)(*args, **kwargs)
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(timeout_s):
                    return await getattr(self.client, method)(*args, **kwargs)
            return await asyncio.wait_for(getattr(self.client, method)(*args, **kwargs), timeout_s)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            raise map_error(exc, what, self.endpoint.address) from exc

    async def close(self) -> None:
        await self.client.close()


def _message_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as JSON-like dict with zero values kept (gRPC's as_json drops them: a count of 0
    would be missing)."""
    from google.protobuf import json_format

    try:
        return cast("dict[str, Any]", json_format.MessageToDict(message, preserving_proto_field_name=True,
                                                                always_print_fields_with_no_presence=True))
    except TypeError:  # protobuf < 5.26
        return cast("dict[str, Any]", json_format.MessageToDict(message, preserving_proto_field_name=True,
                                                                including_default_value_fields=True))


def normalize(protocol: str, kind: str, value: Any) -> Any:
    """Uniform JSON for config / metadata / index / statistics across protocols."""
    if hasattr(value, "DESCRIPTOR"):
        value = _message_dict(value)
    if protocol == "grpc":
        if kind == "config":
            value = value.get("config", value)
        elif kind == "index":
            value = value.get("models", [])
        return _ints(value, numbers=kind == "stats")
    return value
