"""The drift test through the real local Triton: the typed client's responses, observed by a DriftMonitor built
from the repository's manifests, score below PSI_ALERT on inputs like the reference's and above it on shifted
ones: the digits classifier (ONNX, and TorchScript, whose config names its output OUTPUT__0 while the client
returns the model's own name) and the Friedman regressor (a values output)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tritonize.client import TritonClient
from tritonize.client.drift import DriftMonitor, DriftScore, load_references
from tritonize.core.loader import load_callable
from tritonize.core.observability import PSI_ALERT
from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import build
from tritonize.generator.request import ModelRequest

DRIFT_MODELS = str(Path(__file__).parents[1] / "unit" / "drift_models.py")
digits_inputs = load_callable(f"{DRIFT_MODELS}:digits_inputs", "digits_inputs")
friedman_inputs = load_callable(f"{DRIFT_MODELS}:friedman_inputs", "friedman_inputs")


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TritonClient]]:
    repo = tmp_path_factory.mktemp("drift")
    build([ModelRequest("digits", "tritonize.generator.examples.digits:build_digits_cnn", max_batch_size=64,
                        version=1, formats=("onnx", "torchscript")),
           ModelRequest("regressor", f"{DRIFT_MODELS}:friedman_regressor", max_batch_size=64, version=1,
                        formats=("onnx",))], repo)
    with LocalTriton(repo) as server, TritonClient(server.grpc_url) as client:
        yield repo, client


def drift(repo: Path, client: TritonClient, model: str, inputs: np.ndarray, batch: int = 16) -> DriftScore:
    monitor = DriftMonitor(load_references(repo / model))
    served = client.model(model)
    name = served.info.inputs[0].key
    for start in range(0, len(inputs), batch):
        monitor.observe(served.infer(**{name: inputs[start : start + batch]}))
    [score] = monitor.scores().values()
    return score


CASES = {
    "digits_onnx inverted": ("digits_onnx", lambda: digits_inputs(None),
                             lambda: digits_inputs("inverted")),
    "digits_torchscript brightened": ("digits_torchscript", lambda: digits_inputs(None),
                                      lambda: digits_inputs("brightened")),
    "regressor_onnx shifted features": ("regressor_onnx", lambda: friedman_inputs(0.0),
                                        lambda: friedman_inputs(0.25)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_served_outputs_drift_on_shifted_inputs_only(triton: tuple[Path, TritonClient], case: str) -> None:
    repo, client = triton
    model, unshifted, shifted = CASES[case]
    same, moved = drift(repo, client, model, unshifted()), drift(repo, client, model, shifted())
    assert same.samples == moved.samples == 1000
    assert not same.drifted and same.psi < PSI_ALERT / 2, same
    assert moved.drifted and moved.psi > PSI_ALERT, moved
