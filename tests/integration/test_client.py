"""The typed client against the real local Triton: every public method, gRPC and HTTP, sync and asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.client import (
    AsyncTritonClient,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    RetryPolicy,
    TritonClient,
)
from tritonize.client.calls import request_options
from tritonize.deploy.local import LocalTriton, free_port

from .conftest import Served

PROTOCOLS = ["grpc", "http"]
X = {"features": np.arange(8, dtype=np.float32).reshape(2, 4), "ids": np.array([[1, 2, 3], [4, 5, 6]], np.int64)}


def url(served: Served, protocol: str) -> str:
    return served.server.grpc_url if protocol == "grpc" else served.server.http_url


@pytest.fixture(params=PROTOCOLS)
def triton(served: Served, request: pytest.FixtureRequest) -> Iterator[TritonClient]:
    with TritonClient(url(served, request.param)) as client:
        yield client


def reference(served: Served, model: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    ref = served.built[model].reference
    assert ref is not None
    return ref(inputs)


def requests_seen(client: TritonClient, model: str) -> int:
    stats = client.statistics(model)[0]["inference_stats"]
    return int(stats["success"]["count"]) + int(stats["fail"]["count"])


# --- inference ---------------------------------------------------------------------------------------------


def test_infer_by_name_with_dict_or_keywords(served: Served, triton: TritonClient) -> None:
    model = triton.model("two_heads_onnx")
    expected = reference(served, "two_heads_onnx", X)
    by_keywords = model.infer(features=X["features"], ids=X["ids"])
    by_dict = model.infer(X)
    assert list(by_keywords) == ["OUTPUT__0", "OUTPUT__1"]
    for out in (by_keywords, by_dict):
        np.testing.assert_allclose(out["OUTPUT__0"], expected[0], atol=1e-4, rtol=1e-3)
    only = model.infer(X, outputs=["OUTPUT__1"], priority=0, request_id="r1", parameters={"key": "value"})
    assert list(only) == ["OUTPUT__1"]


def test_infer_sample_and_batch(served: Served, triton: TritonClient) -> None:
    model = triton.model("two_heads_torchscript")
    sample = model.infer_sample(features=X["features"][0], ids=X["ids"][0])
    assert sample["OUTPUT__0"].shape == (5,)
    big = {"features": np.random.default_rng(0).normal(size=(21, 4)).astype(np.float32),
           "ids": np.random.default_rng(1).integers(0, 20, size=(21, 7))}
    out = model.infer_batch(big, max_concurrency=3)  # max_batch_size 8: chunks of 8, 8, 5
    np.testing.assert_allclose(out["OUTPUT__0"], reference(served, "two_heads_torchscript", big)[0], atol=1e-5)
    assert out["OUTPUT__1"].shape == (21, 7)


def test_same_kind_cast_is_opt_in(triton: TritonClient) -> None:
    model = triton.model("two_heads_onnx")
    wide = {"features": X["features"].astype(np.float64), "ids": X["ids"].astype(np.int32)}
    assert model.infer(wide, cast=True)["OUTPUT__0"].shape == (2, 5)


VALIDATION = [  # (inputs, words the message must contain)
    ({"features": X["features"]}, ["input 'ids'", "missing", "int64 [-1, -1]"]),
    ({**X, "extra": X["ids"]}, ["input 'extra'", "not an input", "features: float32 [-1, 4]"]),
    ({**X, "features": X["features"].astype(np.float64)}, ["input 'features'", "dtype float64", "expected float32"]),
    ({**X, "features": X["features"][:, :3]}, ["input 'features'", "shape [2, 3]", "expected [-1, 4]"]),
    ({**X, "features": X["features"][0]}, ["input 'features'", "shape [4]", "infer_sample"]),
    ({**X, "ids": X["ids"][:1]}, ["input 'ids'", "batch of 1", "expected 2 like input 'features'"]),
    ({"features": np.zeros((9, 4), np.float32), "ids": np.zeros((9, 2), np.int64)},
     ["input 'features'", "batch of 9", "max_batch_size 8"]),
]


@pytest.mark.parametrize(("inputs", "words"), VALIDATION)
def test_validation_errors_name_the_input_and_send_nothing(triton: TritonClient, inputs: dict[str, Any],
                                                           words: list[str]) -> None:
    model = triton.model("two_heads_onnx")
    before = requests_seen(triton, "two_heads_onnx")
    with pytest.raises(InvalidInputError) as info:
        model.infer(inputs)
    for word in words:
        assert word in str(info.value)
    assert requests_seen(triton, "two_heads_onnx") == before


def test_server_errors_are_typed_and_keep_tritons_message(triton: TritonClient) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model: 'missing'"):
        triton.model("missing")
    with pytest.raises(ModelNotFoundError, match="version 9"):
        triton.model("latest2_onnx", version="9")


# --- introspection and management -------------------------------------------------------------------------


def test_health_metadata_config_statistics_index(triton: TritonClient) -> None:
    assert triton.is_live() and not triton.is_ready()  # strict readiness: broken_onnx did not load
    assert triton.is_model_ready("two_heads_onnx") and not triton.is_model_ready("broken_onnx")
    assert not triton.is_model_ready("no_such_model")
    assert triton.server_metadata()["name"] == "triton"
    meta = triton.model_metadata("two_heads_onnx")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("features", "FP32", [-1, 4]), ("ids", "INT64", [-1, -1])]
    config = triton.model_config("batcher_onnx")
    assert config["max_batch_size"] == 32 and config["input"][0]["dims"] == [4]
    stats = triton.statistics("two_heads_onnx")
    assert stats[0]["name"] == "two_heads_onnx" and isinstance(stats[0]["inference_count"], int)
    index = {(m["name"], m.get("version")): m.get("state") for m in triton.list_models()}
    assert index[("two_heads_onnx", "1")] == "READY" and index[("broken_onnx", "1")] == "UNAVAILABLE"


def test_wait_until_ready(triton: TritonClient) -> None:
    triton.wait_until_ready("two_heads_onnx", timeout_s=5)
    start = time.monotonic()  # a failed load, a model or a version the server lacks: at once, not after 30 s
    with pytest.raises(ModelNotReadyError, match=r"'broken_onnx': failed to load: .*unable to load model"):
        triton.wait_until_ready("broken_onnx", timeout_s=30)
    with pytest.raises(ModelNotFoundError, match="'nosuch_model': not in the server's repository"):
        triton.wait_until_ready("nosuch_model", timeout_s=30)
    with pytest.raises(ModelNotFoundError, match=r"'latest2_onnx': version 9 is not served \(served: 2, 3\)"):
        triton.wait_until_ready("latest2_onnx", "9", timeout_s=30)
    assert time.monotonic() - start < 5


def test_unload_and_load(triton: TritonClient) -> None:
    triton.unload_model("spare_onnx")
    deadline = time.monotonic() + 20
    while triton.is_model_ready("spare_onnx") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not triton.is_model_ready("spare_onnx")
    with pytest.raises((ModelNotFoundError, ModelNotReadyError)):
        TritonClient(triton.endpoint.protocol + "://" + triton.endpoint.address, retry=None).model("spare_onnx")
    triton.load_model("spare_onnx")
    triton.wait_until_ready("spare_onnx", timeout_s=30)
    assert triton.model("spare_onnx").infer(features=np.ones((1, 4), np.float32))["OUTPUT__0"].shape == (1, 3)


# --- asyncio ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_client(served: Served, protocol: str) -> None:
    async def run() -> None:
        async with AsyncTritonClient(url(served, protocol)) as triton:
            assert await triton.is_live() and await triton.is_model_ready("two_heads_onnx")
            assert not await triton.is_ready()  # strict readiness: broken_onnx did not load
            assert (await triton.server_metadata())["name"] == "triton"
            assert (await triton.model_metadata("two_heads_onnx"))["inputs"][1]["shape"] == [-1, -1]
            assert (await triton.model_config("two_heads_onnx"))["max_batch_size"] == 8
            assert (await triton.statistics("two_heads_onnx"))[0]["name"] == "two_heads_onnx"
            assert any(m["name"] == "two_heads_onnx" for m in await triton.list_models())
            await triton.wait_until_ready("two_heads_onnx", timeout_s=5)
            model = await triton.model("two_heads_onnx")
            out = await model.infer(X)
            np.testing.assert_allclose(out["OUTPUT__0"], reference(served, "two_heads_onnx", X)[0], atol=1e-4)
            assert (await model.infer_sample(features=X["features"][0], ids=X["ids"][0]))["OUTPUT__0"].shape == (5,)
            big = {"features": np.ones((19, 4), np.float32), "ids": np.ones((19, 3), np.int64)}
            assert (await model.infer_batch(big, max_concurrency=4))["OUTPUT__0"].shape == (19, 5)
            many = await asyncio.gather(*(model.infer(X) for _ in range(16)))
            assert all(np.array_equal(m["OUTPUT__1"], many[0]["OUTPUT__1"]) for m in many)
            with pytest.raises(InvalidInputError, match=r"input 'ids'.*missing"):
                await model.infer(features=X["features"])
            await triton.unload_model("spare_onnx")
            await triton.load_model("spare_onnx")
            await triton.wait_until_ready("spare_onnx", timeout_s=30)
        shm = AsyncTritonClient(url(served, protocol), shared_memory="system")
        got = await (await shm.model("two_heads_onnx")).infer(X)
        np.testing.assert_array_equal(got["OUTPUT__0"], out["OUTPUT__0"])
        assert shm.pool is not None and len(shm.pool.everything()) == 3
        await shm.close()
        assert shm.pool.everything() == []

    asyncio.run(run())


# --- shared memory ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_system_shared_memory_matches_and_cleans_up(served: Served, protocol: str) -> None:
    with TritonClient(url(served, protocol)) as plain:
        expected = plain.model("two_heads_onnx").infer(X)
        baseline = plain.shared_memory_status()
    client = TritonClient(url(served, protocol), shared_memory="system")
    model = client.model("two_heads_onnx")
    for _ in range(3):  # regions are reused across calls
        got = model.infer(X)
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
    # two inputs and OUTPUT__0 ([5]); OUTPUT__1 ([-1, -1]) has no size known in advance
    assert client.pool is not None and len(client.pool.everything()) == 3
    assert _region_count(client.shared_memory_status()) == _region_count(baseline) + 3
    with pytest.raises(InvalidInputError, match="data-type is 'INT32'"):  # past the client's checks: Triton refuses
        model._send({"features": X["features"], "ids": X["ids"].astype(np.int32)}, ["OUTPUT__0"],
                    request_options(client.headers, None), None)
    assert client.pool.everything() == []  # the failed call's regions are gone, here and on the server
    assert _region_count(client.shared_memory_status()) == _region_count(baseline)
    model.infer(X)
    client.close()
    with TritonClient(url(served, protocol)) as plain:
        assert _region_count(plain.shared_memory_status()) == _region_count(baseline)


def _region_count(status: Any) -> int:
    if isinstance(status, list):  # HTTP
        return len(status)
    return len(getattr(status, "regions", {}))  # gRPC protobuf


# --- retries across a server restart ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retries_ride_out_a_restart_and_time_out_past_the_deadline(toy_repo: Path, protocol: str) -> None:
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    server = LocalTriton(toy_repo, **ports).start()
    address = f"127.0.0.1:{ports['grpc_port']}" if protocol == "grpc" else f"http://127.0.0.1:{ports['http_port']}"
    client = TritonClient(address, timeout_s=10, retry=RetryPolicy(max_backoff_s=0.5))
    model = client.model("toy_onnx")
    x = np.ones((1, 4), np.float32)
    assert model.infer(features=x)["OUTPUT__0"].shape == (1, 3)
    server.stop()
    replacement: list[LocalTriton] = []
    restarter = threading.Thread(target=lambda: (time.sleep(2), replacement.append(
        LocalTriton(toy_repo, **ports).start())))
    restarter.start()
    try:
        start = time.monotonic()
        out = model.infer(features=x, timeout_s=60)  # down, then back within the deadline
        assert out["OUTPUT__0"].shape == (1, 3) and time.monotonic() - start > 2
        restarter.join()
        replacement[0].stop()
        start = time.monotonic()
        with pytest.raises(InferenceTimeoutError, match="deadline"):
            model.infer(features=x, timeout_s=2)
        assert time.monotonic() - start < 6  # no hang
    finally:
        restarter.join()
        for s in replacement:
            s.stop()
        client.close()


# --- the infer command --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_command(served: Served, tmp_path: Path, protocol: str) -> None:
    np.save(tmp_path / "features.npy", X["features"][0])
    np.save(tmp_path / "ids.npy", X["ids"][0])
    result = CliRunner().invoke(main, ["infer", "two_heads_onnx", "--url", url(served, protocol), "--sample",
                                       "--input", f"features={tmp_path / 'features.npy'}",
                                       "--input", f"ids={tmp_path / 'ids.npy'}", "--save", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "OUTPUT__0: float32[5]" in result.stdout and "latency" in result.stderr
    assert np.load(tmp_path / "out" / "OUTPUT__1.npy").shape == (3,)
    bad = CliRunner().invoke(main, ["infer", "two_heads_onnx", "--url", url(served, protocol),
                                    "--input", f"features={tmp_path / 'features.npy'}"])
    assert bad.exit_code == 2 and "input 'features'" in bad.stderr
