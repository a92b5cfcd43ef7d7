"""Issue 11: the features real repositories use beyond the example models answer on the stand-ins exactly as on
Triton's native backends (r24.10, same server binary): string tensors in ONNX and TorchScript, sequence batching
with every control input and implicit state, ragged batching with batch inputs and a scattered batch output, an
optional input, output subsets, a python-backend BYTES model; the same error status codes for requests a model
fails on; and the same dynamic-batching statistics for the same traffic."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tritonize.core.check import check_repository
from tritonize.deploy.local import LocalTriton

from .feature_repo import strings, write_feature_repo

Inputs = dict[str, np.ndarray]


def _call(client: grpcclient.InferenceServerClient, model: str, inputs: Inputs, outputs: tuple[str, ...] = (),
          **sequence: Any) -> dict[str, Any]:
    """Every output as a list, or the error's status code; never raises."""
    tensors = []
    for name, value in inputs.items():
        tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    requested = [grpcclient.InferRequestedOutput(n) for n in outputs] or None
    try:
        result = client.infer(model, tensors, outputs=requested, client_timeout=60, **sequence)
    except InferenceServerException as exc:
        return {"error": exc.status(), "message": exc.message()}
    response = result.get_response()
    return {o.name: result.as_numpy(o.name).tolist() for o in response.outputs}


def _together(client: grpcclient.InferenceServerClient, model: str, batches: list[Inputs]) -> list[dict[str, Any]]:
    """Requests sent 50 ms apart, well within the model's 300 ms batching window, so that the batcher forms one
    batch of them in this order (a request's place in the batch shows in ragged batch inputs and batched
    strings)."""
    with ThreadPoolExecutor(len(batches)) as pool:
        futures = []
        for inputs in batches:
            futures.append(pool.submit(_call, client, model, inputs))
            time.sleep(0.05)
        return [f.result() for f in futures]


def _f32(*rows: list[float]) -> np.ndarray:
    return np.array(rows, np.float32)


def _traffic(url: str) -> dict[str, Any]:
    """What the test sends to each model, and what came back; then the batch statistics of each model."""
    got: dict[str, Any] = {}
    with grpcclient.InferenceServerClient(url) as client:
        got["strings_onnx"] = _together(client, "strings_onnx", [
            {"TEXT": strings("12").reshape(1, 1)}, {"TEXT": strings("7", "-3").reshape(2, 1)},
            {"TEXT": strings("0").reshape(1, 1)}])
        got["strings_onnx subset"] = _call(client, "strings_onnx", {"TEXT": strings("5").reshape(1, 1)},
                                           outputs=("ECHO",))
        got["strings_onnx bad"] = _call(client, "strings_onnx", {"TEXT": strings("x1").reshape(1, 1)})
        got["optional_onnx bad shape"] = _call(client, "optional_onnx", {"X": np.ones(3, np.float32)})
        got["strings_torchscript missing"] = _call(client, "strings_torchscript", {})
        got["strings_torchscript not utf-8"] = _call(client, "strings_torchscript", {"text": strings(b"\xff")})
        got["strings_torchscript"] = _call(client, "strings_torchscript", {"text": strings("héllo", "a", "")})
        got["strings_torchscript_batched"] = _together(client, "strings_torchscript_batched", [
            {"text": strings(t).reshape(1, 1)} for t in ("ab", "cde", "f")])
        for step, (a, b) in enumerate(((1.0, 10.0), (2.0, 20.0), (3.0, 30.0))):
            flags = {"sequence_start": step == 0, "sequence_end": step == 2}
            with ThreadPoolExecutor(2) as pool:
                got[f"sequence_onnx step {step}"] = list(pool.map(
                    lambda sv, flags=flags: _call(client, "sequence_onnx", {"INPUT": _f32([sv[1]])},
                                                  sequence_id=sv[0], **flags), ((11, a), (12, b))))
        got["ragged_onnx"] = _together(client, "ragged_onnx", [
            {"INPUT": _f32([1, 2])}, {"INPUT": _f32([3, 4, 5])}, {"INPUT": _f32([6])}])
        got["optional_onnx default"] = _call(client, "optional_onnx", {"X": np.array([1, 2], np.float32)})
        got["optional_onnx given"] = _call(client, "optional_onnx", {"X": np.array([1, 2], np.float32),
                                                                       "BIAS": np.array([0.5, 0.5], np.float32)})
        got["python_bytes"] = _together(client, "python_bytes", [
            {"text": strings("hi").reshape(1, 1)}, {"text": strings("wörld", "x").reshape(2, 1)}])
        for model in ("strings_onnx", "strings_torchscript_batched", "ragged_onnx", "python_bytes"):
            stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
            got[f"{model} batches"] = sorted((int(b["batch_size"]), int(b["compute_infer"].get("count", 0)))
                                             for b in stats.get("batch_stats", []))
            got[f"{model} counts"] = (stats.get("inference_count"), stats.get("execution_count"))
    return got


@pytest.fixture(scope="module")
def answers(native: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    repo = write_feature_repo(tmp_path_factory.mktemp("features") / "repo")
    out = {}
    for side in ("native", "stand-in"):
        with LocalTriton(repo, native=native if side == "native" else None) as server:
            out[side] = _traffic(server.grpc_url)
    return out


@pytest.mark.parametrize("key", [
    "strings_onnx", "strings_onnx subset", "strings_onnx bad", "strings_torchscript", "strings_torchscript_batched",
    "sequence_onnx step 0", "sequence_onnx step 1", "sequence_onnx step 2", "ragged_onnx", "optional_onnx default",
    "optional_onnx given", "optional_onnx bad shape", "strings_torchscript missing", "python_bytes",
    "strings_torchscript_batched batches", "ragged_onnx batches", "python_bytes batches"])
def test_answers_as_the_native_backends(answers: dict[str, dict[str, Any]], key: str) -> None:
    assert answers["stand-in"][key] == answers["native"][key]


def test_the_answers_are_what_the_models_compute(answers: dict[str, dict[str, Any]]) -> None:
    """The native answers themselves, so that agreeing on a failure cannot pass."""
    native = answers["native"]
    assert native["strings_onnx"][1] == {"NUMBER": [[8], [-2]], "ECHO": [[b"7"], [b"-3"]]}
    assert native["strings_onnx subset"] == {"ECHO": [[b"5"]]}
    assert native["strings_onnx bad"]["error"] == "StatusCode.INTERNAL"
    assert native["strings_onnx bad"]["message"].startswith("onnx runtime error 6: ")
    assert native["optional_onnx bad shape"]["error"] == "StatusCode.INVALID_ARGUMENT"
    # TorchScript strings are bytes: len() counts them, upper() leaves the two bytes of é alone
    assert native["strings_torchscript"] == {"UPPER__0": [b"H\xc3\xa9LLO!", b"A!", b"!"], "LENGTHS__1": [6, 1, 0]}
    assert native["sequence_onnx step 2"] == [{"OUTPUT": [[1000 + 100 + 6 + 110000]]},
                                              {"OUTPUT": [[1000 + 100 + 60 + 120000]]}]
    assert native["sequence_onnx step 0"][0] == {"OUTPUT": [[1000 + 10 + 1 + 110000]]}
    assert native["ragged_onnx"][1] == {"DOUBLED": [[6.0, 8.0, 10.0]], "INDEX_OUT": [[5.0]], "COUNT_OUT": [[3]],
                                        "ITEM_OUT": [[3.0]], "MAX_OUT": [[15.0]]}
    assert native["optional_onnx default"] == {"Y": [11.0, 22.0]}
    assert native["optional_onnx given"] == {"Y": [1.5, 2.5]}
    assert native["strings_onnx batches"] == [(1, 1), (4, 1)]
    # r24.10's pytorch backend hands every request of a batch the first request's strings; the stand-in too
    assert [a["UPPER__0"] for a in native["strings_torchscript_batched"]] == [[[b"AB!"]]] * 3


def test_strings_that_are_not_utf8_serve_only_natively(answers: dict[str, dict[str, Any]]) -> None:
    """Pinned difference: the stand-ins hand strings to ONNX Runtime's and torch's Python APIs, which take str;
    bytes that are not UTF-8 fail the request with a message that says so."""
    assert answers["native"]["strings_torchscript not utf-8"] == {"UPPER__0": [b"\xff!"], "LENGTHS__1": [1]}
    refused = answers["stand-in"]["strings_torchscript not utf-8"]
    assert refused["error"] == "StatusCode.INTERNAL" and "not UTF-8" in refused["message"]


def test_a_failed_execution_counts_only_on_the_stand_in(answers: dict[str, dict[str, Any]]) -> None:
    """Pinned difference: the python backend counts an execution whose responses are errors as executed
    (execution_count, batch_stats); a native backend reports it failed and counts it only under 'fail'."""
    assert answers["native"]["strings_onnx batches"] == [(1, 1), (4, 1)]
    assert answers["stand-in"]["strings_onnx batches"] == [(1, 2), (4, 1)]
    assert answers["native"]["strings_onnx counts"] == ("5", "2")
    assert answers["stand-in"]["strings_onnx counts"] == ("6", "3")


@pytest.mark.parametrize("autocomplete", [True, False])
def test_check_finds_no_error_in_what_serves_natively(tmp_path: Path, autocomplete: bool) -> None:
    """check's rules for ragged batching, sequence controls and state, optional and string tensors agree with
    the native backends on a repository they serve; its warnings are the batched-strings quirk and python code."""
    findings = check_repository(write_feature_repo(tmp_path / "repo"), autocomplete=autocomplete)
    assert sorted((f.severity, f.model, f.code) for f in findings) == [
        ("warning", "python_bytes", "python-model-code"),
        ("warning", "strings_torchscript_batched", "torch-batched-strings")]
