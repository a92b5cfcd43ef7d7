"""Preprocessing steps: the served step computes what training's libraries compute (torchvision's transforms bit for
bit, a transformers tokenizer token for token), the build's proof catches a step that does not, and bad
declarations are one line naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tritonize.generator import ensemble
from tritonize.generator.errors import ParityError, SpecError
from tritonize.generator.preprocess import ImageSteps, Preprocess, TextSteps, reference
from tritonize.generator.request import ModelRequest
from tritonize.generator.source import load_source

HERE = Path(__file__).parent
MODELS = f"{HERE / 'preprocess_models.py'}"


def _staged(tmp_path: Path, fn: str, **kwargs: object) -> tuple[ensemble.Pipeline, Path, object]:
    loaded = load_source(f"{MODELS}:{fn}", max_batch_size=8, kwargs=kwargs)
    assert loaded.preprocess is not None
    req = ModelRequest("m", f"{MODELS}:{fn}", max_batch_size=8)
    pipeline = ensemble.resolve(loaded, loaded.preprocess)
    staged, _ = ensemble.stage_preprocess(req, loaded, pipeline, 1, tmp_path / "stage")
    return pipeline, staged.root / "1", staged


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_the_image_step_is_torchvision_bit_for_bit(tmp_path: Path, interpolation: str) -> None:
    from PIL import Image
    from torchvision import transforms

    steps = {"resize": 20, "center_crop": 16, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
             "interpolation": interpolation}
    pipeline, vdir, staged = _staged(tmp_path, "tiny_cnn", steps=steps)
    assert pipeline.reference_name.startswith("torchvision")
    assert staged.manifest_entry["proof"]["samples"] == 16  # type: ignore[attr-defined]
    # independently of the build: torchvision's own Compose on the same bytes
    mode = getattr(transforms.InterpolationMode, interpolation.upper())
    compose = transforms.Compose([transforms.Resize(20, interpolation=mode), transforms.CenterCrop(16),
                                  transforms.ToTensor(), transforms.Normalize(steps["mean"], steps["std"])])
    images = reference.synthesized_images(ImageSteps(**steps), count=10, seed=5)  # type: ignore[arg-type]
    served = ensemble._load_step(vdir)(np.array(images, dtype=object))["input"]
    import io

    expected = np.stack([compose(Image.open(io.BytesIO(b)).convert("RGB")).numpy() for b in images])
    assert served.dtype == np.float32 and served.shape == (10, 3, 16, 16)
    assert served.tobytes() == expected.tobytes()


def test_the_torch_fallback_is_torchvision_bit_for_bit() -> None:
    """Without torchvision the reference is PIL + torch; it must be the same numbers."""
    from torchvision import transforms

    steps = ImageSteps(resize=24, center_crop=20, mean=(0.5,), std=(0.3,), mode="L")
    compose = transforms.Compose([transforms.Resize(24), transforms.CenterCrop(20), transforms.ToTensor(),
                                  transforms.Normalize(steps.mean, steps.std)])
    fallback = reference._torch_transform(steps)
    for data in reference.synthesized_images(steps, count=10, seed=1):
        image = reference.decode(data, "L")
        assert fallback(image).numpy().tobytes() == compose(image).numpy().tobytes()


@pytest.mark.parametrize("padding", ["longest", "max_length"])
def test_the_text_step_is_the_tokenizer_token_for_token(tmp_path: Path, padding: str) -> None:
    pipeline, vdir, _ = _staged(tmp_path, "bag_of_tokens", directory=str(tmp_path / "tok"), padding=padding)
    assert pipeline.reference_name.startswith("transformers")
    tokenizer = reference.load_tokenizer(str(tmp_path / "tok"))  # a save_pretrained-style directory
    texts = ["The cats sat on the mat!", "", "hello", "dog " * 40, "naïve Dog ran far, far."]
    served = ensemble._load_step(vdir)(np.array([t.encode() for t in texts], dtype=object))
    expected = tokenizer(texts, padding=padding, truncation=True, max_length=12, return_tensors="np")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert served[name].dtype == np.int64
        assert served[name].tolist() == expected[name].tolist()
    assert served["input_ids"].shape == (5, 12)  # "dog " * 40 is truncated; the others padded to it


def test_a_bare_tokenizers_tokenizer_is_the_reference_text_by_text(tmp_path: Path) -> None:
    """A tokenizers.Tokenizer (no transformers): the reference encodes text by text and pads itself; the served
    step encodes the request as one batch -- the proof compares the two."""
    from tritonize.generator.examples.reviews import make_reviews, make_tokenizer

    tokenizer = make_tokenizer()
    run, what = reference.text_reference(TextSteps(tokenizer=tokenizer, max_length=64), tokenizer)
    assert what.startswith("tokenizers")
    texts = make_reviews(20, seed=3)[0]
    batch = run(texts)
    width = max(len(tokenizer.encode(t).ids) for t in texts)
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text).ids
        assert batch["input_ids"][i].tolist() == ids + [0] * (width - len(ids))  # [PAD] is id 0
        assert batch["attention_mask"][i].tolist() == [1] * len(ids) + [0] * (width - len(ids))


def test_the_proof_refuses_a_step_that_differs(tmp_path: Path) -> None:
    pipeline, vdir, _ = _staged(tmp_path, "tiny_cnn")
    settings = json.loads((vdir / "pipeline.json").read_text())
    settings["mean"][1] = 0.457  # one channel's mean off by 0.001
    (vdir / "pipeline.json").write_text(json.dumps(settings))
    with pytest.raises(ParityError) as info:
        ensemble.prove(pipeline, vdir, "m_preprocess")
    message = str(info.value)
    assert "\n" not in message
    assert "m_preprocess: the served preprocessing differs from torchvision" in message
    assert "input[" in message and "elements differ" in message


def test_bad_declarations_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"preprocess.image.center_crop.*at most resize"):
        ImageSteps(resize=10, center_crop=12)
    with pytest.raises(SpecError, match=r"mean/std.*3 values each"):
        ImageSteps(mean=(0.5,), std=(0.5,))
    with pytest.raises(SpecError, match="exactly one table"):
        Preprocess()
    with pytest.raises(SpecError, match=r"preprocess\.text\.padding"):
        TextSteps(tokenizer="t.json", padding="right")
    loaded = load_source(f"{MODELS}:tiny_cnn", max_batch_size=8, kwargs={"steps": {"resize": 40, "center_crop": 32}})
    with pytest.raises(SpecError, match=r"inputs\.input: .*expected float32 \[3, 24, 24\]"):
        ensemble.resolve(loaded, Preprocess(image=ImageSteps(resize=40, center_crop=24)))


def test_the_spec_declares_preprocessing_and_reads_the_tokenizer_beside_it(tmp_path: Path) -> None:
    from tritonize.generator.project import load_project, request_from_table, request_to_table

    spec = tmp_path / "tritonize.toml"
    spec.write_text('[models.m]\nsource = "x:y"\n[models.m.preprocess.text]\ntokenizer = "tok/tokenizer.json"\n'
                    'max_length = 32\npadding = "max_length"\n'
                    '[models.i]\nsource = "x:y"\n[models.i.preprocess.image]\nresize = 256\ncenter_crop = 224\n')
    m, i = load_project(spec).models
    assert m.preprocess == Preprocess(text=TextSteps(tokenizer=str(tmp_path / "tok/tokenizer.json"), max_length=32,
                                                     padding="max_length"))
    assert i.preprocess is not None and i.preprocess.image == ImageSteps(resize=256, center_crop=224)
    for req in (m, i):  # the manifest records the request as its table: build --from-manifest reads it back
        assert request_from_table(req.name, request_to_table(req), Path("."), "x") == req
    spec.write_text('[models.m]\nsource = "x:y"\n[models.m.preprocess.image]\nrezise = 3\n')
    proc = subprocess.run([sys.executable, "-c", "from tritonize.cli import main; main()", "build", str(spec),
                           "--repo", str(tmp_path / "repo")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "models.m.preprocess.image.rezise" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("method", ["mean", "cls", "max"])
def test_declared_pooling_is_sentence_transformers_pooling_in_every_format(tmp_path: Path, method: str) -> None:
    import onnxruntime as ort
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    from tritonize.generator.build import build
    from tritonize.generator.preprocess import Pooling
    from tritonize.generator.runners import torchscript_runner

    directory = str(tmp_path / "tok")
    steps = Preprocess(text=TextSteps(tokenizer=directory, max_length=16), pooling=Pooling(method, normalize=True))
    req = ModelRequest("emb", f"{MODELS}:bert_tokens", kwargs={"directory": directory}, max_batch_size=4,
                       formats=("onnx", "torchscript"), preprocess=steps)
    built = {b.name: b for b in build([req], tmp_path / "repo")}
    assert set(built) == {"emb_onnx", "emb_torchscript", "emb_preprocess", "emb_onnx_ensemble",
                          "emb_torchscript_ensemble"}
    assert 'name: "sentence_embedding"' in (tmp_path / "repo" / "emb_onnx_ensemble" / "config.pbtxt").read_text()
    # independently: the eager BertModel's tokens, pooled by sentence-transformers' own module
    bundle = load_source(f"{MODELS}:bert_tokens", max_batch_size=4, kwargs={"directory": str(tmp_path / "t2")})
    tokenizer = reference.load_tokenizer(directory)
    batch = tokenizer(["the cat sat on the mat", "hello", "dog dog dog ran far"], padding=True, return_tensors="pt")
    with torch.no_grad():
        tokens = bundle.module(**batch).last_hidden_state  # type: ignore[misc]
        st = STPooling(16, method)({"token_embeddings": tokens, "attention_mask": batch["attention_mask"]})
    expected = torch.nn.functional.normalize(st["sentence_embedding"], p=2.0, dim=1).numpy()
    inputs = {k: v.numpy() for k, v in batch.items()}
    onnx_out = ort.InferenceSession(str(tmp_path / "repo" / "emb_onnx" / "1" / "model.onnx")).run(None, inputs)[0]
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ts_out = torchscript_runner(tmp_path / "repo" / "emb_torchscript" / "1" / "model.pt", names)(inputs)[0]
    for got in (onnx_out, ts_out):
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_pooling_declarations_are_checked(tmp_path: Path) -> None:
    from tritonize.generator.build import build
    from tritonize.generator.preprocess import Pooling

    with pytest.raises(SpecError, match=r"preprocess\.pooling\.method.*'sum'"):
        Pooling("sum")
    with pytest.raises(SpecError, match=r"pooling only for preprocess\.text"):
        Preprocess(image=ImageSteps(), pooling=Pooling())
    directory = str(tmp_path / "tok")
    steps = Preprocess(text=TextSteps(tokenizer=directory), pooling=Pooling(output="pooler_output"))
    req = ModelRequest("emb", f"{MODELS}:bert_tokens", kwargs={"directory": directory}, max_batch_size=4,
                       formats=("onnx",), preprocess=steps)
    with pytest.raises(SpecError, match=r"preprocess\.pooling\.output.*token embeddings \[tokens, hidden\]"):
        build([req], tmp_path / "repo")
    assert not (tmp_path / "repo" / "emb_onnx").exists()
