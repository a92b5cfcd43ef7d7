"""Issue 11: the stand-ins against Triton's native onnxruntime and pytorch backends (r24.10, built once into a
cache by ../shared/native/build.sh) on the same server binary: the example models answer the same, and every
``tests/check_repos`` case loads, or is refused, the same way, with auto-complete on and off. Each difference
that remains is pinned here and listed in README's "Local vs production"."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritonize.cli.quickstart import held_out_samples
from tritonize.client import TritonClient
from tritonize.deploy.local import LocalTriton, http_json

from .test_broken_repositories import CASES, NOT_HERE, _copy_case

# max |stand-in - native| per example model. TorchScript: the same torch 2.13 on both sides. ONNX: native ORT
# 1.19.2 against this environment's onnxruntime; dynamic INT8 quantizes activations at run time, where ORT
# versions round differently (measured on 2026-12-01: 0 for digits and TorchScript, 1.4e-6 sequence_onnx, 4.8e-7
# sequence_onnx_int8; 7e-3 on other inputs in issue 11). The preprocessing steps are python-backend models on both
# sides (the python backend is the same): bit for bit; an ensemble differs as its model does.
TOLERANCE = {"digits_onnx": 1e-5, "digits_torchscript": 0.0, "digits_onnx_int8": 1e-5,
             "sequence_onnx": 1e-5, "sequence_torchscript": 0.0, "sequence_onnx_int8": 1e-2,
             "reviews_onnx": 1e-5, "reviews_torchscript": 0.0, "glyphs_onnx": 1e-5, "glyphs_torchscript": 0.0,
             "reviews_preprocess": 0.0, "glyphs_preprocess": 0.0}
TOLERANCE.update({f"{m}_ensemble": TOLERANCE[m] for m in ("reviews_onnx", "reviews_torchscript", "glyphs_onnx",
                                                          "glyphs_torchscript")})


def _samples() -> dict[str, list[dict[str, np.ndarray]]]:
    """Per example family: single samples, then batches (digits: of 8; sequences: of one length, 8 and 32);
    for the examples behind preprocessing, raw inputs (for the step and the ensembles) and the tensors the
    training preprocessing makes of them (for the models)."""
    from tritonize.generator.examples.glyphs import STEPS
    from tritonize.generator.examples.reviews import MAX_LENGTH, make_tokenizer
    from tritonize.generator.preprocess import TextSteps, reference

    held_out = held_out_samples()
    digits = [s["image"] for s in held_out["digits"][0][:24]]
    rng = np.random.default_rng(11)
    sequence = [*held_out["sequence"][0][:8]]
    for length in (8, 32):
        ids = rng.integers(1, 8, (8, length)).astype(np.int64)
        sequence.append({"ids": ids, "mask": np.ones_like(ids)})
    texts = [s["text"] for s in held_out["reviews"][0][:6]] + [np.concatenate([s["text"] for s in
                                                                              held_out["reviews"][0][6:12]])]
    pngs = [s["image_bytes"] for s in held_out["glyphs"][0][:6]] + [np.concatenate([s["image_bytes"] for s in
                                                                                    held_out["glyphs"][0][6:12]])]
    tokenizer = make_tokenizer()
    tokenize, _ = reference.text_reference(TextSteps(tokenizer=tokenizer, max_length=MAX_LENGTH), tokenizer)
    images, _ = reference.image_reference(STEPS)
    return {"digits": [{"image": d} for d in digits[:8]] + [{"image": np.concatenate(digits[8:16])}],
            "sequence": sequence,
            "reviews": [{k: v for k, v in tokenize([x.decode() for x in t.reshape(-1)]).items() if k != "token_type_ids"}
                        for t in texts],
            "reviews raw": [{"text": t} for t in texts],
            "glyphs": [{"image": images(list(p.reshape(-1)))} for p in pngs],
            "glyphs raw": [{"image_bytes": p} for p in pngs]}


def _outputs(server: LocalTriton, models: list[str]) -> dict[str, list[np.ndarray]]:
    samples = _samples()
    out = {}
    with TritonClient(server.grpc_url) as client:
        for model in models:
            typed = client.model(model)
            name = typed.info.outputs[0].key
            family = model.split("_")[0] + (" raw" if model.endswith(("_ensemble", "_preprocess")) else "")
            out[model] = [typed.infer(s, outputs=[name])[name] for s in samples[family]]
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


# Served configurations differ only in what names the runner: the stand-ins are Python-based backends
_RUNNER = {"runtime"}


@pytest.mark.parametrize("auto_complete", [True, False], ids=["auto-complete", "no-auto-complete"])
def test_check_cases_load_as_with_the_native_backends(native: Path, auto_complete: bool) -> None:
    """Every case loads, or is refused, the same way, with the same served configuration (auto-complete's
    result included) and, when refused, the same status code; tritonserver's default is auto-complete on."""
    cases = sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in NOT_HERE)
    extra = () if auto_complete else ("--disable-auto-complete-config",)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        owners = {case: _copy_case(case, repo) for case in cases}
        seen: dict[str, dict[str, tuple[str, Any]]] = {}
        for side in ("native", "stand-in"):
            with LocalTriton(repo, strict=False, ready_timeout=300, extra_args=extra,
                             native=native if side == "native" else None) as server:
                seen[side] = {m.name: (m.state, _config(server, m.name) if m.state == "READY" else
                                       m.reason.split(":")[0]) for m in server.models()}
    differ = {}
    for case, names in owners.items():
        for served in names:
            pair = (seen["native"].get(served, ("absent", None)), seen["stand-in"].get(served, ("absent", None)))
            if pair[0] != pair[1]:
                differ[case] = pair
    # a refusal's status: native backends mostly say 'Invalid argument'; a Python-based backend's load error is
    # always 'Internal' (python_be.cc), with the exception's traceback after the message
    refused = {case: (n[1], s[1]) for case, (n, s) in differ.items() if n[0] == s[0] == "UNAVAILABLE"}
    assert {case: pair for case, pair in differ.items() if case not in refused} == {}
    states = [state for state, _ in seen["native"].values()]
    assert states.count("READY") >= 10 and states.count("UNAVAILABLE") >= 10, states  # both kinds are compared
    assert set(refused.values()) <= {("Invalid argument", "Internal"), ("Internal", "Internal")}


def _config(server: LocalTriton, model: str) -> dict[str, Any]:
    config = http_json(server.http_url, f"/v2/models/{model}/config")
    return {k: v for k, v in config.items() if k not in _RUNNER}
