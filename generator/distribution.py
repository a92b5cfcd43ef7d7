"""The reference distribution of a model's outputs, recorded in every version's manifest entry under
``output_distribution`` (the record's shape and bins: ``tritonize.core.distribution``), for the run-time drift
monitor (``tritonize.client.drift``) to compare served outputs with.

What it is computed on: the evaluation set (the spec's ``evaluation``, else ``ModelBundle.evaluation``: the set the
accuracy gate uses, real data for the bundled examples), or without one ``REFERENCE_SAMPLES`` sample inputs
(``LoadedModel.samples``, seeds from ``SAMPLE_SEED``). The eager reference model computes the outputs, so every
format of a model (and its ensemble) records the same distribution.

Which record an output gets: class scores (``classes``: top-class frequencies, top-1 confidence quantiles) when
its task is classification (the first output: ``accuracy.infer_task``, so labels and ``task`` count; the others:
``accuracy.tensor_task``) and it is a float output with a fixed last dim of at least 2; every other output is
``values`` (quantiles, PSI bins, mean and std of all its values, and of its samples' L2 norms where a sample
has more than one value).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from tritonize.core import distribution as dist
from tritonize.core.log import logger

from .accuracy import EvaluationSet, evaluation_set, infer_task, run_batches, tensor_task

if TYPE_CHECKING:
    from .io_spec import TensorIO
    from .request import ModelRequest
    from .source import LoadedModel

REFERENCE_SAMPLES = 256  # without an evaluation set: this many sample inputs (a model without batching: a quarter)
SAMPLE_BATCH = 32
SAMPLE_SEED = 4000
_log = logger(__name__)

# every format of a model records the same distribution: computed once per reference model and request
_RECORDS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], dict[str, Any]]] = weakref.WeakKeyDictionary()


def _reference_set(req: ModelRequest, loaded: LoadedModel) -> EvaluationSet:
    if req.evaluation or loaded.evaluation is not None:
        return evaluation_set(req, loaded)
    count = REFERENCE_SAMPLES if loaded.batching else REFERENCE_SAMPLES // 4
    size = SAMPLE_BATCH if loaded.batching else 1
    batches = [loaded.samples.batch(size, seed=SAMPLE_SEED + i) for i in range(count // size)]
    return EvaluationSet(batches, None, f"sample inputs ({count}, seeds from {SAMPLE_SEED})")


def _is_class_scores(tensor: TensorIO, task: str) -> bool:
    dims = tuple(tensor.dims)
    return task == "classification" and tensor.dtype.is_float and bool(dims) and dims[-1] > 1


def reference_distribution(req: ModelRequest, loaded: LoadedModel) -> dict[str, Any]:
    """The ``output_distribution`` record of ``loaded``'s outputs (module docstring); an evaluation set the
    model cannot run is the accuracy gate's ExportError."""
    key = (req.evaluation, req.max_batch_size, req.task, str(req.labels))
    cached = _RECORDS.setdefault(loaded.reference, {})
    if key in cached:
        return cached[key]
    reference_set = _reference_set(req, loaded)
    first_task = infer_task(req, loaded, reference_set.labels is not None)
    chunk = max(req.max_batch_size, 1)
    outputs: dict[str, Any] = {}
    samples = 0
    for i, tensor in enumerate(loaded.outputs):
        batches = run_batches(loaded.reference, reference_set, chunk, i, loaded.batching)
        samples = sum(len(b) for b in batches)
        dims = list(tensor.dims)
        try:
            if _is_class_scores(tensor, first_task if i == 0 else tensor_task(tensor)):
                rows = np.concatenate([b.reshape(-1, b.shape[-1]) for b in batches])
                outputs[tensor.name] = dist.summarize_classes(rows, dims)
            else:
                norms = None if dist.one_value_per_sample(dims) else np.concatenate(
                    [dist.sample_norms(b) for b in batches])
                outputs[tensor.name] = dist.summarize_values(np.concatenate([b.ravel() for b in batches]), dims, norms)
        except ValueError as exc:  # no finite values
            _log.warning(f"[{req.name}] output '{tensor.name}': no reference distribution recorded ({exc} on "
                         f"{reference_set.where})")
    cached[key] = {"on": reference_set.where, "samples": samples, "outputs": outputs}
    return cached[key]
