"""A tritonize preprocessing step, copied verbatim into the model's version directory by the build.

It computes the model's input tensors from raw inputs (strings, or encoded images) with the settings in
``pipeline.json`` beside it; the build proved it equal to the training preprocessing on the samples its manifest
names. It needs numpy and what ``requirements.txt`` (beside the model's config) lists; nothing of tritonize.
"""

import io
import json
import os

import numpy as np


class BadInput(ValueError):
    """One sample cannot be preprocessed; the message starts with its index."""


def load(directory):
    with open(os.path.join(directory, "pipeline.json")) as f:
        settings = json.load(f)
    return (Text if settings["kind"] == "text" else Image)(settings, directory)


class Text:
    """Strings -> token ids, attention mask, token type ids: the fast tokenizer with the declared padding and
    truncation (tokenizer.json's own padding/truncation settings are replaced by the declared ones)."""

    def __init__(self, settings, directory):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        self.tokenizer.no_truncation()
        if settings["truncation"]:
            self.tokenizer.enable_truncation(max_length=settings["max_length"])
        pad = settings["pad"]
        self.tokenizer.enable_padding(direction=pad["side"], pad_id=pad["id"], pad_type_id=pad["type_id"],
                                      pad_token=pad["token"],
                                      length=settings["max_length"] if settings["padding"] == "max_length" else None)
        self.outputs = settings["outputs"]  # model input name -> [tokenizer field, numpy dtype]

    def __call__(self, raw):
        texts = []
        for i, value in enumerate(raw):
            try:
                texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError as exc:
                raise BadInput(f"[{i}]: not UTF-8 text ({exc})") from None
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        fields = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                  "token_type_ids": [e.type_ids for e in encodings]}
        return {name: np.array(fields[f], dtype=dtype).reshape(len(texts), -1)
                for name, (f, dtype) in self.outputs.items()}


class Image:
    """Encoded images -> float32 [C, H, W]: decode, convert, Resize(shorter side), CenterCrop, ToTensor,
    Normalize, computed as torchvision computes them on PIL images."""

    def __init__(self, settings, directory):
        from PIL import Image as PIL

        self.pil = PIL
        self.settings = settings
        self.resample = {"nearest": PIL.Resampling.NEAREST, "bilinear": PIL.Resampling.BILINEAR,
                         "bicubic": PIL.Resampling.BICUBIC}[
            settings["interpolation"]]
        self.mean = np.array(settings["mean"], dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.array(settings["std"], dtype=np.float32).reshape(-1, 1, 1)
        self.output = settings["output"]

    def one(self, data):
        s = self.settings
        image = self.pil.open(io.BytesIO(data))
        image = image.convert(s["mode"])
        if s["resize"] is not None:
            w, h = image.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = s["resize"], int(s["resize"] * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            if size != image.size:
                image = image.resize(size, self.resample)
        if s["center_crop"] is not None:
            side = s["center_crop"]
            w, h = image.size
            if side > w or side > h:
                raise ValueError(f"{w}x{h} pixels after resize, smaller than center_crop {side}")
            top, left = round((h - side) / 2.0), round((w - side) / 2.0)  # as torchvision: Python round()
            image = image.crop((left, top, left + side, top + side))
        pixels = np.asarray(image, dtype=np.uint8)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        x = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        if self.mean.size:
            x = (x - self.mean) / self.std
        return x

    def __call__(self, raw):
        images = []
        for i, data in enumerate(raw):
            try:
                images.append(self.one(bytes(data)))
            except Exception as exc:  # PIL's UnidentifiedImageError, truncated files, ...
                raise BadInput(f"[{i}]: not an image this step can read ({type(exc).__name__}: {exc})") from None
        shapes = {x.shape for x in images}
        if len(shapes) > 1:
            raise BadInput(f": images of different sizes {sorted(shapes)} in one request (declare center_crop)")
        batch = np.stack(images) if images else np.zeros((0, 0, 0, 0), np.float32)
        return {self.output: batch}
