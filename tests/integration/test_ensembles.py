"""Models served behind their preprocessing, on the local Triton: raw strings (a transformers tokenizer with
token_type_ids) and PNG/JPEG bytes go into `<name>_<format>_ensemble` and what comes out is what the training
preprocessing + the eager model compute; bad raw inputs are one clear error; the repository passes `check`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tritonize.client import TritonClient
from tritonize.client.errors import TritonClientError
from tritonize.core.check import check_repository
from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import BuiltModel, build
from tritonize.generator.config_spec import DynamicBatching
from tritonize.generator.preprocess import ImageSteps, Preprocess, TextSteps, reference
from tritonize.generator.request import ModelRequest

MODELS = str(Path(__file__).parents[1] / "unit" / "preprocess_models.py")
TEXTS = ["The cat sat on the mat.", "hello world!", "dogs ran far far far, far far far far far", "", "naïve cat"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TritonClient, dict[str, BuiltModel], Path]]:
    tmp = tmp_path_factory.mktemp("ensembles")
    requests = [
        ModelRequest("words", f"{MODELS}:bag_of_tokens", kwargs={"directory": str(tmp / "tok")}, max_batch_size=8,
                     formats=("onnx", "torchscript"), dynamic_batching=DynamicBatching(max_queue_delay_microseconds=1000)),
        ModelRequest("pictures", f"{MODELS}:tiny_cnn", max_batch_size=8, formats=("onnx", "torchscript")),
    ]
    built = {b.name: b for b in build(requests, tmp / "repo")}
    with LocalTriton(tmp / "repo") as server, TritonClient(server.grpc_url) as client:
        yield client, built, tmp / "repo"


def test_the_build_writes_a_step_and_an_ensemble_per_format(served: tuple[TritonClient, dict[str, BuiltModel], Path]) -> None:
    client, built, repo = served
    assert {b.name: b.format for b in built.values() if b.format in ("python", "ensemble")} == {
        "words_preprocess": "python", "words_onnx_ensemble": "ensemble", "words_torchscript_ensemble": "ensemble",
        "pictures_preprocess": "python", "pictures_onnx_ensemble": "ensemble",
        "pictures_torchscript_ensemble": "ensemble"}
    assert sorted(p.name for p in (repo / "words_preprocess" / "1").iterdir() if p.name != "__pycache__") == [
        "model.py", "pipeline.json", "tokenizer.json", "tritonize_pipeline.py"]
    proof = (built["words_preprocess"].pipeline or {})["proof"]
    assert proof["reference"].startswith("transformers") and proof["detail"]["compared"] == "token for token"
    assert (built["pictures_onnx_ensemble"].pipeline or {})["steps"] == ["pictures_preprocess", "pictures_onnx"]
    assert (repo / "words_preprocess" / "requirements.txt").read_text().startswith("tokenizers==")
    assert (repo / "pictures_preprocess" / "requirements.txt").read_text().startswith("pillow==")
    assert [f for f in check_repository(repo) if f.severity == "error"] == []
    assert {m["name"] for m in client.list_models() if m.get("state") == "READY"} >= set(built)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_strings_in_equal_the_tokenizer_and_the_eager_model(served: tuple[TritonClient, dict[str, BuiltModel], Path],
                                                             fmt: str) -> None:
    client, built, _ = served
    name = f"words_{fmt}_ensemble"
    model = client.model(name)
    assert [(t.name, t.dtype.config) for t in model.info.inputs] == [("text", "TYPE_STRING")]
    assert [t.name for t in model.info.outputs] == ["logits"]
    for texts in ([TEXTS[0]], TEXTS):  # one text, and one request of five of different lengths
        raw = {"text": np.array([[t.encode()] for t in texts], dtype=object)}
        got = model.infer(raw)["logits"]
        expected = built[name].reference(raw)[0]  # transformers' tokenizer + the eager model
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_png_and_jpeg_bytes_in_equal_torchvision_and_the_eager_model(
        served: tuple[TritonClient, dict[str, BuiltModel], Path], fmt: str) -> None:
    client, built, _ = served
    name = f"pictures_{fmt}_ensemble"
    images = reference.synthesized_images(ImageSteps(resize=20, center_crop=16), count=8, seed=11)
    raw = {"image_bytes": np.array([[b] for b in images], dtype=object)}
    got = client.model(name).infer(raw)["scores"]
    expected = built[name].reference(raw)[0]  # torchvision's transforms + the eager model
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_bad_raw_inputs_are_one_clear_error(served: tuple[TritonClient, dict[str, BuiltModel], Path]) -> None:
    client, _, _ = served
    with pytest.raises(TritonClientError) as info:
        client.model("pictures_onnx_ensemble").infer(
            {"image_bytes": np.array([[b"\x89PNG not really"]], dtype=object)})
    assert "image_bytes[0]: not an image this step can read" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(TritonClientError, match=r"text\[1\]: not UTF-8 text"):
        client.model("words_onnx_ensemble").infer({"text": np.array([[b"fine"], [b"\xff\xfe"]], dtype=object)})


LIBRARY = str(Path(__file__).parents[1] / "unit" / "library_models.py")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TritonClient, dict[str, BuiltModel]]]:
    """Hugging Face and torchvision models from configs (random weights), behind their preprocessing."""
    tmp = tmp_path_factory.mktemp("library")
    text = Preprocess(text=TextSteps(tokenizer=f"{LIBRARY}:tokenizer", max_length=32))
    requests = [
        ModelRequest("bert", f"{LIBRARY}:bert", max_batch_size=4, formats=("onnx", "torchscript"), preprocess=text),
        ModelRequest("st", f"{LIBRARY}:sentence_encoder", max_batch_size=4, formats=("onnx", "onnx-int8"),
                     preprocess=Preprocess(text=TextSteps(tokenizer=f"{LIBRARY}:sentence_tokenizer",
                                                          max_length=32))),
        ModelRequest("resnet", f"{LIBRARY}:resnet18", max_batch_size=4, formats=("onnx", "torchscript"),
                     preprocess=Preprocess(image=ImageSteps(resize=36, center_crop=32, mean=(0.485, 0.456, 0.406),
                                                            std=(0.229, 0.224, 0.225)))),
    ]
    built = {b.name: b for b in build(requests, tmp / "repo")}
    with LocalTriton(tmp / "repo") as server, TritonClient(server.grpc_url) as client:
        yield client, built


SENTENCES = ["w1 w2 w3", "w7 w7 w0 w33 w12 w5 w9", "w4"]


@pytest.mark.parametrize("name", ["bert_onnx_ensemble", "bert_torchscript_ensemble", "st_onnx_ensemble"])
def test_transformers_behind_their_tokenizer_equal_eager(library: tuple[TritonClient, dict[str, BuiltModel]],
                                                         name: str) -> None:
    client, built = library
    raw = {"text": np.array([[s.encode()] for s in SENTENCES], dtype=object)}
    got = client.model(name).infer(raw)
    expected = built[name].reference(raw)  # the transformers tokenizer + the eager model
    assert list(got) == [o.key for o in client.model(name).info.outputs]
    for array, want in zip(got.values(), expected):
        np.testing.assert_allclose(array, want, atol=2e-5, rtol=1e-4)


def test_the_sentence_embedder_int8_is_judged_by_cosine(library: tuple[TritonClient, dict[str, BuiltModel]]) -> None:
    client, built = library
    report = built["st_onnx_int8"].optimization
    assert report is not None and report.task == "embedding" and report.judged_by.startswith("cosine")
    raw = {"text": np.array([[s.encode()] for s in SENTENCES], dtype=object)}
    got = client.model("st_onnx_int8_ensemble").infer(raw)["sentence_embedding"]
    fp32 = built["st_onnx_ensemble"].reference(raw)[0]
    cosine = (got * fp32).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cosine.min() > 0.9


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_torchvision_behind_its_transforms_equal_eager(library: tuple[TritonClient, dict[str, BuiltModel]],
                                                       fmt: str) -> None:
    client, built = library
    name = f"resnet_{fmt}_ensemble"
    images = reference.synthesized_images(ImageSteps(resize=36, center_crop=32), count=4, seed=3)
    raw = {"image_bytes": np.array([[b] for b in images], dtype=object)}
    got = next(iter(client.model(name).infer(raw).values()))
    expected = built[name].reference(raw)[0]  # torchvision's transforms + the eager resnet18
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert len(set(got.argmax(1))) > 1 or np.ptp(got, axis=0).max() > 1e-3  # not a degenerate model
