"""Example 1: a small CNN on scikit-learn's 8x8 digits (the data ships inside scikit-learn).

``build_digits_cnn()`` trains it deterministically in a few seconds and returns a ``ModelBundle`` with
example inputs, real held-out samples for verification and the class labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..source import ModelBundle
from ._training import deterministic, train_classifier


@dataclass(frozen=True)
class DigitsSplit:
    train_x: np.ndarray  # float32 [N, 1, 8, 8] in [0, 1]
    train_y: np.ndarray  # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray


def load_digits_split(seed: int = 0) -> DigitsSplit:
    """The 1,797 digits split 80/20, stratified, with a fixed seed (the test part is held out)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return DigitsSplit(train_x, train_y, test_x, test_y)


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                        nn.Linear(64, 10))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


def build_digits_cnn(epochs: int = 8, seed: int = 0) -> ModelBundle:
    split = load_digits_split(seed)
    with deterministic(seed) as gen:
        model = train_classifier(DigitsCNN(), (torch.from_numpy(split.train_x),), torch.from_numpy(split.train_y),
                                 epochs=epochs, batch_size=32, lr=3e-3, generator=gen)

    def sample_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]:
        rows = np.random.default_rng(seed).choice(len(split.test_x), size=batch_size, replace=False)
        return {"image": split.test_x[rows]}

    def calibration() -> list[dict[str, np.ndarray]]:  # training images: what static INT8 calibrates on
        return [{"image": split.train_x[start : start + 32]} for start in range(0, 256, 32)]

    return ModelBundle(model, example_inputs={"image": torch.from_numpy(split.test_x[:2])},
                       output_names=["logits"], sample_inputs=sample_inputs, labels=[str(d) for d in range(10)],
                       evaluation=lambda: ({"image": split.test_x}, split.test_y), calibration=calibration)
