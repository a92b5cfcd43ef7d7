"""Deterministic training for the example models: fixed seeds, one thread, full-batch order from a seed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(seed: int) -> Iterator[torch.Generator]:
    """Same seed → same weights, bit for bit, on this machine (one thread avoids reduction-order noise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(threads)


def train_classifier(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor, *,
                     epochs: int, batch_size: int, lr: float, generator: torch.Generator) -> torch.nn.Module:
    """Plain Adam + cross-entropy over shuffled minibatches; returns the model in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(*(x[idx] for x in inputs)), labels[idx])
            loss.backward()
            optimizer.step()
    return model.eval()
