"""Trained models with a values output for the drift tests, and the input sets they are tested on.

- ``friedman_regressor``: an MLP fitted to scikit-learn's Friedman #1 regression problem (10 features uniform in
  [0, 1], one target): output ``price`` [1]; its evaluation set is 1,000 held-out samples.
- ``digits_embedder``: the digits example's trained CNN up to its 64-wide hidden layer (ReLU: many exact zeros),
  output ``embedding`` [64]; evaluated on the digits' held-out test split (real data).

Used as callable sources (``drift_models:friedman_regressor``; tests/unit is on sys.path).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tritonize.generator.examples._training import deterministic
from tritonize.generator.examples.digits import build_digits_cnn, load_digits_split
from tritonize.generator.source import ModelBundle

FRIEDMAN_FEATURES = 10


def friedman(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [count, 10], targets float32 [count, 1]) of Friedman #1, noise 0.5."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(count, n_features=FRIEDMAN_FEATURES, noise=0.5, random_state=seed)
    return x.astype(np.float32), y.astype(np.float32)[:, None]


class Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FRIEDMAN_FEATURES, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def friedman_regressor(seed: int = 0) -> ModelBundle:
    x, y = friedman(2000, seed)
    with deterministic(seed):
        model = Regressor()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(400):  # full batch
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
    held_out, _ = friedman(1000, seed + 1)
    return ModelBundle(model.eval(), {"features": torch.from_numpy(x[:2])}, output_names=["price"],
                       evaluation=lambda: ({"features": held_out}, None))


class Embedder(nn.Module):
    def __init__(self, cnn: nn.Module) -> None:
        super().__init__()
        self.features = cnn.features
        self.head = cnn.classifier[:-1]  # Flatten, Dropout, Linear(512, 64), ReLU

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


def digits_embedder() -> ModelBundle:
    split = load_digits_split()
    return ModelBundle(Embedder(build_digits_cnn().model), {"image": torch.from_numpy(split.test_x[:2])},
                       output_names=["embedding"], evaluation=lambda: ({"image": split.test_x}, None))


# --- input sets: like the reference's, and shifted ------------------------------------------------------------


def digits_inputs(shift: str | None) -> np.ndarray:
    """Digits the reference never saw (the training split: the same distribution as the held-out test split),
    unchanged or shifted: 'inverted' (1 - x), 'noised' (Gaussian noise, std 0.3), 'brightened' (+0.5)."""
    x = load_digits_split().train_x
    if shift == "inverted":
        return (1.0 - x).astype(np.float32)
    if shift == "noised":
        return np.clip(x + np.random.default_rng(1).normal(0, 0.3, x.shape), 0, 1).astype(np.float32)
    if shift == "brightened":
        return np.clip(x + 0.5, 0, 1).astype(np.float32)
    assert shift is None, shift
    return x


def friedman_inputs(shift: float = 0.0, count: int = 1000) -> np.ndarray:
    """New Friedman #1 features (a seed neither training nor the reference used), the first five (the ones the
    target depends on) shifted by ``shift``."""
    x, _ = friedman(count, seed=7)
    x[:, :5] += shift
    return x
