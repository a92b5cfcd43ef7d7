"""Preprocessing on the server: the steps training used, declared once, served as a python-backend model in front
of the exported model (an ensemble), and proven at build time to compute what training computed.

    [models.reviews.preprocess.text]          # strings in: a Hugging Face fast tokenizer
    tokenizer = "tokenizer.json"              # tokenizer.json, a save_pretrained directory, or module:function
    max_length = 64
    padding = "longest"                       # longest | max_length

    [models.bert.preprocess.pooling]          # token embeddings -> a sentence embedding, in the exported model
    method = "mean"                           # mean | cls | max, over the attention mask
    normalize = true

    [models.glyphs.preprocess.image]          # PNG/JPEG bytes in: torchvision's Resize, CenterCrop, ToTensor, Normalize
    resize = 36
    center_crop = 32
    mean = [0.5, 0.5, 0.5]
    std = [0.25, 0.25, 0.25]

A ``ModelBundle`` may carry the same declaration (``preprocess=Preprocess(image=ImageSteps(...))``), so that the
training code and the build read one object. These dataclasses import nothing heavy; ``reference`` holds the eager
implementation (what training runs), ``served/`` the files the python backend runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError

TOKENIZER_FIELDS = ("input_ids", "attention_mask", "token_type_ids")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CHANNELS = {"RGB": 3, "L": 1}


@dataclass(frozen=True)
class TextSteps:
    """Tokenize strings as training did: the fast tokenizer, its padding and truncation."""

    tokenizer: Any  # tokenizer.json path, a save_pretrained directory, "module:function", or a tokenizer object
    max_length: int = 128
    padding: str = "longest"  # longest: to the longest text of a request; max_length: always max_length tokens
    truncation: bool = True
    input: str = "text"  # the ensemble's input: one string per sample

    def __post_init__(self) -> None:
        if self.padding not in ("longest", "max_length"):
            raise SpecError("preprocess.text.padding", self.padding, "longest or max_length")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise SpecError("preprocess.text.max_length", self.max_length, "an integer >= 1")


@dataclass(frozen=True)
class ImageSteps:
    """Decode and transform images as torchvision's Resize(int), CenterCrop(int), ToTensor, Normalize do."""

    resize: int | None = None  # the shorter side, keeping the aspect ratio (torchvision Resize(int))
    center_crop: int | None = None  # a square of this side from the middle (torchvision CenterCrop(int))
    mean: tuple[float, ...] = ()  # per channel, after scaling to [0, 1]; empty: no Normalize
    std: tuple[float, ...] = ()
    mode: str = "RGB"  # PIL mode the decoded image is converted to: RGB or L
    interpolation: str = "bilinear"
    input: str = "image_bytes"  # the ensemble's input: one encoded image (PNG, JPEG, ...) per sample

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        for name in ("resize", "center_crop"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise SpecError(f"preprocess.image.{name}", value, "a size in pixels >= 1")
        if self.resize is not None and self.center_crop is not None and self.center_crop > self.resize:
            raise SpecError("preprocess.image.center_crop", self.center_crop, f"at most resize ({self.resize})")
        if self.mode not in CHANNELS:
            raise SpecError("preprocess.image.mode", self.mode, "RGB or L")
        if self.interpolation not in INTERPOLATIONS:
            raise SpecError("preprocess.image.interpolation", self.interpolation, "one of " + ", ".join(INTERPOLATIONS))
        if len(self.mean) != len(self.std) or (self.mean and len(self.mean) != self.channels):
            raise SpecError("preprocess.image.mean/std", [list(self.mean), list(self.std)],
                            f"{self.channels} values each (one per {self.mode} channel), or both empty")
        if any(s <= 0 for s in self.std):
            raise SpecError("preprocess.image.std", list(self.std), "values > 0")

    @property
    def channels(self) -> int:
        return CHANNELS[self.mode]


POOLING = ("mean", "cls", "max")


@dataclass(frozen=True)
class Pooling:
    """Sentence embeddings from token embeddings, as sentence-transformers' Pooling computes them: added to the
    model before export (so every format and the native backends run it), verified with it."""

    method: str = "mean"  # mean over the attention mask | cls: the first token | max over unmasked tokens
    normalize: bool = False  # L2-normalize the embedding (cosine similarity becomes a dot product)
    output: str | None = None  # the model output to pool (default: the first, e.g. last_hidden_state)
    mask: str = "attention_mask"  # the input that marks real tokens
    name: str = "sentence_embedding"  # the output it becomes

    def __post_init__(self) -> None:
        if self.method not in POOLING:
            raise SpecError("preprocess.pooling.method", self.method, "one of " + ", ".join(POOLING))


@dataclass(frozen=True)
class Preprocess:
    """One of ``text`` or ``image``; ``samples``: raw inputs the build proves the served steps on (a list, or
    "module:function" returning one; default: synthesized strings or images)."""

    text: TextSteps | None = None
    image: ImageSteps | None = None
    samples: Any = None
    pooling: Pooling | None = None  # text models returning token embeddings: the sentence embedding served

    def __post_init__(self) -> None:
        if (self.text is None) == (self.image is None):
            raise SpecError("preprocess", "text and image" if self.text else "neither",
                            "exactly one table: preprocess.text or preprocess.image")
        if self.pooling is not None and self.text is None:
            raise SpecError("preprocess.pooling", "with preprocess.image", "pooling only for preprocess.text")

    @property
    def kind(self) -> str:
        return "text" if self.text is not None else "image"

    @property
    def input_name(self) -> str:
        steps = self.text or self.image
        assert steps is not None
        return steps.input

    def to_toml(self) -> dict[str, Any]:
        from ..toml_form import to_table

        table = to_table(self, skip=("samples",))
        if isinstance(self.samples, str):
            table["samples"] = self.samples
        return table


@dataclass(frozen=True)
class Proof:
    """What the build compared: the served steps against the reference, on these raw samples."""

    samples: int
    reference: str
    served: str
    equal: bool = True
    detail: Mapping[str, Any] = field(default_factory=dict)
