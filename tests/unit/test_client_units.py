"""Client pieces that need no server: URL parsing, error mapping, retry timing, input checks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tritonize.client import (
    InferenceTimeoutError,
    InvalidInputError,
    ModelInfo,
    ModelNotFoundError,
    RegionInUseError,
    RetryPolicy,
    ServerError,
    ServerUnavailableError,
    TritonClient,
    UsageError,
)
from tritonize.client.retry import Attempts
from tritonize.client.transport import Endpoint, RequestOptions, _Requests, map_error, normalize

CONFIG = {"name": "m", "max_batch_size": 4,
          "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["3"]},
                    {"name": "s", "data_type": "TYPE_STRING", "dims": ["1"], "optional": True}],
          "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["3"]}]}


def test_endpoints() -> None:
    assert Endpoint.parse("localhost:8001") == Endpoint("grpc", "localhost:8001")
    assert Endpoint.parse("http://h:8000") == Endpoint("http", "h:8000")
    assert Endpoint.parse("https://h:443") == Endpoint("http", "h:443", ssl=True)
    assert Endpoint.parse("h:8000", protocol="http") == Endpoint("http", "h:8000")
    for bad in ("ftp://h:1", "http://"):
        with pytest.raises(UsageError, match="url"):
            Endpoint.parse(bad)
    with pytest.raises(UsageError, match="protocol 'grpc'"):
        Endpoint.parse("http://h:1", protocol="grpc")


def test_error_mapping_keeps_the_message() -> None:
    cases = [
        (InferenceServerException("Request for unknown model: 'x' is not found", status="StatusCode.NOT_FOUND"),
         ModelNotFoundError),
        (InferenceServerException("unexpected shape", status="400"), InvalidInputError),
        (InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE"),
         ServerUnavailableError),
        (InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED"), InferenceTimeoutError),
        (InferenceServerException("boom", status="StatusCode.INTERNAL"), ServerError),
        (InferenceServerException("Cannot unregister shared memory region 'r', it is currently in use.",
                                  status="StatusCode.INVALID_ARGUMENT"), RegionInUseError),
        (ConnectionRefusedError(111, "Connection refused"), ServerUnavailableError),
        (TimeoutError("read timed out"), InferenceTimeoutError),
    ]
    for exc, kind in cases:
        mapped = map_error(exc, "infer m")
        assert type(mapped) is kind and str(mapped).startswith("infer m: ")


def test_retry_backoff_is_jittered_and_bounded() -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=0.4)
    delays = [policy.backoff(attempt) for attempt in range(20) for _ in range(5)]
    assert all(0 <= d <= 0.4 for d in delays) and len(set(delays)) > 50
    attempts = Attempts(policy, 0.3, "infer m")
    unavailable = ServerUnavailableError("down")
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match=r"0\.3 s deadline.*last error: down"):
        while True:
            time.sleep(attempts.delay_after(unavailable))
    assert time.monotonic() - start < 0.5
    with pytest.raises(InvalidInputError):  # not retryable: raised at once
        Attempts(policy, 10, "x").delay_after(InvalidInputError("bad"))
    with pytest.raises(ServerUnavailableError):  # retries off
        Attempts(None, 10, "x").delay_after(unavailable)


def test_unregister_waits_for_triton_to_release_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton 2.51 refuses to unregister a region until the request that used it is released (CI saw this)."""
    client = TritonClient("localhost:1", shared_memory="system")
    assert client.pool is not None
    region, _ = client.pool.acquire(10)
    calls: list[str] = []

    def call(what: str, method: str, *args: Any, **kwargs: Any) -> None:
        calls.append(method)
        if len(calls) < 3:
            raise RegionInUseError(f"{what}: Cannot unregister shared memory region '{args[0]}', it is currently in use.")

    monkeypatch.setattr(client.transport, "call", call)
    client._unregister([region])
    assert calls == ["unregister_system_shared_memory"] * 3 and client.pool.everything() == []
    client.transport.close()


def test_model_info_from_grpc_json_and_checks() -> None:
    info = ModelInfo.from_config(CONFIG)
    assert info.inputs[0].dims == (3,) and info.batching and info.max_batch_size == 4
    ok = info.check_inputs({"x": np.zeros((2, 3), np.float32), "s": np.array([["a"], ["b"]])})
    assert ok["s"].dtype == object
    assert set(info.check_inputs({"x": np.zeros((1, 3), np.float32)})) == {"x"}  # optional input left out
    with pytest.raises(InvalidInputError, match=r"'x'.*dtype int64, expected float32.*cast=True"):
        info.check_inputs({"x": np.zeros((1, 3), np.int64)})
    with pytest.raises(InvalidInputError, match=r"'x'.*dtype int64, expected float32 \(TYPE_FP32\) \(not a 'safe'"):
        info.check_inputs({"x": np.zeros((1, 3), np.int64)}, cast="safe")
    assert info.check_inputs({"x": np.zeros((1, 3), np.float64)}, cast=True)["x"].dtype == np.float32
    with pytest.raises(InvalidInputError, match="output 'z' of model 'm': not an output; expected one of y"):
        info.output_names(["z"])


def test_request_kwargs_pass_headers_and_parameters() -> None:
    import tritonclient.grpc as grpcclient

    requests = _Requests(grpcclient, "grpc")
    options = RequestOptions(priority=2, request_id="r", sequence_id=7, parameters={"k": "v"},
                             headers={"x-team": "ml"})
    kwargs = requests.infer_kwargs("m", "1", [], [], options, 1.5)
    assert kwargs["headers"] == {"x-team": "ml"} and kwargs["parameters"] == {"k": "v"}
    assert (kwargs["priority"], kwargs["sequence_id"], kwargs["client_timeout"]) == (2, 7, 1.5)


def test_grpc_json_numbers_are_normalized() -> None:
    config = normalize("grpc", "config", {"config": CONFIG})
    assert config["input"][0]["dims"] == [3]
    stats = normalize("grpc", "stats", {"model_stats": [{"inference_count": "12", "version": "1"}]})
    assert stats["model_stats"][0]["inference_count"] == 12
    assert stats["model_stats"][0]["version"] == "1"  # a string, as over HTTP
