"""What the accuracy gate measures, chosen by the model's task, on an evaluation set kept as a list of batches.

The task (``ModelRequest.task``; None: inferred, first rule that applies):

1. labels (a labeled evaluation set, ``labels`` or the model's class labels) → ``classification``;
2. the first output named like an embedding (embed, pool, hidden, feature, encod, vector) → ``embedding``;
3. a float first output of rank ≥ 2 per sample (token embeddings [L, H], feature maps) → ``embedding``;
4. a scalar or [1] per sample → ``regression``;
5. a float [C] per sample: C < 32 → ``classification`` (class scores), else (or C variable) → ``embedding``;
6. an integer/bool output → ``classification`` (its values are the predictions).

What judges each task (budgets are ``FormatOptions`` fields, per format):

- classification: accuracy against the labels (``accuracy_budget`` points of drop), without labels the share of
  samples whose top class agrees with FP32 (``accuracy_budget`` points of disagreement);
- embedding: cosine similarity of each sample's embedding with FP32 (``min_cosine_mean`` 0.99, ``min_cosine_min``
  0.95: issue 12's sentence encoder, per-tensor mean 0.965 / min 0.948, is refused, per-channel 0.993 admitted) and
  nearest-neighbour agreement: each sample's nearest other sample among the INT8 embeddings is the one it has
  among the FP32 embeddings (samples whose two nearest FP32 neighbours are within ``NEIGHBOR_TIE`` are not
  counted; embeddings of variable shape are mean-pooled over all but their last axis for the search). It depends
  on how dense the set is (cosine 0.9975 kept 81 % of neighbours among 128 random sentences), so it is always
  reported and gates only where ``min_neighbor_agreement`` is set;
- regression: relative error, mean |Δ| / mean |FP32 − mean FP32| (``max_relative_error``, 0.05): the error
  against the spread of the outputs over the set, so that an offset (prices around 300) cannot hide it.

The judged output is the first one, except for embeddings: an output named ``sentence_embedding`` is judged when
there is one (a Hugging Face model's ``last_hidden_state`` is judged before its ``pooler_output``: the tanh of the
pooler can hide what the encoder lost). A reference that does not vary over the evaluation set (one class
for every sample, equal embeddings, a constant) is no evidence: the gate refuses it.

Batches are never concatenated before they run: a user's sample or evaluation batches may be padded to
different widths. Per-sample results are joined after.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tritonize.core.loader import summary

from .errors import ExportError, SpecError
from .optimize import AccuracyError, call_ref, load_npz
from .runners import Runner

if TYPE_CHECKING:
    from .io_spec import TensorIO
    from .request import FormatOptions, ModelRequest
    from .source import LoadedModel

EMBEDDING_NAME = re.compile(r"embed|pool|hidden|feature|encod|vector", re.IGNORECASE)
POOLED_NAMES = ("sentence_embedding",)
MIN_EMBEDDING_WIDTH = 32  # a [C] float output without labels: fewer are class scores, more an embedding
NEIGHBOR_TIE = 1e-3  # cosine: a sample whose two nearest FP32 neighbours are this close is not counted
SYNTHESIZED_BATCHES = 8


@dataclass
class EvaluationSet:
    batches: list[dict[str, np.ndarray]]  # run one at a time (variable dims may differ between batches)
    labels: np.ndarray | None  # one per sample, over the batches in order
    where: str

    @property
    def size(self) -> int:
        return sum(_samples(b) for b in self.batches)


def _samples(batch: Mapping[str, np.ndarray], batching: bool = True) -> int:
    return len(next(iter(batch.values()))) if batching else 1


def evaluation_set(req: ModelRequest, loaded: LoadedModel) -> EvaluationSet:
    """The labeled set the gate uses: ``evaluation`` (.npz, or ``module:function`` returning (inputs, labels),
    inputs one dict of arrays or a list of them), the model's own, or samples of its inputs (no labels)."""
    raw: tuple[Any, Any]
    if req.evaluation:
        if req.evaluation.endswith(".npz"):
            arrays = load_npz(req.evaluation, "evaluation")
            raw = (arrays, arrays.pop("labels", None))
        else:
            raw = call_ref(req.evaluation, "evaluation")
        where = req.evaluation
    elif loaded.evaluation is not None:
        raw, where = loaded.evaluation(), "the model's evaluation set"
    else:
        raw = ([loaded.samples.batch(max(req.max_batch_size, 1), seed=900 + i) for i in range(SYNTHESIZED_BATCHES)],
               None)
        where = "synthesized inputs (no labels)"
    if not isinstance(raw, (tuple, list)) or len(raw) != 2 or isinstance(raw[1], Mapping):
        raise SpecError("evaluation", type(raw).__name__, "(inputs, labels): inputs a dict of arrays by input name "
                        "or a list of them, labels an array or None")
    given = [raw[0]] if isinstance(raw[0], Mapping) else list(raw[0])
    batches = []
    for i, batch in enumerate(given):
        missing = [t.name for t in loaded.inputs if t.name not in batch]
        if missing:
            raise SpecError(f"evaluation[{i}]", sorted(batch), f"arrays for every input ({missing[0]} missing)")
        batches.append({t.name: _array(batch[t.name]) for t in loaded.inputs})
    labels = None
    if raw[1] is not None:
        parts = raw[1] if isinstance(raw[1], (list, tuple)) and len(raw[1]) == len(batches) > 1 else [raw[1]]
        labels = np.concatenate([_array(p).reshape(-1) for p in parts])
        count = sum(_samples(b, loaded.batching) for b in batches)
        if len(labels) != count:
            raise SpecError("evaluation.labels", f"{len(labels)} labels", f"{count}, one per evaluation sample")
    return EvaluationSet(batches, labels, where)


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def run_batches(runner: Runner, evaluation: EvaluationSet, chunk: int, output: int, batching: bool) -> list[np.ndarray]:
    """Output ``output`` per evaluation batch, each run ``chunk`` samples at a time (a batch's chunks share its
    shapes, so they join; batches are kept apart). Without batching a batch is one sample: given a batch dim."""
    results = []
    for i, batch in enumerate(evaluation.batches):
        try:
            if not batching:
                results.append(runner(batch)[output][None])
                continue
            total, step = _samples(batch), max(chunk, 1)
            results.append(np.concatenate([runner({k: v[s : s + step] for k, v in batch.items()})[output]
                                           for s in range(0, total, step)]))
        except Exception as exc:
            shapes = ", ".join(f"{k} {v.dtype.name}{list(v.shape)}" for k, v in batch.items())
            raise ExportError(f"evaluation batch {i} of {evaluation.where} ({shapes}) raised {summary(exc)}") from exc
    return results


# --- the task -------------------------------------------------------------------------------------------------


def infer_task(req: ModelRequest, loaded: LoadedModel, labeled: bool) -> str:
    """The task that picks the metric (the module docstring's rule)."""
    if req.task:
        return req.task
    if labeled or req.labels or loaded.labels:
        return "classification"
    return tensor_task(loaded.outputs[0])


def tensor_task(tensor: TensorIO) -> str:
    """What an output holds by its name, dtype and dims alone (rules 2-6 of the module docstring)."""
    if EMBEDDING_NAME.search(tensor.name) and tensor.dtype.is_float:
        return "embedding"
    if not tensor.dtype.is_float:
        return "classification"
    dims = tuple(tensor.dims)
    if len(dims) >= 2:
        return "embedding"
    if dims in ((), (1,)):
        return "regression"
    return "classification" if 1 < dims[0] < MIN_EMBEDDING_WIDTH else "embedding"


def judged_output(task: str, loaded: LoadedModel) -> int:
    names = [o.name for o in loaded.outputs]
    pooled = [i for i, n in enumerate(names) if n in POOLED_NAMES]
    return pooled[0] if task == "embedding" and pooled else 0


# --- measuring ------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    task: str
    judged_by: str  # "cosine (embedding)", ...
    output: str
    values: dict[str, float | None]  # the report's metric fields
    score: tuple[float, ...]  # higher is better: how two candidates (per-tensor, per-channel) are ranked
    samples: int = 0
    summary: str = ""  # the judged numbers in a few words
    failures: list[str] = field(default_factory=list)  # budgets exceeded (filled by check_budgets)


def _rows(batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [b.reshape(len(b), -1).astype(np.float64) for b in batches]


def _cosines(ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> np.ndarray:
    out = []
    for r, g in zip(_rows(ref), _rows(got)):
        norm = np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1)
        same = np.all(r == g, axis=1)
        out.append(np.where(norm > 0, np.sum(r * g, axis=1) / np.where(norm > 0, norm, 1), same.astype(float)))
    return np.concatenate(out)


def _pooled(batches: Sequence[np.ndarray]) -> np.ndarray:
    """One vector per sample for the neighbour search: flattened, or mean-pooled when shapes differ."""
    if len({b.shape[1:] for b in batches}) == 1:
        return np.concatenate(_rows(batches))
    return np.concatenate([b.astype(np.float64).reshape(len(b), -1, b.shape[-1]).mean(1) for b in batches])


def _neighbors(ref: np.ndarray, got: np.ndarray) -> tuple[float | None, int]:
    """Share of samples whose nearest other sample is the same in ``got`` as in ``ref`` (clear ones only)."""
    if len(ref) < 3:
        return None, 0

    def similarities(x: np.ndarray) -> np.ndarray:
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        s = unit @ unit.T
        np.fill_diagonal(s, -np.inf)
        return s

    s_ref, s_got = similarities(ref), similarities(got)
    top2 = np.sort(s_ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > NEIGHBOR_TIE
    if not clear.any():
        return None, 0
    same = np.argmax(s_ref, axis=1) == np.argmax(s_got, axis=1)
    return float(np.mean(same[clear])), int(clear.sum())


def _degenerate(name: str, text: str) -> AccuracyError:
    return AccuracyError(f"accuracy gate: {name}: {text}: agreement with it proves nothing; give a labeled "
                         "evaluation set (evaluation) or a trained model")


def measure(name: str, task: str, output: str, ref: Sequence[np.ndarray], got: Sequence[np.ndarray],
            labels: np.ndarray | None) -> Measurement:
    """The task's metrics of ``got`` against the FP32 ``ref`` (per evaluation batch); AccuracyError when the
    reference does not vary over the set."""
    n = sum(len(b) for b in ref)
    diff = np.concatenate([np.abs(r.astype(np.float64) - g).ravel() for r, g in zip(ref, got)])
    values: dict[str, float | None] = {"max_abs_diff": float(diff.max(initial=0.0)),
                                       "mean_abs_diff": float(diff.mean()) if diff.size else 0.0}
    if task == "classification":
        return _classification(name, output, ref, got, labels, values, n)
    if task == "embedding":
        cos = _cosines(ref, got)
        pooled_ref = _pooled(ref)
        spread = float(np.abs(pooled_ref - pooled_ref.mean(0)).max(initial=0.0))
        if n > 1 and spread <= 1e-6 * max(float(np.abs(pooled_ref).max(initial=0.0)), 1e-30):
            raise _degenerate(name, f"the FP32 model gives the same '{output}' for all {n} evaluation samples")
        neighbors, counted = _neighbors(pooled_ref, _pooled(got))
        values.update(cosine_mean=float(cos.mean()), cosine_min=float(cos.min()), neighbor_agreement=neighbors,
                      neighbor_samples=counted)
        nn = f", nearest neighbour kept for {neighbors:.1%} of {counted}" if neighbors is not None else ""
        return Measurement(task, "cosine (embedding)", output, values, (float(cos.mean()), float(cos.min())), n,
                           f"cosine mean {cos.mean():.4f}, min {cos.min():.4f}{nn}")
    r = np.concatenate([b.astype(np.float64).ravel() for b in ref])
    if n > 1 and float(np.ptp(r)) <= 1e-6 * max(float(np.abs(r).max(initial=0.0)), 1e-30):
        raise _degenerate(name, f"the FP32 model gives {r[0]:.6g} for all {n} evaluation samples")
    rel = float(diff.mean() / max(float(np.abs(r - r.mean()).mean()), 1e-30))
    values.update(relative_error=rel)
    return Measurement(task, "relative error (regression)", output, values, (-rel,), n,
                       f"relative error {rel:.3%} (mean |Δ| / mean |FP32 - its mean|)")


def _classification(name: str, output: str, ref: Sequence[np.ndarray], got: Sequence[np.ndarray],
                    labels: np.ndarray | None, values: dict[str, float | None], n: int) -> Measurement:
    def predictions(batches: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([(b.argmax(-1) if b.dtype.kind in "fc" else b).reshape(-1) for b in batches])

    ref_pred, got_pred = predictions(ref), predictions(got)
    agreement = float(np.mean(ref_pred == got_pred))
    constant = len(ref_pred) > 1 and bool(np.all(ref_pred == ref_pred[0]))
    if constant and (labels is None or len(np.unique(labels)) > 1):
        also = "" if labels is None else " (its labels hold several)"
        raise _degenerate(name, f"the FP32 model predicts class {ref_pred[0]} for all {n} evaluation samples{also}")
    values.update(agreement=agreement)
    if labels is None:
        return Measurement("classification", "agreement (classification, no labels)", output, values,
                           (agreement, -float(values["mean_abs_diff"] or 0)), n, f"agreement {agreement:.1%}")
    if labels.shape != ref_pred.shape:
        raise SpecError("evaluation.labels", f"shape {list(labels.shape)}",
                        f"{list(ref_pred.shape)}, one class per prediction of output '{output}'")
    acc_fp32, acc = float(np.mean(ref_pred == labels)), float(np.mean(got_pred == labels))
    values.update(accuracy_fp32=acc_fp32, accuracy=acc, accuracy_drop_points=(acc_fp32 - acc) * 100)
    return Measurement("classification", "accuracy (classification)", output, values,
                       (acc, agreement, -float(values["mean_abs_diff"] or 0)), n,
                       f"accuracy {acc:.2%} vs FP32 {acc_fp32:.2%}")


def check_budgets(name: str, m: Measurement, opts: FormatOptions, hint: str) -> None:
    """AccuracyError naming every budget the measurement exceeds, the metric that judged and ``hint``."""
    v, failures = m.values, []
    if m.task == "classification" and v.get("accuracy_drop_points") is not None:
        drop = float(v["accuracy_drop_points"] or 0)
        if drop > opts.accuracy_budget:
            failures.append(f"accuracy {v['accuracy']:.2%} vs FP32 {v['accuracy_fp32']:.2%}: drop {drop:.2f} points "
                            f"> budget {opts.accuracy_budget:g} (agreement {v['agreement']:.1%})")
    elif m.task == "classification":
        agreement = float(v["agreement"] or 0)
        if (1 - agreement) * 100 > opts.accuracy_budget:
            failures.append(f"agrees with FP32 on {agreement:.1%} of samples: {(1 - agreement) * 100:.2f} points > "
                            f"budget {opts.accuracy_budget:g} (no labels: agreement is the gate)")
    elif m.task == "embedding":
        for key, budget, what in (("cosine_mean", opts.min_cosine_mean, "cosine mean"),
                                  ("cosine_min", opts.min_cosine_min, "cosine min"),
                                  ("neighbor_agreement", opts.min_neighbor_agreement, "nearest neighbour kept")):
            value = v.get(key)
            if value is not None and budget is not None and value < budget:
                failures.append(f"{what} {value:.4f} < min_{key} {budget:g}")
    elif float(v["relative_error"] or 0) > opts.max_relative_error:
        failures.append(f"relative error {v['relative_error']:.3%} > max_relative_error {opts.max_relative_error:g}")
    m.failures = failures
    if failures:
        raise AccuracyError(f"accuracy gate: {name} {'; '.join(failures)} (judged by {m.judged_by} on {m.samples} "
                            f"samples); {hint}")


def budget_keys(task: str) -> str:
    """The spec keys that set the budgets of ``task``."""
    return {"classification": "accuracy_budget", "embedding": "min_cosine_mean / min_cosine_min / "
            "min_neighbor_agreement", "regression": "max_relative_error"}[task]


@dataclass
class Reference:
    """The evaluation set, the task, the judged output and the FP32 model's outputs on the set."""

    evaluation: EvaluationSet
    task: str
    output: int
    outputs: list[np.ndarray]

    def run(self, runner: Runner, req: ModelRequest, loaded: LoadedModel) -> list[np.ndarray]:
        return run_batches(runner, self.evaluation, max(req.max_batch_size, 1), self.output, loaded.batching)


# the exporter's per-channel choice and the gate after it share one evaluation of the reference model
_REFERENCES: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Reference]] = weakref.WeakKeyDictionary()


def reference(req: ModelRequest, loaded: LoadedModel, keep: bool = True) -> Reference:
    """What ``loaded``'s reference gives on the evaluation set, computed once per reference model and request
    (``keep=False``: the last use, forgotten after)."""
    key = (req.evaluation, req.max_batch_size, req.task, str(req.labels))
    cached = _REFERENCES.setdefault(loaded.reference, {})
    ref = cached.pop(key, None)
    if ref is None:
        evaluation = evaluation_set(req, loaded)
        task = infer_task(req, loaded, evaluation.labels is not None)
        ref = Reference(evaluation, task, judged_output(task, loaded), [])
        ref.outputs = ref.run(loaded.reference, req, loaded)
    if keep:
        cached[key] = ref
    return ref


def _clearly_better(a: tuple[float, ...], b: tuple[float, ...], margin: float = 1e-4) -> bool:
    """``a`` beats ``b`` on the first element where they differ by more than ``margin`` (relative): a near-tie is
    no win, so the choice does not flip with the threads' rounding on another machine (same inputs, same bytes)."""
    for x, y in zip(a, b):
        if abs(x - y) > margin * max(1.0, abs(x), abs(y)):
            return x > y
    return False


def choose_per_channel(req: ModelRequest, fmt: str, loaded: LoadedModel,
                       candidates: Mapping[bool, Runner]) -> tuple[bool, str]:
    """Judge each candidate (per_channel → runner) against ``loaded``'s reference on the task's metric; return
    per-channel only where it is clearly better (per-tensor on a near-tie: the old default, the smaller file) and a
    sentence with every candidate's numbers."""
    ref = reference(req, loaded)
    measured = {pc: measure(req.model_name(fmt), ref.task, loaded.outputs[ref.output].name, ref.outputs,
                            ref.run(runner, req, loaded), ref.evaluation.labels)
                for pc, runner in candidates.items()}
    best = _clearly_better(measured[True].score, measured[False].score)
    words = {True: "per-channel", False: "per-tensor"}
    others = "; ".join(f"{words[pc]}: {m.summary}" for pc, m in measured.items() if pc != best)
    return best, f"{words[best]} chosen by {measured[best].judged_by}: {measured[best].summary} ({others})"
