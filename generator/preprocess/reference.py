"""The eager side of preprocessing: what training runs, for the build to compare the served steps with.

Text: the user's tokenizer called as training calls it (a ``transformers`` fast tokenizer with the declared
padding and truncation; a bare ``tokenizers.Tokenizer`` text by text, padded here). Images: torchvision's
``Resize``/``CenterCrop``/``ToTensor``/``Normalize`` on the decoded PIL image when torchvision is installed, else
the same steps in PIL + torch (``ImageSteps`` documents the semantics). ``image_transform`` is also what a
training script should use, so that training and serving read one declaration.
"""

from __future__ import annotations

import importlib.metadata
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.core.loader import load_callable, summary

from ..errors import ModelLoadError, SpecError
from . import ImageSteps, TextSteps


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --- text ----------------------------------------------------------------------------------------------------


def load_tokenizer(value: Any) -> Any:
    """The tokenizer object a spec names: tokenizer.json, a save_pretrained directory, module:function, or an
    object (a transformers fast tokenizer or a tokenizers.Tokenizer)."""
    where = "preprocess.text.tokenizer"
    if not isinstance(value, (str, Path)):
        tokenizer = value
    elif str(value).endswith(".json") or Path(value).is_dir():
        path = Path(value)
        if not path.exists():
            raise SpecError(where, str(value), "an existing tokenizer.json or save_pretrained directory")
        try:
            if path.is_dir():
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            else:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise SpecError(where, str(value), f"a readable fast tokenizer ({summary(exc)})") from None
    else:
        try:
            tokenizer = load_callable(str(value), where)()
        except SpecError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{where} {value!r} raised {summary(exc)}") from exc
    if not (hasattr(tokenizer, "backend_tokenizer") or hasattr(tokenizer, "encode_batch")):
        raise SpecError(where, type(tokenizer).__name__, "a Hugging Face fast tokenizer (PreTrainedTokenizerFast) "
                        "or a tokenizers.Tokenizer")
    return tokenizer


def _backend(tokenizer: Any) -> Any:
    return tokenizer.backend_tokenizer if hasattr(tokenizer, "backend_tokenizer") else tokenizer


def pad_settings(tokenizer: Any) -> dict[str, Any]:
    """The pad token, its id and type id, and the side, as the training tokenizer pads."""
    if hasattr(tokenizer, "backend_tokenizer"):
        if tokenizer.pad_token_id is None:
            raise SpecError("preprocess.text.tokenizer", type(tokenizer).__name__, "a tokenizer with a pad token")
        return {"token": tokenizer.pad_token, "id": int(tokenizer.pad_token_id),
                "type_id": int(tokenizer.pad_token_type_id), "side": tokenizer.padding_side}
    if tokenizer.padding is not None:
        p = tokenizer.padding
        return {"token": p["pad_token"], "id": int(p["pad_id"]), "type_id": int(p["pad_type_id"]),
                "side": p["direction"]}
    for token in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(token) is not None:
            return {"token": token, "id": int(tokenizer.token_to_id(token)), "type_id": 0, "side": "right"}
    raise SpecError("preprocess.text.tokenizer", "no pad token", "a tokenizer with padding enabled, or a [PAD] or "
                    "<pad> token")


def tokenizer_json(tokenizer: Any) -> str:
    return str(_backend(tokenizer).to_str())


def text_reference(steps: TextSteps, tokenizer: Any) -> tuple[Callable[[Sequence[str]], dict[str, np.ndarray]], str]:
    """(texts -> {input_ids, attention_mask, token_type_ids}, a description) as training tokenizes."""
    if hasattr(tokenizer, "backend_tokenizer"):
        def hf(texts: Sequence[str]) -> dict[str, np.ndarray]:
            out = tokenizer(list(texts), padding=steps.padding, truncation=steps.truncation,
                            max_length=steps.max_length, return_tensors="np", return_token_type_ids=True,
                            return_attention_mask=True)
            return {k: np.asarray(out[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}

        return hf, f"transformers {_version('transformers')} {type(tokenizer).__name__}.__call__"

    from tokenizers import Tokenizer

    own = Tokenizer.from_str(tokenizer.to_str())
    own.no_padding()
    own.no_truncation()
    if steps.truncation:
        own.enable_truncation(max_length=steps.max_length)
    pad = pad_settings(tokenizer)

    def bare(texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = [own.encode(t) for t in texts]  # one by one, padded here: not the served batch call
        width = steps.max_length if steps.padding == "max_length" else max((len(e.ids) for e in encodings), default=0)
        out = {}
        for name, attr, fill in (("input_ids", "ids", pad["id"]), ("attention_mask", "attention_mask", 0),
                                 ("token_type_ids", "type_ids", pad["type_id"])):
            rows = []
            for e in encodings:
                row, gap = list(getattr(e, attr)), [fill] * (width - len(e.ids))
                rows.append(gap + row if pad["side"] == "left" else row + gap)
            out[name] = np.array(rows, dtype=np.int64).reshape(len(texts), width)
        return out

    return bare, f"tokenizers {_version('tokenizers')} Tokenizer.encode per text, padded"


def synthesized_texts(tokenizer: Any, count: int = 48, seed: int = 0) -> list[str]:
    """Strings from the tokenizer's vocabulary, of many lengths (some beyond any max_length), plus edge cases."""
    rng = np.random.default_rng(seed)
    vocab = sorted(t for t in _backend(tokenizer).get_vocab() if t.isalpha())
    words = vocab or ["a", "b"]
    texts = ["", "x", "Hello, World!", "naïve café — 東京 🙂", " ".join(["long"] * 600)]
    for _ in range(count - len(texts)):
        n = int(rng.integers(1, 40))
        texts.append(" ".join(words[int(i)] for i in rng.integers(0, len(words), n)))
    return texts


# --- images --------------------------------------------------------------------------------------------------


def decode(data: bytes, mode: str) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert(mode)


def image_transform(steps: ImageSteps) -> tuple[Callable[[Any], Any], str]:
    """(PIL image -> float32 tensor [C, H, W], a description): torchvision's transforms when installed."""
    try:
        from torchvision import transforms
    except Exception:  # not installed, or installed without its ops
        return _torch_transform(steps), "PIL + torch (torchvision not installed)"
    mode = {"nearest": transforms.InterpolationMode.NEAREST, "bilinear": transforms.InterpolationMode.BILINEAR,
            "bicubic": transforms.InterpolationMode.BICUBIC}[steps.interpolation]
    chain: list[Any] = []
    if steps.resize is not None:
        chain.append(transforms.Resize(steps.resize, interpolation=mode))
    if steps.center_crop is not None:
        chain.append(transforms.CenterCrop(steps.center_crop))
    chain.append(transforms.ToTensor())
    if steps.mean:
        chain.append(transforms.Normalize(steps.mean, steps.std))
    return transforms.Compose(chain), f"torchvision {_version('torchvision')} transforms"


def _torch_transform(steps: ImageSteps) -> Callable[[Any], Any]:
    import torch
    from PIL import Image

    resample = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}[steps.interpolation]

    def transform(image: Any) -> Any:
        if steps.resize is not None:
            w, h = image.size
            size = (steps.resize, int(steps.resize * h / w)) if w <= h else (int(steps.resize * w / h), steps.resize)
            if size != image.size:
                image = image.resize(size, resample)
        if steps.center_crop is not None:
            side = steps.center_crop
            w, h = image.size
            top, left = round((h - side) / 2.0), round((w - side) / 2.0)
            image = image.crop((left, top, left + side, top + side))
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        x = x.view(x.shape[0], x.shape[1], -1).permute(2, 0, 1).contiguous().float().div(255)
        if steps.mean:
            x = x.sub(torch.tensor(steps.mean).view(-1, 1, 1)).div(torch.tensor(steps.std).view(-1, 1, 1))
        return x

    return transform


def image_reference(steps: ImageSteps) -> tuple[Callable[[Sequence[bytes]], np.ndarray], str]:
    transform, what = image_transform(steps)

    def run(raw: Sequence[bytes]) -> np.ndarray:
        return np.stack([transform(decode(data, steps.mode)).numpy() for data in raw])

    return run, what


def synthesized_images(steps: ImageSteps, count: int = 16, seed: int = 0) -> list[bytes]:
    """Encoded images of several sizes and aspect ratios (PNG in RGB, RGBA, L and palette modes; JPEG), noise
    with structure so that resizing has something to interpolate."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    floor = max(steps.resize or 0, steps.center_crop or 0, 8)
    out = []
    for i in range(count):
        w, h = (int(v) for v in rng.integers(floor, floor * 3, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i + 3) + yy * 7) % 256, (yy * (i + 5)) % 256, (xx ^ yy) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 24, base.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
        kind = ("RGB", "RGBA", "L", "P", "JPEG")[i % 5]
        buffer = io.BytesIO()
        if kind == "JPEG":
            image.save(buffer, "JPEG", quality=90)
        else:
            (image.convert(kind) if kind != "RGB" else image).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out
