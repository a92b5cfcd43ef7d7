"""Generated repositories on a real tritonserver (stand-in backends), over real HTTP and gRPC sockets."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tritonize.core.formats import FORMATS
from tritonize.generator.render import parse_config

from .conftest import BROKEN, Served

PROTOCOLS = {"http": httpclient, "grpc": grpcclient}


def client(served: Served, protocol: str):
    module = PROTOCOLS[protocol]
    url = served.server.http_url.removeprefix("http://") if protocol == "http" else served.server.grpc_url
    return module, module.InferenceServerClient(url)


def infer(served: Served, protocol: str, model: str, inputs: dict[str, np.ndarray], version: str = "") -> list:
    module, c = client(served, protocol)
    config = c.get_model_config(model, as_json=True) if protocol == "grpc" else c.get_model_config(model)
    config = config["config"] if protocol == "grpc" else config
    tensors = []
    for spec, array in zip(config["input"], inputs.values()):
        tensor = module.InferInput(spec["name"], list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = c.infer(model, tensors, model_version=version)
    return [result.as_numpy(o["name"]) for o in config["output"]]


def stats(served: Served, model: str) -> dict:
    _, c = client(served, "http")
    return c.get_inference_statistics(model)["model_stats"][0]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_outputs_equal_the_eager_model(served: Served, protocol: str, fmt: str) -> None:
    model = f"two_heads_{fmt}"
    reference = served.built[model].reference
    assert reference is not None
    tol = FORMATS[fmt].tolerance
    rng = np.random.default_rng(0)
    for batch, length in ((1, 3), (5, 11), (8, 2)):
        inputs = {"features": rng.normal(size=(batch, 4)).astype(np.float32),
                  "ids": rng.integers(0, 20, size=(batch, length)).astype(np.int64)}
        got = infer(served, protocol, model, inputs)
        for g, r in zip(got, reference(inputs)):
            assert g.shape == r.shape
            np.testing.assert_allclose(g, r, atol=tol.atol, rtol=tol.rtol)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dynamic_batching_batches_concurrent_requests(served: Served, fmt: str) -> None:
    model = f"batcher_{fmt}"
    rows = np.random.default_rng(1).normal(size=(64, 1, 4)).astype(np.float32)
    with ThreadPoolExecutor(32) as pool:
        outputs = list(pool.map(lambda row: infer(served, "grpc", model, {"features": row})[0], rows))
    reference = served.built[model].reference
    assert reference is not None
    np.testing.assert_allclose(np.concatenate(outputs), reference({"features": rows[:, 0]})[0], atol=1e-4, rtol=1e-3)
    s = stats(served, model)
    sizes = {int(b["batch_size"]) for b in s["batch_stats"]}
    assert max(sizes) > 1, s["batch_stats"]
    assert int(s["execution_count"]) < int(s["inference_count"])


def test_two_instances_both_execute(served: Served) -> None:
    model = "batcher_onnx"
    rows = np.random.default_rng(2).normal(size=(96, 1, 4)).astype(np.float32)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda row: infer(served, "http", model, {"features": row}), rows))
    metrics = urllib.request.urlopen(served.server.metrics_url, timeout=5).read().decode()
    counts = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'tritonize_standin_executions_total\{[^}]*instance="([^"]+)"[^}]*model="batcher_onnx"[^}]*\} (\S+)',
        metrics)}
    assert len(counts) == 2 and all(v > 0 for v in counts.values()), counts


def test_gpu_model_serves_through_its_cpu_variant(served: Served) -> None:
    assert served.server.config_name == "cpu"
    production = parse_config((served.repo / "gpu_onnx" / "config.pbtxt").read_text())
    assert [g.kind for g in production.instance_group] == [1]  # KIND_GPU, untouched on disk
    _, c = client(served, "http")
    assert [g["kind"] for g in c.get_model_config("gpu_onnx")["instance_group"]] == ["KIND_CPU"]
    out = infer(served, "grpc", "gpu_onnx", {"features": np.ones((2, 4), np.float32)})[0]
    assert out.shape == (2, 3)


def test_version_policies_serve_the_right_versions(served: Served) -> None:
    states = {(s.name, s.version): s.state for s in served.server.models()}
    ready = {k for k, v in states.items() if v == "READY"}
    assert {("latest2_onnx", "2"), ("latest2_onnx", "3"), ("specific13_onnx", "1"), ("specific13_onnx", "3")} <= ready
    assert ("latest2_onnx", "1") not in ready and ("specific13_onnx", "2") not in ready
    x = {"features": np.ones((1, 4), np.float32)}
    v2, v3 = (infer(served, "http", "latest2_onnx", x, version=v)[0] for v in ("2", "3"))
    assert not np.allclose(v2, v3)  # different weights per version
    np.testing.assert_allclose(infer(served, "grpc", "latest2_onnx", x)[0], v3)  # default: the latest
    for protocol in ("http", "grpc"):
        with pytest.raises(InferenceServerException, match=r"version 1|unavailable|not found"):
            infer(served, protocol, "latest2_onnx", x, version="1")


def test_wrong_config_fails_to_load_and_the_others_keep_serving(served: Served) -> None:
    state = {s.name: s for s in served.server.models()}[BROKEN]
    assert state.state == "UNAVAILABLE"
    assert "unable to load model 'broken_onnx'" in state.reason
    assert "input 'features'" in state.reason and "[-1,5]" in state.reason
    assert "failed to load 'broken_onnx'" in served.server.log_text()
    assert infer(served, "grpc", "two_heads_onnx", {"features": np.ones((1, 4), np.float32),
                                                    "ids": np.ones((1, 3), np.int64)})[0].shape == (1, 5)


def test_stand_ins_are_what_triton_reports(served: Served) -> None:
    _, c = client(served, "http")
    for model in ("two_heads_onnx", "two_heads_torchscript"):
        assert c.get_model_config(model)["runtime"] == "model.py"  # a Python-based backend stand-in
        assert c.get_model_config(model)["backend"] in ("onnxruntime", "pytorch")
