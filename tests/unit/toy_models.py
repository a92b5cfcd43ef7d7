"""Tiny models for the generator tests: well-behaved ones, and ones built to break each gate.

Used as callable sources, e.g. ``toy_models:mlp`` (tests/unit is on sys.path) or
``tests/unit/toy_models.py:mlp`` from the CLI.
"""

from __future__ import annotations

import torch
from torch import nn

from tritonize.generator.source import ModelBundle


def _seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    _seeded(seed)
    return MLP(), torch.randn(2, 4, generator=torch.Generator().manual_seed(0))


def mlp_module_only() -> nn.Module:
    _seeded()
    return MLP()


class TwoHeads(nn.Module):
    """Two inputs (float features + int64 token ids of variable length), two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.dense = nn.Linear(4, 6)
        self.cls = nn.Linear(6, 5)

    def forward(self, features: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embed(ids)  # [B, T, 6]
        pooled = tokens.mean(1) + self.dense(features)
        return self.cls(pooled), tokens.sum(-1)  # [B, 5] and [B, T]


def two_heads() -> ModelBundle:
    _seeded()
    return ModelBundle(TwoHeads(), {"features": torch.randn(2, 4), "ids": torch.randint(0, 20, (2, 7))},
                       input_dims={"ids": [-1]})


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.lin(x)
        return {"scores": y, "probs": y.softmax(-1)}


def dict_out() -> tuple[nn.Module, torch.Tensor]:
    _seeded()
    return DictOut(), torch.randn(2, 3)


class PerSampleScalar(nn.Module):
    """Takes and returns one number per sample: shape [batch]."""

    def forward(self, price: torch.Tensor) -> torch.Tensor:
        return price * 1.2 + 1.0


def per_sample_scalar() -> tuple[nn.Module, torch.Tensor]:
    return PerSampleScalar(), torch.tensor([3.0, 4.5])


# --- models built to break a gate -------------------------------------------------------------------


class BatchStatsNorm(nn.Module):
    """BatchNorm without running stats normalizes with the batch's own statistics even in eval()."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, track_running_stats=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(image)).flatten(1)


def batch_stats_norm() -> tuple[nn.Module, torch.Tensor]:
    _seeded()
    return BatchStatsNorm(), torch.randn(2, 1, 4, 4)


class MixesBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True)


def mixes_batch() -> tuple[nn.Module, torch.Tensor]:
    _seeded()
    return MixesBatch(), torch.randn(2, 5)


class StuckInTraining(nn.Module):
    """A training-mode BatchNorm that eval() cannot reach (train() is overridden)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)

    def train(self, mode: bool = True) -> StuckInTraining:
        self.training = mode
        for m in self.children():
            m.training = True  # bug: the BatchNorm stays in training mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


def stuck_in_training() -> tuple[nn.Module, torch.Tensor]:
    return StuckInTraining(), torch.randn(2, 4)


class BakedBatch(nn.Module):
    """int(x.shape[0]) is a Python number to the tracer: the example's batch size becomes a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = int(x.shape[0])
        return x.reshape(batch, -1) * 2


def baked_batch() -> tuple[nn.Module, torch.Tensor]:
    return BakedBatch(), torch.randn(2, 3, 2)


class Noisy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x) * 1e-3


def noisy() -> tuple[nn.Module, torch.Tensor]:
    return Noisy(), torch.randn(2, 3)


class Branchy(nn.Module):
    """Control flow on the sequence length: a trace records only the branch its example took."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 4:
            return x[:, :4].sum(1, keepdim=True)
        return x.sum(1, keepdim=True)


def branchy() -> ModelBundle:
    return ModelBundle(Branchy(), torch.randn(2, 3), input_dims={"x": [-1]})


def raises() -> nn.Module:
    raise RuntimeError("weights file not found")


def not_a_module() -> int:
    return 42


class Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy() * 2)  # leaves the graph: cannot be traced to ONNX


def unexportable() -> tuple[nn.Module, torch.Tensor]:
    return Unexportable(), torch.randn(2, 3)
