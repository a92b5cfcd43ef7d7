"""The reference distribution of a model's outputs: what a build records in each version's manifest entry
(``tritonize.generator.distribution``) and what the run-time drift monitor compares served outputs with
(``tritonize.client.drift``). This module is the one place that knows the record's shape and its binning.

Manifest key ``output_distribution`` of a version's entry::

    "output_distribution": {
      "on": "the model's evaluation set",     # or "sample inputs (256, seed 4000)": what the reference ran on
      "samples": 360,
      "outputs": {                            # keyed by the model's own output names (TensorInfo.key)
        "logits": {                           # class scores
          "kind": "classes", "dims": [10],
          "scores": "logits",                 # or "probabilities" (rows already sum to 1): how confidence is taken
          "frequencies": [0.1, ...],          # share of samples whose top class is i, one per class
          "confidence": {"quantiles": [...], "bins": [...], "mean": 0.97, "std": 0.08}  # top-1 probability
        },
        "embedding": {                        # embeddings, regressors: every value of the output
          "kind": "values", "dims": [16],
          "quantiles": [...],                 # at levels 0, 0.05, ..., 1 (QUANTILE_LEVELS)
          "bins": [0.1, ...],                 # share of the values in each PSI bin (psi_edges), right-closed
          "mean": 0.01, "std": 0.9,
          "norm": {"quantiles": [...], "bins": [...], "mean": 3.2, "std": 0.4}   # per-sample L2 norm; only
        }                                     # for outputs of more than one value per sample
      }
    }

Floats keep ``DIGITS`` significant digits (thread rounding in the model's last bits cannot change the bytes);
bins are counted against the rounded edges, so the build and the monitor bin alike. PSI bins: classes are
binned by class (beyond ``MAX_CLASS_BINS`` classes, the rarest are pooled into one bin); values by the deciles
among the quantiles (equal edges merged, so ties such as ReLU zeros make one bin). Confidences keep ``DIGITS``
significant digits of their distance to 1. An embedding's values pooled over its dimensions can keep their
distribution while the inputs change (inverted digits: PSI 0.07), its samples' norms do not (0.68): the monitor
scores both and reports the larger.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

KEY = "output_distribution"
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)  # the recorded quantiles (KS interpolates the CDF between them)
PSI_LEVEL_STEP = 2  # PSI bins between every 2nd quantile: deciles (fewer bins, less sampling noise in PSI)
MAX_CLASS_BINS = 20  # PSI over more classes than this pools the rarest (noise grows with bins / window)
DIGITS = 4
PROBABILITY_TOLERANCE = 1e-3  # rows of non-negative scores summing to 1 within this are probabilities


def rounded(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def rounded_list(values: NDArray[Any]) -> list[float]:
    return [rounded(float(v)) for v in values]


def rounded_probabilities(values: NDArray[Any]) -> list[float]:
    """Probabilities with ``DIGITS`` significant digits of their distance to 1 (0.99997 stays 0.99997)."""
    return [1.0 - rounded(1.0 - float(v)) for v in values]


def are_probabilities(scores: NDArray[Any]) -> bool:
    """Whether class-score rows are already probabilities (non-negative, summing to 1)."""
    rows = scores.reshape(-1, scores.shape[-1]).astype(np.float64)
    return bool(rows.size) and bool(np.all(rows >= 0)) and bool(
        np.all(np.abs(rows.sum(-1) - 1) <= PROBABILITY_TOLERANCE))


def softmax(logits: NDArray[Any]) -> NDArray[np.float64]:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def probabilities(scores: NDArray[Any]) -> NDArray[np.float64]:
    """Class-score rows as probabilities: as they are when they already are (``are_probabilities``), else their
    softmax (logits)."""
    return scores.astype(np.float64) if are_probabilities(scores) else softmax(scores)


def top1(scores: NDArray[Any], kind: str) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The top class and its probability per row of ``scores`` [..., C] (``kind``: 'logits' or 'probabilities')."""
    rows = scores.reshape(-1, scores.shape[-1]).astype(np.float64)
    classes = rows.argmax(-1)
    if kind == "probabilities":
        return classes, rows[np.arange(len(rows)), classes]
    top = rows[np.arange(len(rows)), classes]
    with np.errstate(over="ignore", invalid="ignore"):
        confidence = 1.0 / np.exp(rows - top[:, None]).sum(-1)  # softmax at the argmax, stable
    return classes, np.nan_to_num(confidence, nan=0.0)


def psi_edges(quantiles: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inner edges of the PSI bins of a ``values`` record: its deciles, equal ones merged."""
    edges: NDArray[np.float64] = np.unique(quantiles[PSI_LEVEL_STEP:-1:PSI_LEVEL_STEP])
    return edges


def bin_shares(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of ``values`` in each bin (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def class_bins(frequencies: NDArray[np.float64]) -> NDArray[np.int64]:
    """PSI bin of each class: its own, or beyond ``MAX_CLASS_BINS`` classes one shared bin for the rarest."""
    bins = np.arange(len(frequencies))
    if len(frequencies) > MAX_CLASS_BINS:
        order = np.argsort(-frequencies, kind="stable")
        bins[order[MAX_CLASS_BINS - 1:]] = MAX_CLASS_BINS - 1
        bins[order[: MAX_CLASS_BINS - 1]] = np.arange(MAX_CLASS_BINS - 1)
    return bins


def one_value_per_sample(dims: list[int] | tuple[int, ...]) -> bool:
    """Whether an output of these per-sample dims is one number per sample (else its norm is recorded too)."""
    return all(d == 1 for d in dims)


def _scalars(values: NDArray[Any], probabilities: bool = False) -> dict[str, Any]:
    flat = values.astype(np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        raise ValueError("no finite values")
    quantiles = np.array((rounded_probabilities if probabilities else rounded_list)(
        np.quantile(flat, QUANTILE_LEVELS)))
    return {"quantiles": quantiles.tolist(), "bins": rounded_list(bin_shares(flat, psi_edges(quantiles))),
            "mean": rounded(float(flat.mean())), "std": rounded(float(flat.std()))}


def sample_norms(samples: NDArray[Any]) -> NDArray[np.float64]:
    """The L2 norm of each sample (first axis) of an output."""
    rows = samples.reshape(len(samples), -1).astype(np.float64)
    norms: NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return norms


def summarize_values(values: NDArray[Any], dims: list[int], norms: NDArray[Any] | None = None) -> dict[str, Any]:
    """The ``values`` record of every finite value of an output over the reference set, with the record of the
    samples' ``norms`` (``sample_norms``) for outputs of several values per sample. ValueError: no finite value."""
    record = {"kind": "values", "dims": list(dims), **_scalars(values)}
    if norms is not None:
        record["norm"] = _scalars(norms)
    return record


def summarize_classes(scores: NDArray[Any], dims: list[int]) -> dict[str, Any]:
    """The ``classes`` record of class scores [..., C] over the reference set."""
    kind = "probabilities" if are_probabilities(scores) else "logits"
    classes, confidence = top1(scores, kind)
    frequencies = np.bincount(classes, minlength=scores.shape[-1]) / max(len(classes), 1)
    return {"kind": "classes", "dims": list(dims), "scores": kind, "frequencies": rounded_list(frequencies),
            "confidence": _scalars(confidence, probabilities=True)}
