"""Prove an artifact computes what the eager model computes.

Three gates, each failing with the output, the place and the size of the difference:
- parity against the reference on several batches (sizes and variable dims differ from the export's),
  elementwise ``|got - ref| <= atol + rtol * |ref|`` plus cosine similarity and argmax agreement;
- determinism: the same input twice gives bit-identical outputs;
- batch invariance: a sample alone gives what it gives inside a batch of other samples.
Running at batch sizes other than the export's also catches a batch size baked in by tracing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tritonize.core.formats import Tolerance
from tritonize.core.loader import summary

from .errors import ExportError, ParityError
from .exporters import Artifact
from .source import LoadedModel


@dataclass
class OutputParity:
    output: str
    max_abs: float
    max_rel: float  # over elements with |ref| > atol
    cosine: float
    argmax_agreement: float | None  # None when the output is not class scores


@dataclass
class VerificationReport:
    model: str
    format: str
    method: str
    reference: str
    batch_sizes: list[int]
    tolerance: dict[str, float]
    outputs: list[OutputParity]
    deterministic: bool
    batch_invariance_max_abs: float | None  # None when the model does not batch
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _compare(got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> tuple[bool, str]:
    """Elementwise tolerance check; on failure, a sentence naming the worst element."""
    if got.shape != ref.shape:
        return False, f"shape {list(got.shape)} instead of {list(ref.shape)}"
    if got.dtype.kind not in "fc":
        bad = np.argwhere(got != ref)
        if len(bad):
            idx: tuple[Any, ...] = tuple(int(i) for i in bad[0])
            return False, f"at index {idx}: got {got[idx]}, expected {ref[idx]} ({len(bad)} elements differ)"
        return True, ""
    g, r = got.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(g - r)
    limit = tol.atol + tol.rtol * np.abs(r)
    both_nan = np.isnan(g) & np.isnan(r)
    excess = np.where(both_nan, -np.inf, np.nan_to_num(diff - limit, nan=np.inf))
    idx = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
    if excess.size and excess[idx] > 0:
        idx = tuple(int(i) for i in idx)
        return False, (f"at index {idx}: got {_fmt(g[idx])}, expected {_fmt(r[idx])} "
                       f"(|Δ| {_fmt(diff[idx])} > atol {tol.atol:g} + rtol {tol.rtol:g}·|expected|)")
    return True, ""


def _argmax_agreement(got: list[np.ndarray], ref: list[np.ndarray], tol: Tolerance) -> float:
    """Share of samples whose top class agrees, ignoring near-ties in the reference (top-2 within tolerance)."""
    agree, counted = 0, 0
    for g, r in zip(got, ref):
        g2, r2 = g.reshape(-1, g.shape[-1]), r.reshape(-1, r.shape[-1]).astype(np.float64)
        top2 = np.sort(r2, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > tol.atol + tol.rtol * np.abs(top2[:, 1])
        agree += int(np.sum((np.argmax(g2, -1) == np.argmax(r2, -1))[clear]))
        counted += int(np.sum(clear))
    return agree / counted if counted else 1.0


def _metrics(name: str, got: list[np.ndarray], ref: list[np.ndarray], tol: Tolerance,
             class_scores: bool) -> OutputParity:
    g = np.concatenate([x.astype(np.float64).ravel() for x in got])
    r = np.concatenate([x.astype(np.float64).ravel() for x in ref])
    finite = np.isfinite(g) & np.isfinite(r)
    diff = np.abs(g - r)[finite]
    big = np.abs(r[finite]) > tol.atol
    rel = diff[big] / np.abs(r[finite][big]) if big.any() else np.zeros(1)
    norm = np.linalg.norm(g[finite]) * np.linalg.norm(r[finite])
    cosine = float(np.dot(g[finite], r[finite]) / norm) if norm > 0 else float(np.array_equal(g, r))
    agreement = _argmax_agreement(got, ref, tol) if class_scores else None
    return OutputParity(name, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), cosine, agreement)


def _run(artifact: Artifact, batch: dict[str, np.ndarray], size: int, export_size: int | None) -> list[np.ndarray]:
    """Run at a batch size other than the export's; failing there means the batch size was baked in."""
    try:
        out = artifact.runner(batch)
    except Exception as exc:
        raise ExportError(
            f"{artifact.format} artifact fails at batch {size} although it ran at batch {export_size}: the "
            f"{artifact.method} baked the batch size in? ({summary(exc)}). Use x.size(0) or x.flatten(1), not a "
            "constant or int(x.shape[0])") from exc
    for name, arr in zip(artifact.output_names, out):
        if export_size is not None and (arr.ndim == 0 or arr.shape[0] != size):
            raise ExportError(f"{artifact.format} output '{name}' has shape {list(arr.shape)} for a batch of {size}: "
                              f"the {artifact.method} baked in batch size {export_size}")
    return out


def _check_determinism(label: str, artifact: Artifact, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    first, second = artifact.runner(batch), artifact.runner(batch)
    for name, a, b in zip(artifact.output_names, first, second):
        same = (a == b) | ((a != a) & (b != b)) if a.dtype.kind in "fc" else a == b
        if not same.all():
            idx = tuple(int(i) for i in np.argwhere(~same)[0])
            raise ParityError(f"determinism: {label} output '{name}' differs between two runs on the same input at "
                              f"index {idx}: {a[idx]!r} then {b[idx]!r} (random ops in forward()?)")
    return first


def verify(model: str, loaded: LoadedModel, artifact: Artifact, tol: Tolerance, max_batch_size: int,
           seed: int = 0, gate: bool = True) -> VerificationReport:
    """Run the gates; raise ParityError (or ExportError for an artifact that fails to run) on failure.

    ``gate=False`` (quantized artifacts, which the accuracy gate judges instead) measures parity and batch
    invariance without failing on them; determinism is always required."""
    batching = loaded.batching
    label = f"{model} ({artifact.format}, {artifact.method})"
    try:
        artifact.runner(loaded.example_batch)
    except Exception as exc:
        raise ExportError(f"{label} raised on the inputs it was exported with: {summary(exc)}") from exc
    export_size = len(next(iter(loaded.example_batch.values()))) if batching else None
    sizes = sorted({min(s, max_batch_size) for s in (1, 3, 8)} - {export_size} or {1}) if batching else [1, 1]

    probe = loaded.samples.batch(max(sizes) if batching else 1, seed=seed + 100)
    full = _check_determinism(label, artifact, probe)

    class_scores = [len(o.dims) == 1 and o.dims[0] > 1 and o.dtype.is_float for o in loaded.outputs]
    got: list[list[np.ndarray]] = [[] for _ in artifact.output_names]
    ref: list[list[np.ndarray]] = [[] for _ in artifact.output_names]
    for i, size in enumerate(sizes):
        batch = loaded.samples.batch(size, seed=seed + i, vary_dims=i > 0)
        outs = _run(artifact, batch, size, export_size)
        refs = loaded.reference(batch)
        for k, name in enumerate(artifact.output_names):
            ok, where = _compare(outs[k], refs[k], tol)
            if not ok and gate:
                shape = ", ".join(f"{n} {list(v.shape)}" for n, v in batch.items())
                m = _metrics(name, [outs[k]], [refs[k]], tol, False)
                msg = (f"parity: {label} output '{name}' differs from the {loaded.kind} reference on inputs "
                       f"({shape}) {where}; max abs {_fmt(m.max_abs)}, cosine {m.cosine:.6f}")
                if artifact.method == "trace":
                    cause = f" (TracerWarning: {artifact.warnings[0]})" if artifact.warnings else ""
                    msg += (f". Tracing records one path through data-dependent control flow{cause}: "
                            "export with --script")
                raise ParityError(msg + ". Tolerances: atol/rtol in the spec's [models.<name>.<format>.tolerance]")
            got[k].append(outs[k])
            ref[k].append(refs[k])
    outputs = [_metrics(name, got[k], ref[k], tol, class_scores[k]) for k, name in enumerate(artifact.output_names)]
    for p in outputs if gate else ():
        if p.cosine < tol.min_cosine:
            raise ParityError(f"parity: {label} output '{p.output}' cosine similarity {p.cosine:.6f} "
                              f"< min_cosine {tol.min_cosine}")
        if p.argmax_agreement is not None and p.argmax_agreement < tol.min_argmax_agreement:
            raise ParityError(f"parity: {label} output '{p.output}' argmax agrees on {p.argmax_agreement:.1%} "
                              f"of samples < min_argmax_agreement {tol.min_argmax_agreement:.1%}")

    invariance = None
    n = len(next(iter(probe.values())))
    if batching and n >= 2:
        invariance = 0.0
        for row in range(n):
            alone = artifact.runner({k: v[row : row + 1] for k, v in probe.items()})
            for name, single, whole in zip(artifact.output_names, alone, full):
                ok, where = _compare(single[0], whole[row], tol)
                if not ok and gate:
                    raise ParityError(
                        f"batch invariance: {label} output '{name}' of sample {row} run alone differs from the same "
                        f"sample inside a batch of {n} {where}: the model mixes samples across the batch "
                        "(BatchNorm with batch statistics, x.mean(0), ...)")
                if single.dtype.kind == "f":
                    invariance = max(invariance, float(np.abs(single[0].astype(np.float64) - whole[row]).max()))
    return VerificationReport(
        model, artifact.format, artifact.method, f"{loaded.kind} model", sizes, asdict(tol), outputs,
        True, invariance, list(artifact.warnings),
    )
