"""Output drift: are the outputs a model serves still distributed as on the set the build recorded?

The build records each output's reference distribution in the version's manifest entry (the record and its
bins: ``tritonize.core.distribution``). ``DriftMonitor`` keeps a window of the outputs it is shown and scores
each output against its reference::

    from tritonize.client.drift import DriftMonitor, load_references
    monitor = DriftMonitor(load_references(Path("model_repository/digits_onnx")))
    monitor.observe(triton.model("digits_onnx").infer(image=batch))   # per request: outputs by key
    for name, score in monitor.scores().items():                     # when metrics are read
        print(name, score.psi, score.ks, score.samples, score.drifted)

- **PSI** (population stability index) of the window's bin shares against the reference's: for class scores
  the top class's frequencies and, over its deciles, the top-1 confidence (noised digits keep their class mix,
  not their confidence); for values the reference's deciles, and for an output of several values per sample (an
  embedding) also its samples' L2 norms. Empty bins count as ``EPSILON``. The largest PSI and KS are reported
  (``DriftScore.detail`` has each part's).
  Sampling noise alone gives about (bins - 1) * (1 / window + 1 / reference samples): keep the window large
  (the digits classifier on unseen digits against its 360-sample reference: PSI 0.05 over 1,000 samples, 0.10 on
  average and up to 0.16 over 200).
- **KS**: the one-sample Kolmogorov-Smirnov statistic of the window's top-1 confidences (class scores), values or
  norms against the reference's CDF, linear between its quantiles (with the jumps its ties make).
- ``drifted``: PSI above ``tritonize.core.observability.PSI_ALERT``, the threshold the alert rule uses.

A sample is one row of class scores, or one sample of a values output (of which at most ``values_per_sample``
values, drawn at random, are kept, and its norm). ``observe`` only copies into ring buffers (window x classes
floats for class scores); ``scores`` does the counting. numpy only.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tritonize.core import distribution as dist
from tritonize.core.errors import SpecError
from tritonize.core.manifest import MANIFEST
from tritonize.core.observability import PSI_ALERT

__all__ = ["EPSILON", "DriftMonitor", "DriftScore", "OutputReference", "Scalars", "ks", "load_references", "psi",
           "reference_cdf"]

EPSILON = 1e-4  # the share an empty bin counts as in PSI


def psi(expected: ArrayLike, observed: ArrayLike, epsilon: float = EPSILON) -> float:
    """Population stability index sum((o - e) ln(o / e)) of two histograms over the same bins (counts or
    shares; each is normalized), shares below ``epsilon`` counted as ``epsilon``."""
    e = np.asarray(expected, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    if e.shape != o.shape or e.ndim != 1 or not e.size:
        raise ValueError(f"psi: histograms of one equal number of bins expected, got shapes {e.shape} and {o.shape}")
    e = np.maximum(e / max(float(e.sum()), 1e-300), epsilon)
    o = np.maximum(o / max(float(o.sum()), 1e-300), epsilon)
    return float(np.sum((o - e) * np.log(o / e)))


def _knots(quantiles: NDArray[np.float64], levels: NDArray[np.float64]
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The CDF's knots: each distinct quantile value, with the lowest and highest level it is reached at."""
    values, first = np.unique(quantiles, return_index=True)
    last = len(quantiles) - 1 - np.unique(quantiles[::-1], return_index=True)[1]
    return values, levels[first], levels[last]


def reference_cdf(x: ArrayLike, quantiles: ArrayLike, levels: ArrayLike = dist.QUANTILE_LEVELS,
                  left: bool = False) -> NDArray[np.float64]:
    """The CDF through (quantile, level) points, linear between distinct values, 0 below the lowest and 1 above
    the highest; a value several quantiles share is a jump (``left``: the limit from below there)."""
    q = np.asarray(quantiles, dtype=np.float64)
    values, low, high = _knots(q, np.asarray(levels, dtype=np.float64))
    xs = np.asarray(x, dtype=np.float64)
    j = np.searchsorted(values, xs, side="right") - 1  # last knot <= x
    inner = np.clip(j, 0, len(values) - 1)
    nxt = np.clip(j + 1, 0, len(values) - 1)
    width = values[nxt] - values[inner]
    t = np.where(width > 0, (xs - values[inner]) / np.where(width > 0, width, 1.0), 0.0)
    cdf = high[inner] + (low[nxt] - high[inner]) * t
    if left:
        cdf = np.where(xs == values[inner], low[inner], cdf)
    top = low[-1] if left else 1.0  # at the highest value: its jump's foot from below, else 1
    cdf = np.where(j >= len(values) - 1, np.where(xs == values[-1], top, 1.0), cdf)
    return np.where(j < 0, 0.0, cdf)


def ks(values: ArrayLike, quantiles: ArrayLike, levels: ArrayLike = dist.QUANTILE_LEVELS) -> float:
    """One-sample Kolmogorov-Smirnov statistic sup |F_n - F| of ``values`` against ``reference_cdf``."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(x)
    if not n:
        raise ValueError("ks: no values")
    i = np.arange(1, n + 1)
    above = i / n - reference_cdf(x, quantiles, levels)
    below = reference_cdf(x, quantiles, levels, left=True) - (i - 1) / n
    return float(max(above.max(), below.max(), 0.0))


@dataclass(frozen=True)
class Scalars:
    """The reference distribution of one number per sample (or per value): quantiles at
    ``tritonize.core.distribution.QUANTILE_LEVELS``, moments, and for PSI the inner bin edges and shares."""

    quantiles: NDArray[np.float64]
    mean: float
    std: float
    edges: NDArray[np.float64]
    bins: NDArray[np.float64]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Scalars:
        quantiles = np.asarray(record["quantiles"], dtype=np.float64)
        if quantiles.shape != dist.QUANTILE_LEVELS.shape or np.any(np.diff(quantiles) < 0) or not np.all(
                np.isfinite(quantiles)):
            raise ValueError(f"{len(dist.QUANTILE_LEVELS)} finite non-decreasing quantiles")
        edges = dist.psi_edges(quantiles)
        bins = np.asarray(record["bins"], dtype=np.float64)
        if bins.shape != (len(edges) + 1,):
            raise ValueError(f"{len(bins)} bins for {len(edges)} inner edges")
        return cls(quantiles, float(record["mean"]), float(record["std"]), edges, bins)

    def cdf(self, x: ArrayLike) -> NDArray[np.float64]:
        return reference_cdf(x, self.quantiles)

    def score(self, observed: NDArray[np.float64]) -> tuple[float, float]:
        """(PSI, KS) of ``observed`` values against this reference."""
        return psi(self.bins, dist.bin_shares(observed, self.edges)), ks(observed, self.quantiles)


@dataclass(frozen=True)
class OutputReference:
    """One output's reference distribution, as the manifest records it (``tritonize.core.distribution``)."""

    name: str
    kind: str  # "classes" | "values"
    dims: tuple[int, ...]  # per sample, as in the config (-1 variable)
    scalars: Scalars  # the top-1 confidence (classes) or every value (values): what KS compares
    norm: Scalars | None = None  # values of several per sample: the samples' L2 norms
    scores: str = ""  # classes: "logits" | "probabilities"
    frequencies: NDArray[np.float64] | None = None  # classes: share of each top class
    class_bins: NDArray[np.int64] | None = None  # classes: PSI bin of each class
    class_shares: NDArray[np.float64] | None = None  # classes: the reference's share of each PSI bin

    @classmethod
    def from_record(cls, name: str, record: Mapping[str, Any], where: str = "") -> OutputReference:
        """From a manifest record; a record of another shape is a SpecError naming ``where``."""
        try:
            dims = tuple(int(d) for d in record["dims"])
            if record["kind"] == "classes":
                frequencies = np.asarray(record["frequencies"], dtype=np.float64)
                if frequencies.ndim != 1 or len(frequencies) < 2:
                    raise ValueError("a share per class, of at least 2 classes")
                groups = dist.class_bins(frequencies)
                shares = np.bincount(groups, weights=frequencies, minlength=int(groups.max()) + 1).astype(np.float64)
                return cls(name, "classes", dims, Scalars.from_record(record["confidence"]),
                           scores=str(record["scores"]), frequencies=frequencies, class_bins=groups,
                           class_shares=shares)
            if record["kind"] == "values":
                norm = Scalars.from_record(record["norm"]) if "norm" in record else None
                return cls(name, "values", dims, Scalars.from_record(record), norm)
            raise ValueError(f"kind {record['kind']!r}")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SpecError(f"{where}outputs.{name}", dict(record) if isinstance(record, Mapping) else record,
                            f"a reference distribution as tritonize records it ({type(exc).__name__}: {exc})") from None


def load_references(model_dir: Path, version: int | None = None) -> dict[str, OutputReference]:
    """The reference distributions ``model_dir``'s manifest records for ``version`` (default: the latest recorded),
    keyed by the model's own output names (``TensorInfo.key``: the names the typed client returns)."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise SpecError("model_dir", str(model_dir), f"a model directory tritonize built (no {MANIFEST}: "
                        f"{exc.strerror})") from None
    except ValueError as exc:
        raise SpecError(str(path), "unreadable JSON", f"a tritonize manifest ({exc})") from None
    versions = manifest.get("versions") if isinstance(manifest, dict) else None
    if not isinstance(versions, dict) or not versions:
        raise SpecError(f"{path}: versions", versions, "the versions tritonize built")
    key = str(version) if version is not None else max(versions, key=int)
    if key not in versions:
        raise SpecError("version", version, f"a version {path} records: {', '.join(sorted(versions, key=int))}")
    recorded = versions[key].get(dist.KEY) if isinstance(versions[key], dict) else None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("outputs"), dict):
        raise SpecError(f"{path}: versions.{key}.{dist.KEY}", recorded,
                        "the outputs' reference distribution (build the model again with this tritonize: "
                        "`tritonize build` records it)")
    where = f"{path}: versions.{key}.{dist.KEY}."
    return {name: OutputReference.from_record(name, record, where) for name, record in recorded["outputs"].items()}


@dataclass(frozen=True)
class DriftScore:
    """One output's drift over the monitor's window."""

    output: str
    psi: float
    ks: float
    samples: int  # in the window the scores are computed on
    # (psi, ks) of each part: "classes" (the top class's frequencies: no KS) and "confidence" (its probability),
    # or "values" and "norm" (an embedding's samples' L2 norms); psi and ks above are the largest
    detail: Mapping[str, tuple[float, float | None]] = dataclasses.field(default_factory=dict)
    threshold: float = PSI_ALERT

    @property
    def drifted(self) -> bool:
        return self.psi > self.threshold


class _Window:
    """A ring buffer of the last ``size`` rows of one output's observed summaries."""

    def __init__(self, size: int, width: int, dtype: type[np.generic]) -> None:
        self.rows: NDArray[Any] = np.zeros((size, width), dtype=dtype)
        self.count = 0
        self.pos = 0

    def add(self, rows: NDArray[Any]) -> None:
        size = len(self.rows)
        if len(rows) == 1:  # the common case, a request of one: no index arrays
            self.rows[self.pos] = rows[0]
        else:
            rows = rows[-size:]
            self.rows[(self.pos + np.arange(len(rows))) % size] = rows
        self.pos = (self.pos + len(rows)) % size
        self.count = min(self.count + len(rows), size)

    def current(self) -> NDArray[Any]:
        return self.rows[: self.count] if self.count < len(self.rows) else self.rows


class DriftMonitor:
    """Windowed PSI and KS of a model's outputs against their build-time reference (module docstring).

    ``observe`` takes outputs as the typed client returns them (by key, batch first when the model batches);
    outputs without a reference are ignored. Safe to share between threads."""

    def __init__(self, references: Mapping[str, OutputReference], window: int = 1000, min_samples: int = 200,
                 values_per_sample: int = 64, seed: int = 0) -> None:
        if window < 1:
            raise SpecError("window", window, "at least 1 sample")
        if not 1 <= min_samples <= window:
            raise SpecError("min_samples", min_samples, f"between 1 and the window ({window})")
        if values_per_sample < 1:
            raise SpecError("values_per_sample", values_per_sample, "at least 1")
        self.references = dict(references)
        self.window, self.min_samples = window, min_samples
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[_Window, ...]] = {}
        self._widths: dict[str, int] = {}
        for name, ref in self.references.items():
            if ref.kind == "classes":
                assert ref.frequencies is not None  # the scores as received: top1 runs once per scores()
                self._windows[name] = (_Window(window, len(ref.frequencies), np.float64),)
            else:
                fixed = all(d > 0 for d in ref.dims)
                size = int(np.prod(ref.dims)) if fixed else 0
                self._widths[name] = size if 0 < size <= values_per_sample else -values_per_sample
                self._windows[name] = (_Window(window, abs(self._widths[name]), np.float64),
                                       *((_Window(window, 1, np.float64),) if ref.norm is not None else ()))

    def observe(self, outputs: Mapping[str, Any]) -> None:
        """Add a response's outputs (a batch, or one sample of a model without batching) to the window."""
        rows = {name: self._rows(name, np.asarray(value)) for name, value in outputs.items()
                if name in self.references}
        with self._lock:
            for name, parts in rows.items():
                for window, part in zip(self._windows[name], parts):
                    window.add(part)

    def _rows(self, name: str, array: NDArray[Any]) -> tuple[NDArray[Any], ...]:
        ref = self.references[name]
        rank = len(ref.dims)
        if array.ndim not in (rank, rank + 1) or any(d > 0 and s != d for s, d in zip(array.shape[-rank:], ref.dims)
                                                     if rank):
            raise SpecError(f"outputs.{name}", f"shape {list(array.shape)}",
                            f"[batch, *{list(ref.dims)}] or {list(ref.dims)}, the dims its reference was recorded for")
        samples = array.reshape(-1, *array.shape[-rank:]) if rank else array.reshape(-1)
        if ref.kind == "classes":
            assert ref.frequencies is not None
            if samples.shape[-1] != len(ref.frequencies):
                raise SpecError(f"outputs.{name}", f"{samples.shape[-1]} classes",
                                f"{len(ref.frequencies)}, as in its reference")
            return (samples.reshape(-1, samples.shape[-1]),)
        flat = samples.reshape(len(samples), -1).astype(np.float64)
        norms = (dist.sample_norms(flat)[:, None],) if ref.norm is not None else ()
        width = self._widths[name]
        if not flat.shape[1]:  # variable dims of size 0: nothing to count
            return (np.empty((0, abs(width))), *(np.empty((0, 1)) for _ in norms))
        if width < 0:  # a random subset of each sample's values (with replacement)
            picks = self._rng.integers(0, flat.shape[1], size=(len(flat), -width))
            flat = np.take_along_axis(flat, picks, axis=1)
        return (flat, *norms)

    def scores(self) -> dict[str, DriftScore]:
        """PSI and KS per output whose window holds at least ``min_samples`` samples."""
        with self._lock:
            current = {name: tuple(w.current().copy() for w in windows) for name, windows in self._windows.items()
                       if windows[0].count >= self.min_samples}
        out = {}
        for name, parts in current.items():
            ref = self.references[name]
            if ref.kind == "classes":
                assert ref.class_bins is not None and ref.class_shares is not None
                classes, confidence = dist.top1(parts[0], ref.scores)
                observed = np.bincount(ref.class_bins[classes], minlength=len(ref.class_shares))
                detail: dict[str, tuple[float, float | None]] = {
                    "classes": (psi(ref.class_shares, observed), None), "confidence": ref.scalars.score(confidence)}
            else:
                values = parts[0].ravel()
                values = values[np.isfinite(values)]
                if not values.size:
                    continue
                detail = {"values": ref.scalars.score(values)}
                if ref.norm is not None:
                    norms = parts[1].ravel()
                    detail["norm"] = ref.norm.score(norms[np.isfinite(norms)])
            out[name] = DriftScore(name, max(p for p, _ in detail.values()),
                                   max(k for _, k in detail.values() if k is not None), len(parts[0]), detail)
        return out

    def reset(self) -> None:
        """Forget every observed sample (after a deploy of a new version, say)."""
        with self._lock:
            for windows in self._windows.values():
                for w in windows:
                    w.count = w.pos = 0
