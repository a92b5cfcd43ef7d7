"""Example 2: a token-sequence classifier (embedding + transformer encoder) on variable-length int64 ids.

Inputs ``ids`` and ``mask`` (int64, [batch, seq], seq varies); output ``logits`` [batch, 3]. The task is
generated in code, deterministically: which of three marker tokens occurs most often in the sequence.
The encoder is written with plain tensor ops so tracing and ONNX export see no data-dependent branches.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..source import ModelBundle
from ._training import deterministic, train_classifier

VOCAB = 32
PAD = 0
MARKERS = (1, 2, 3)  # the class is the marker that occurs most often
MAX_LEN = 256  # the longest sequence the position table covers


def make_task(count: int, seed: int, min_len: int = 6, max_len: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, mask, labels): padded to the longest sequence; markers win with a strict majority."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=count)
    width = int(lengths.max())
    ids = np.full((count, width), PAD, dtype=np.int64)
    mask = np.zeros((count, width), dtype=np.int64)
    labels = rng.integers(0, len(MARKERS), size=count)
    for row, (length, label) in enumerate(zip(lengths, labels)):
        tokens = rng.integers(len(MARKERS) + 1, VOCAB, size=length)
        counts = np.sort(rng.choice(np.arange(length // 3 + 2), size=len(MARKERS), replace=False))[::-1]
        order = [label] + [m for m in range(len(MARKERS)) if m != label]
        slots = rng.permutation(length)
        start = 0
        for marker, n in zip(order, counts):
            tokens[slots[start : start + n]] = MARKERS[marker]
            start += n
        ids[row, :length] = tokens
        mask[row, :length] = 1
    return ids, mask, labels.astype(np.int64)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d_model // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-1, -2)) * self.scale
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = self.norm1(x + self.dropout(self.proj(attended)))
        return self.norm2(x + self.dropout(self.ff(x)))


class SequenceClassifier(nn.Module):
    def __init__(self, d_model: int = 64, heads: int = 4, layers: int = 2, ff: int = 128, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.position = nn.Embedding(MAX_LEN, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff) for _ in range(layers))
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.position(positions)[None]
        for layer in self.layers:
            x = layer(x, mask)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_sequence_classifier(epochs: int = 6, seed: int = 0, train_size: int = 2000, **sizes: int) -> ModelBundle:
    ids, mask, labels = make_task(train_size, seed)
    with deterministic(seed) as gen:
        model = train_classifier(SequenceClassifier(**sizes), (torch.from_numpy(ids), torch.from_numpy(mask)),
                                 torch.from_numpy(labels), epochs=epochs, batch_size=64, lr=2e-3, generator=gen)

    def sample_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]:
        ids, mask, _ = make_task(batch_size, 10_000 + seed)
        return {"ids": ids, "mask": mask}

    def evaluation() -> tuple[dict[str, np.ndarray], np.ndarray]:  # held out: a seed training never used
        ids, mask, labels = make_task(500, seed=2026)
        return {"ids": ids, "mask": mask}, labels

    def calibration() -> list[dict[str, np.ndarray]]:
        return [dict(zip(("ids", "mask"), make_task(32, seed + 1)[:2])) for seed in range(8)]

    example_ids, example_mask, _ = make_task(2, 12345)
    return ModelBundle(model, example_inputs={"ids": torch.from_numpy(example_ids),
                                              "mask": torch.from_numpy(example_mask)},
                       input_dims={"ids": [-1], "mask": [-1]}, output_names=["logits"],
                       sample_inputs=sample_inputs, labels=["marker_1", "marker_2", "marker_3"],
                       evaluation=evaluation, calibration=calibration)
