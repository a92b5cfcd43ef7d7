"""Hugging Face and torchvision models as a user returns them (library_models.py): each builds in onnx and
torchscript with parity, token inputs get a variable sequence length, fixed image sizes are named with the flag
that frees them, and only the user's own TracerWarnings reach the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import library_models
import numpy as np
import pytest
import torch

from tritonize.generator.build import build
from tritonize.generator.io_spec import DeclaredTensor
from tritonize.generator.render import parse_config
from tritonize.generator.request import ModelRequest
from tritonize.generator.runners import OnnxRunner, TorchRunner
from tritonize.generator.source import load_source


class Built:
    def __init__(self, repo: Path, records: list[logging.LogRecord]) -> None:
        self.repo, self.records = repo, records

    def config(self, fmt: str):
        return parse_config((self.repo / f"m_{fmt}" / "config.pbtxt").read_text())

    def inputs(self, fmt: str) -> list[tuple[str, list[int]]]:
        return [(i.name, list(i.dims)) for i in self.config(fmt).input]

    def outputs(self, fmt: str) -> list[tuple[str, list[int]]]:
        return [(o.name, list(o.dims)) for o in self.config(fmt).output]

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def get(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """Each model built once (onnx + torchscript; the build's verification is the parity check), with its log."""
    cache: dict[str, Built] = {}

    def get(fn: str) -> Built:
        if fn not in cache:
            repo = tmp_path_factory.mktemp(fn)
            handler = _Records()
            log = logging.getLogger("tritonize")
            level = log.level
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            try:
                build([ModelRequest(name="m", source=f"library_models:{fn}", max_batch_size=8, version=1,
                                    formats=("onnx", "torchscript"))], repo)
            finally:
                log.removeHandler(handler)
                log.setLevel(level)
            cache[fn] = Built(repo, handler.records)
        return cache[fn]

    return get


TOKENS = ["input_ids", "attention_mask", "token_type_ids"]


@pytest.mark.parametrize("fn, inputs, outputs", [
    ("bert", TOKENS, [("last_hidden_state", [-1, 32]), ("pooler_output", [32])]),
    ("distilbert", TOKENS[:2], [("last_hidden_state", [-1, 32])]),
    # returned as is: forward(dict) becomes forward(input_ids, token_type_ids, attention_mask)
    ("sentence_encoder", [TOKENS[0], TOKENS[2], TOKENS[1]],
     [("sentence_embedding", [32]), ("token_embeddings", [-1, 32])]),
    ("resnet18", None, [("OUTPUT__0", [10])]),
    ("mobilenet_v3_small", None, [("OUTPUT__0", [10])]),
])
def test_library_model_builds_in_both_formats_with_parity(get: Callable[[str], Built], fn: str, inputs: list[str] | None,
                                                            outputs: list[tuple[str, list[int]]]) -> None:
    result = get(fn)
    expected_inputs = [(n, [-1]) for n in inputs] if inputs else [("x", [3, library_models.IMAGE, library_models.IMAGE])]
    for fmt in ("onnx", "torchscript"):
        assert [n for n, _ in result.inputs(fmt)] == [n for n, _ in expected_inputs]
        assert [d for _, d in result.inputs(fmt)] == [d for _, d in expected_inputs]
    assert result.outputs("onnx") == outputs
    assert [d for _, d in result.outputs("torchscript")] == [d for _, d in outputs]


def test_sequence_length_detected_and_the_exports_run_at_another_length(get: Callable[[str], Built]) -> None:
    result = get("bert")
    info = result.messages(logging.INFO)
    assert any("inputs input_ids, attention_mask, token_type_ids: dims of size 13 are variable (the model ran "
               "at 13 and 17); --input input_ids:int64:13 keeps the example's" in m for m in info), info
    model, _ = library_models.bert()
    tok = library_models.tokenizer()
    # real padding at a length the example never had: 3 sentence pairs, longer than the 13-token example
    encoded = tok(library_models.SENTENCES[3:6], library_models.SENTENCES[:3], padding=True, return_tensors="np")
    batch = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
    length = batch["input_ids"].shape[1]
    assert length not in (13, 17) and (batch["attention_mask"] == 0).any()
    eager = TorchRunner(model.eval(), TOKENS, ["last_hidden_state", "pooler_output"])(batch)
    onnx_out = OnnxRunner(result.repo / "m_onnx/1/model.onnx", TOKENS)(batch)
    ts_out = TorchRunner(torch.jit.load(str(result.repo / "m_torchscript/1/model.pt")), TOKENS)(batch)
    for got in (onnx_out, ts_out):
        assert got[0].shape == (3, length, 32)
        for a, b in zip(got, eager):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)


def test_float_dims_that_also_run_at_other_sizes_are_kept_and_named(get: Callable[[str], Built]) -> None:
    warnings = get("resnet18").messages(logging.WARNING)
    assert ("inputs x dims [3, 32, 32] are fixed at the example's; the model also runs at other sizes of dims[1], "
            "dims[2]: --input x:float32:3,-1,-1 frees them") in warnings, warnings


def test_library_tracer_warnings_dropped_user_ones_kept(get: Callable[[str], Built]) -> None:
    for fn in ("bert", "distilbert", "sentence_encoder"):
        result = get(fn)
        assert not [m for m in result.messages(logging.WARNING) if "TracerWarning" in m], fn
        assert any("TracerWarning(s) from library code dropped: masking_utils.py" in m
                   for m in result.messages(logging.DEBUG)), fn
    kept = [m for m in get("user_branch").messages(logging.WARNING) if "TracerWarning" in m]
    assert len(kept) == 2 and all("library_models.py:" in m and "use --script" in m for m in kept), kept


def test_declared_dims_win_over_the_probe() -> None:
    fixed = load_source("library_models:bert", max_batch_size=8,
                        declared_inputs={"input_ids": DeclaredTensor("input_ids", dims=(13,))})
    # the mask cannot change alone (BERT needs ids and mask of one length), so nothing is freed
    assert [(i.name, i.dims) for i in fixed.inputs] == [(n, (13,)) for n in TOKENS]
    freed = load_source("library_models:bert", max_batch_size=8,
                        declared_inputs={"input_ids": DeclaredTensor("input_ids", dims=(-1,))})
    assert [(i.name, i.dims) for i in freed.inputs] == [(n, (-1,)) for n in TOKENS]


def test_sentence_transformer_with_its_own_preprocessed_example() -> None:
    """(model, model.preprocess([...])): the example carries a string entry ('modality'), passed as a constant."""
    loaded = load_source("library_models:sentence_encoder_with_example", max_batch_size=4)
    assert [(i.name, i.dims) for i in loaded.inputs] == [(TOKENS[0], (-1,)), (TOKENS[2], (-1,)), (TOKENS[1], (-1,))]
    assert [(o.name, o.dims) for o in loaded.outputs] == [("sentence_embedding", (32,)), ("token_embeddings", (-1, 32))]
    model, example = library_models.sentence_encoder_with_example()
    with torch.inference_mode():
        expected = model(example)["sentence_embedding"]
    got = loaded.reference({k: v.numpy() for k, v in example.items() if isinstance(v, torch.Tensor)})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6)


def test_keyword_inputs_that_skip_an_argument_of_forward() -> None:
    """input_ids and token_type_ids without attention_mask (forward's second argument): passed by keyword."""
    loaded = load_source("library_models:bert_without_mask", max_batch_size=4)
    assert [(i.name, i.dims) for i in loaded.inputs] == [("input_ids", (-1,)), ("token_type_ids", (-1,))]
    model, example = library_models.bert_without_mask()
    with torch.inference_mode():
        expected = model.eval()(**example).last_hidden_state
    got = loaded.reference({k: v.numpy() for k, v in example.items()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6)
