"""Issue 11: the stand-ins against Triton's native onnxruntime and pytorch backends (r24.10, built once into a
cache by ../shared/native/build.sh) on the same server binary: the example models answer the same, and every
``tests/check_repos`` case loads, or is refused, the same way. Each difference that remains is pinned here and
listed in README's "Local vs production"."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tritonize.cli.quickstart import held_out_samples
from tritonize.client import TritonClient
from tritonize.deploy.local import LocalTriton

from .test_broken_repositories import CASES, NOT_HERE, _copy_case

# max |stand-in - native| per example model. TorchScript: the same torch 2.13 on both sides. ONNX: native ORT
# 1.19.2 against this environment's onnxruntime; dynamic INT8 quantizes activations at run time, where ORT
# versions round differently (measured on 2026-12-01: 0 for digits and TorchScript, 1.4e-6 sequence_onnx, 4.8e-7
# sequence_onnx_int8; 7e-3 on other inputs in issue 11).
TOLERANCE = {"digits_onnx": 1e-5, "digits_torchscript": 0.0, "digits_onnx_int8": 1e-5,
             "sequence_onnx": 1e-5, "sequence_torchscript": 0.0, "sequence_onnx_int8": 1e-2}


def _samples() -> dict[str, list[dict[str, np.ndarray]]]:
    """Per example family: single samples, then batches of 8 (digits) or of one length (sequences of 8, 32)."""
    held_out = held_out_samples()
    digits = [s["image"] for s in held_out["digits"][0][:24]]
    rng = np.random.default_rng(11)
    sequence = [*held_out["sequence"][0][:8]]
    for length in (8, 32):
        ids = rng.integers(1, 8, (8, length)).astype(np.int64)
        sequence.append({"ids": ids, "mask": np.ones_like(ids)})
    return {"digits": [{"image": d} for d in digits[:8]] + [{"image": np.concatenate(digits[8:16])}],
            "sequence": sequence}


def _outputs(server: LocalTriton, models: list[str]) -> dict[str, list[np.ndarray]]:
    samples = _samples()
    out = {}
    with TritonClient(server.grpc_url) as client:
        for model in models:
            typed = client.model(model)
            name = typed.info.outputs[0].name
            out[model] = [typed.infer(s, outputs=[name])[name] for s in samples[model.split("_")[0]]]
    return out


def test_example_models_answer_as_the_native_backends(native: Path, example_repo: Path) -> None:
    models = sorted(p.name for p in example_repo.iterdir() if (p / "config.pbtxt").is_file())
    assert set(models) == set(TOLERANCE)
    with LocalTriton(example_repo, native=native) as server:
        expected = _outputs(server, models)
    with LocalTriton(example_repo) as server:
        got = _outputs(server, models)
    for model in models:
        worst = max(float(np.abs(a - b).max()) for a, b in zip(got[model], expected[model]))
        assert worst <= TOLERANCE[model], f"{model}: max |stand-in - native| {worst:.1e} > {TOLERANCE[model]:.0e}"


# Cases whose load outcome differs, as (native state, stand-in state), and why.
KNOWN = {
    # native falls back to the config's order when input names match neither forward() nor <name>__<index>;
    # the stand-in refuses, as check does: a silent position mapping is what the case is about
    "torch_input_name": ("READY", "UNAVAILABLE"),
}


def test_check_cases_load_as_with_the_native_backends(native: Path) -> None:
    cases = sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in NOT_HERE)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        owners = {case: _copy_case(case, repo) for case in cases}
        states = {}
        for side in ("native", "stand-in"):
            with LocalTriton(repo, strict=False, ready_timeout=300,
                             native=native if side == "native" else None) as server:
                states[side] = {m.name: m.state for m in server.models()}
    differ = {}
    for case, names in owners.items():
        for served in names:
            pair = (states["native"].get(served, "absent"), states["stand-in"].get(served, "absent"))
            if pair[0] != pair[1]:
                differ[case] = pair
    assert differ == KNOWN
