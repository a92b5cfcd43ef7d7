"""One piece of client code against the ONNX and the TorchScript build of a model, on a real tritonserver: the
same output names (the model's own, not TorchScript's OUTPUT__<i>), the same answers, through the typed client
(sync and asyncio, gRPC and HTTP) and through the generated stubs (issue 12, scope 5)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tritonize.client import AsyncTritonClient, TritonClient
from tritonize.client.stubs import model_infos_from_server, write_stubs
from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import build
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")
MODELS = ("d_onnx", "d_torchscript")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("names")
    build([ModelRequest("d", f"{TOY}:dict_out", max_batch_size=8, version=1)], repo)  # {"scores", "probs"}
    return repo


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[LocalTriton]:
    with LocalTriton(repo) as served:
        yield served


def _stubs(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("names_stubs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_calls_work_against_both_formats(server: LocalTriton, tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    for url in (server.grpc_url, server.http_url):
        with TritonClient(url) as client:
            results = {m: client.model(m).infer(x=x) for m in MODELS}
            for out in results.values():
                assert list(out) == ["scores", "probs"]
            for key in ("scores", "probs"):
                np.testing.assert_allclose(results["d_onnx"][key], results["d_torchscript"][key], atol=1e-5)
            for m in MODELS:
                model = client.model(m)
                assert list(model.infer(x=x, outputs=["probs"])) == ["probs"]
                np.testing.assert_array_equal(model.infer_sample(x=x[0])["scores"], results[m]["scores"][0])
                assert model.infer_batch(x=np.repeat(x, 4, axis=0))["probs"].shape == (12, 2)

    async def call_async() -> dict[str, list[str]]:
        async with AsyncTritonClient(server.http_url) as client:
            return {m: list(await (await client.model(m)).infer(x=x, outputs=["probs", "scores"])) for m in MODELS}

    assert asyncio.run(call_async()) == {m: ["probs", "scores"] for m in MODELS}

    with TritonClient(server.grpc_url) as client:
        write_stubs(model_infos_from_server(client), tmp_path / "stubs.py", "test")
        stubs = _stubs(tmp_path / "stubs.py")
        for cls in (stubs.DOnnx, stubs.DTorchscript):
            got = cls(client).infer(x=x)
            np.testing.assert_allclose(got["probs"], results["d_onnx"]["probs"], atol=1e-5)


def test_the_native_pytorch_backend_ignores_the_recorded_names(repo: Path, native: Path) -> None:
    """libtorch.cc reads the parameters it knows by key: the config with tritonize.output_names loads there."""
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    with LocalTriton(repo, native=native) as served, TritonClient(served.grpc_url) as client:
        results = {m: client.model(m).infer(x=x) for m in MODELS}
    assert [list(out) for out in results.values()] == [["scores", "probs"]] * 2
    np.testing.assert_allclose(results["d_onnx"]["probs"], results["d_torchscript"]["probs"], atol=1e-5)
