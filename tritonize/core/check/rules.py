"""The generic config rules: what core checks for every backend (ValidateModelConfig, ValidateIOShape,
NormalizeInstanceGroup, ValidateEnsembleSchedulingConfig, GenerateWarmupData, VersionsToLoad)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as pb

from .. import formats, manifest
from .backends import resolve_backend
from .codes import Hit
from .model import ModelView, artifact, data_file_problem, fmt_list, fmt_shape, read_configs, trt_accelerators
from .ragged import check_batch_io
from .sequence import check_sequence_batching

_PRECISION_MODES = ("FP32", "FP16", "BF16", "INT8")


# --- name, versions and files --------------------------------------------------------------------------


def check_name(m: ModelView) -> Iterator[Hit]:
    if m.cfg.name and m.cfg.name != m.name:
        yield "name-mismatch", (f"name '{m.cfg.name}' differs from the directory name '{m.name}': Triton "
                                "skips the model; remove 'name' or make them equal")


def check_versions(m: ModelView) -> Iterator[Hit]:
    if not m.present_versions:
        yield "version-missing", f"no version directory: Triton needs a numeric subdirectory like {m.name}/1/"
        return
    policy = m.cfg.version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        for v in policy.specific.versions:
            if v not in m.present_versions:
                yield "version-policy-missing", (f"version_policy.specific lists version {v} but "
                                                 f"'{m.name}/{v}/' does not exist (present: "
                                                 f"{fmt_list(m.present_versions)}): it will be unavailable")
    elif not m.loaded_versions:
        yield "version-missing", "version_policy latest num_versions 0 loads no version"


def check_manifest(m: ModelView) -> Iterator[Hit]:
    for gap in manifest.gaps(m.path, m.present_versions):
        yield "manifest-incomplete", f"{gap} (a build killed before recording it?): build it again to repair"


def check_model_files(m: ModelView) -> Iterator[Hit]:
    filename = m.model_filename
    if m.platform == "ensemble" or not filename:
        return
    alternatives = list(m.cfg.cc_model_filenames.values())
    origin = f"default for {m.platform or m.backend}"
    if m.cfg.default_model_filename:
        origin = "default_model_filename"
    for v in m.loaded_versions:
        version_dir = m.path / str(v)
        alternative = any((version_dir / f).exists() for f in alternatives)
        if artifact(version_dir, filename) is None and not alternative:
            yield "model-file-missing", f"version {v} has no '{filename}' ({origin}): Triton cannot load it"


def check_labels(m: ModelView) -> Iterator[Hit]:
    for t in m.cfg.output:
        if t.label_filename and not (m.path / t.label_filename).is_file():
            yield "label-file-missing", (f"output '{t.name}' label_filename '{t.label_filename}' is not in "
                                         f"'{m.name}/' (Triton reads labels from the model directory)")


# --- python backend ------------------------------------------------------------------------------------


def check_python_code(m: ModelView) -> Iterator[Hit]:
    """The python backend imports each loaded version's model.py and runs it as the serving user."""
    if m.backend != "python":
        return
    filename = m.model_filename
    for v in m.loaded_versions:
        path = artifact(m.path / str(v), filename)
        if path is not None and _holds_code(path):
            yield "python-model-code", (f"{filename} of version {v} runs as the serving user's code with that "
                                        "user's rights (python backend): review it before serving")


def _defines_auto_complete(m: ModelView) -> bool:
    """Whether a loaded version's model.py gives TritonPythonModel an auto_complete_config, which the python
    backend runs when auto-complete is on and which may fill in inputs and outputs (pb_utils add_input)."""
    for v in m.loaded_versions:
        path = artifact(m.path / str(v), m.model_filename)
        try:
            body = ast.parse(path.read_bytes()).body if path else []
        except (OSError, SyntaxError, ValueError):
            continue
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name == "TritonPythonModel" and any(
                    isinstance(f, ast.FunctionDef) and f.name == "auto_complete_config" for f in node.body):
                return True
    return False


def _holds_code(path: Path) -> bool:
    """False only for a file that runs nothing when imported: blank, comments, a docstring."""
    try:
        body = ast.parse(path.read_bytes()).body
    except (OSError, SyntaxError, ValueError):
        return True  # unreadable or not Python: do not vouch for it
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    return bool(body)


def python_backend_models(repo: Path | str) -> list[str]:
    """The models of ``repo`` that any of their configs (or, without one, their files) put on the python
    backend: what serving the repository runs as code of its own."""
    root = Path(repo)
    if not root.is_dir():
        return []
    found = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        configs = [s.config for s in read_configs(model_dir) if s.config is not None]
        if not (model_dir / "config.pbtxt").is_file():
            configs.append(pb.ModelConfig())  # Triton auto-completes from the model file
        if any(resolve_backend(cfg, model_dir)[0] == "python" for cfg in configs):
            found.append(model_dir.name)
    return found


# --- inputs and outputs --------------------------------------------------------------------------------


def check_io(m: ModelView) -> Iterator[Hit]:
    fillable = m.backend == "python" and _defines_auto_complete(m)
    for kind, tensors in (("input", m.cfg.input), ("output", m.cfg.output)):
        seen: set[str] = set()
        for t in tensors:
            label = f"{kind} '{t.name}'"
            unset = " or ".join(f for f, no in (("data_type", not t.data_type), ("dims", not t.dims)) if no)
            if fillable and t.name and unset:  # with auto-complete on, core's ValidateIOShape runs after it
                yield "tensor-autocomplete", (
                    f"{label} has no {unset}: model.py's auto_complete_config may fill it in" if m.autocomplete
                    else f"{label} has no {unset} and auto-complete is off (--disable-auto-complete-config): "
                    "core refuses it; model.py's auto_complete_config does not run")
                seen.add(t.name)
                continue
            if not t.name or t.data_type == pb.TYPE_INVALID:
                missing = "name" if not t.name else "data_type"
                yield "tensor-field-missing", f"{kind} '{t.name or '?'}' must specify '{missing}'"
            if t.name in seen:
                yield "duplicate-tensor", (f"{label} is listed twice: Triton loads the model, but a request "
                                           "carries one tensor per name; make the names unique")
            seen.add(t.name)
            yield from _dims_hits(label, list(t.dims), m.mbs)
            if t.HasField("reshape"):
                yield from _reshape_hits(label, list(t.dims), list(t.reshape.shape), m.mbs)


def check_tensor_names(m: ModelView) -> Iterator[Hit]:
    """tritonize's record of the model's own tensor names (formats.TENSOR_NAMES): one per tensor, in order."""
    for kind, tensors in (("input", m.cfg.input), ("output", m.cfg.output)):
        key = formats.TENSOR_NAMES[kind]
        if key not in m.cfg.parameters:
            continue
        value = m.cfg.parameters[key].string_value
        names = value.split(",")
        if len(names) != len(tensors) or len(set(names)) != len(names) or not all(names):
            yield "tensor-names-parameter", (f"parameters '{key}' is {value!r}: {len(names)} name(s) for "
                                             f"{len(tensors)} {kind}(s); expected one distinct name per {kind}, "
                                             "in config order (the typed client maps them by position)")


def _dims_hits(label: str, dims: list[int], mbs: int) -> Iterator[Hit]:
    if not dims:
        fix = "dims: [ 1 ] with reshape: { shape: [ ] }" if mbs > 0 else "dims: [ 1 ]"
        yield "empty-dims", (f"{label} has dims: [] but Triton requires at least one dimension "
                             f"(server#7981); for a model tensor of shape [batch] use {fix}")
    bad = [d for d in dims if d == 0 or d < -1]
    if bad:
        yield "bad-dim", (f"{label} dims {fmt_shape(dims)} contain {bad[0]}: each dimension must be >= 1, "
                          "or -1 for a variable-size dimension")


def _reshape_hits(label: str, dims: list[int], shape: list[int], mbs: int) -> Iterator[Hit]:
    bad = [d for d in shape if d == 0 or d < -1]
    if bad:
        yield "bad-dim", f"{label} reshape {fmt_shape(shape)} contains {bad[0]}: dimensions must be >= 1 or -1"
    elif not shape and mbs == 0:
        yield "reshape-mismatch", (f"{label} has an empty reshape but max_batch_size is 0: a non-batching "
                                   "model cannot have scalar tensors")
    elif _segments(dims) != (_segments(shape) if shape else [1]):  # an empty reshape needs dims of 1 element
        yield "reshape-mismatch", (f"{label} dims {fmt_shape(dims)} and reshape {fmt_shape(shape)} hold different "
                                   "element counts")


def _segments(shape: list[int]) -> list[int]:
    """Element counts between variable (-1) dimensions: what core compares between dims and reshape."""
    counts, current = [], 1
    for d in shape:
        if d == -1:
            counts.append(current)
            current = 1
        else:
            current *= d
    return [*counts, current]


# --- batching and instances ----------------------------------------------------------------------------


def check_batching(m: ModelView) -> Iterator[Hit]:
    if m.mbs < 0:
        yield "bad-max-batch-size", f"max_batch_size {m.mbs} must be >= 0 (0: the model does not batch)"
    if m.cfg.HasField("dynamic_batching"):
        db = m.cfg.dynamic_batching
        yield from _preferred_sizes("dynamic_batching", db.preferred_batch_size, m.mbs)
        if m.mbs == 0 and not db.preferred_batch_size:
            yield "dynamic-batching-unbatched", ("dynamic_batching is set but max_batch_size is 0: the "
                                                 "scheduler queues requests yet never batches them; set "
                                                 "max_batch_size > 0")
        yield from _priority_levels(db)
    oldest = m.cfg.sequence_batching.oldest
    yield from _preferred_sizes("sequence_batching.oldest", oldest.preferred_batch_size, m.mbs)


def _preferred_sizes(field: str, sizes: Iterable[int], mbs: int) -> Iterator[Hit]:
    for size in sizes:
        if size <= 0 or size > mbs:
            yield "preferred-batch-size", (f"{field}.preferred_batch_size {size} must be in "
                                           f"[1, max_batch_size] (max_batch_size is {mbs})")


def _priority_levels(db: pb.ModelDynamicBatching) -> Iterator[Hit]:
    levels = db.priority_levels
    if not levels:
        return
    if not 1 <= db.default_priority_level <= levels:
        yield "priority-level", (f"dynamic_batching.default_priority_level {db.default_priority_level} is "
                                 f"outside [1, {levels}] (priority_levels is {levels})")
    for key in sorted(db.priority_queue_policy):
        if not 1 <= key <= levels:
            yield "priority-level", (f"dynamic_batching.priority_queue_policy key {key} is outside "
                                     f"[1, {levels}]")


def check_instance_groups(m: ModelView) -> Iterator[Hit]:
    for i, group in enumerate(m.cfg.instance_group):
        label = f"instance_group[{i}]" + (f" '{group.name}'" if group.name else "")
        kind = pb.ModelInstanceGroup.Kind.Name(group.kind)
        if group.count < 0:
            yield "instance-count", (f"{label} count {group.count}: Triton treats a count below 1 as unset "
                                     "and uses its default (1; 2 for KIND_CPU on onnxruntime/tensorflow)")
        negative = [g for g in group.gpus if g < 0]
        if negative:
            yield "instance-gpus", f"{label} gpus {fmt_shape(group.gpus)} has id {negative[0]}: GPU ids are >= 0"
        elif group.gpus and group.kind in (pb.ModelInstanceGroup.KIND_CPU, pb.ModelInstanceGroup.KIND_MODEL):
            yield "instance-gpus", (f"{label} has kind {kind} but lists gpus {fmt_shape(group.gpus)}; only "
                                    "KIND_GPU takes gpus")
        elif group.gpus and group.kind == pb.ModelInstanceGroup.KIND_AUTO:
            # core r24.10 model_config_utils.cc NormalizeInstanceGroup turns KIND_AUTO into KIND_CPU where a
            # listed GPU is missing, then ValidateInstanceGroup refuses gpus on a KIND_CPU group. Which GPUs the
            # serving machine has (KIND_GPU ids too: "invalid or unsupported gpu id") is not known statically.
            yield "instance-auto-gpus", (f"{label} has kind KIND_AUTO (kind omitted) and gpus "
                                         f"{fmt_shape(group.gpus)}: on a machine without these GPUs (any CPU-only "
                                         "one) Triton makes it KIND_CPU and then refuses its gpus; set kind: KIND_GPU")


# --- optimization and warmup ---------------------------------------------------------------------------


def check_optimization(m: ModelView) -> Iterator[Hit]:
    if m.cfg.optimization.cuda.graphs and m.backend != "tensorrt":
        yield "cuda-graphs-ignored", (f"optimization.cuda.graphs is only recognized by the tensorrt backend; "
                                      f"'{m.backend or m.platform}' ignores it")
    registered = formats.BACKENDS.get(m.backend)
    if registered is None or not registered.accelerators:  # only onnxruntime runs TensorRT as a provider
        return
    for acc in trt_accelerators(m.cfg):
        mode = acc.parameters.get("precision_mode")
        if mode is not None and mode not in _PRECISION_MODES:
            yield "trt-precision-mode", (f"gpu_execution_accelerator 'tensorrt' precision_mode '{mode}' is "
                                         f"not one of {', '.join(_PRECISION_MODES)} (case-sensitive)")


def check_warmup(m: ModelView) -> Iterator[Hit]:
    seq = m.cfg.sequence_batching  # control and state inputs may be warmed up too
    known = {t.name for t in m.cfg.input} | {c.name for c in seq.control_input} | {
        s.input_name for s in seq.state}
    limit = m.mbs if m.mbs > 0 else 1
    for w in m.cfg.model_warmup:
        label = f"model_warmup '{w.name}'"
        if w.batch_size > limit:  # core sends batch_size requests of batch 1 in one execution
            why = f"max_batch_size {m.mbs}" if m.mbs > 0 else "1 (max_batch_size is 0: no batching)"
            yield "warmup-batch-size", (f"{label} batch_size {w.batch_size} exceeds {why}: the backend "
                                        "rejects the warmup batch and the model fails to load")
        for key, data in sorted(w.inputs.items()):
            if key not in known:
                yield "warmup-unknown-input", (f"{label} input '{key}' is not a configured input "
                                               f"({fmt_list(known)})")
            yield from _warmup_input(m, f"{label} input '{key}'", data)


def _warmup_input(m: ModelView, label: str, data: pb.ModelWarmup.Input) -> Iterator[Hit]:
    """What core's GenerateWarmupData refuses for one warmup input."""
    dims = list(data.dims)
    source = data.WhichOneof("input_data_type")
    if source is None:
        yield "warmup-input-invalid", f"{label} sets none of zero_data, random_data, input_data_file"
    if -1 in dims:
        yield "warmup-input-invalid", f"{label} dims {fmt_shape(dims)} must be fully specified (no -1)"
    if source != "input_data_file":
        return
    problem = data_file_problem(m, "warmup", data.input_data_file, data.data_type, dims)
    if problem:
        code = "warmup-file-missing" if problem[0] == "missing" else "warmup-input-invalid"
        yield code, f"{label} input_data_file {problem[1]}"


# --- ensembles -----------------------------------------------------------------------------------------


def check_ensemble(m: ModelView) -> Iterator[Hit]:
    if m.cfg.platform != "ensemble":
        if m.cfg.HasField("ensemble_scheduling"):
            yield "ensemble-structure", (f"ensemble_scheduling is set but platform is '{m.cfg.platform}', "
                                         "not 'ensemble'")
        return
    yield from (("ensemble-structure", problem) for problem in _ensemble_structure(m.cfg))
    for i, step in enumerate(m.cfg.ensemble_scheduling.step):
        yield from _ensemble_step(m, i, step)
    yield from _ensemble_dataflow(m.cfg)


def _ensemble_structure(cfg: pb.ModelConfig) -> Iterator[str]:
    if cfg.backend:
        yield f"an ensemble must have platform 'ensemble' and no backend (got backend '{cfg.backend}')"
    for field in ("instance_group", "model_warmup"):
        if getattr(cfg, field):
            yield f"{field} is not allowed on an ensemble"
    if cfg.HasField("optimization"):
        yield "optimization is not allowed on an ensemble"
    steps = cfg.ensemble_scheduling.step
    if not steps:
        yield "platform 'ensemble' needs ensemble_scheduling with at least one step"
    for i, step in enumerate(steps):
        for field in ("model_name", "input_map", "output_map"):
            if not getattr(step, field):
                yield f"ensemble_scheduling step {i} must specify '{field}'"
    used = {tensor for step in steps for tensor in step.input_map.values()}
    for t in cfg.input:
        if t.name not in used:
            yield f"ensemble input '{t.name}' is not used by any step"


def _ensemble_step(m: ModelView, i: int, step: pb.ModelEnsembling.Step) -> Iterator[Hit]:
    if not step.model_name:
        return
    if step.model_name not in m.repo:
        yield "ensemble-unknown-model", (f"step {i} model_name '{step.model_name}' is not a model in this "
                                         f"repository ({fmt_list(m.repo)})")
        return
    target = m.repo[step.model_name]
    if target is None:
        return
    for kind, mapping, tensors in (("input", step.input_map, target.input),
                                   ("output", step.output_map, target.output)):
        names = {t.name for t in tensors}
        for key in sorted(mapping):
            if names and key not in names:  # no names: the model leaves its I/O to auto-complete
                yield "ensemble-step-io", (f"step {i} maps {kind} '{key}' of model '{step.model_name}', "
                                           f"which has no such {kind} ({fmt_list(names)})")


def _ensemble_dataflow(cfg: pb.ModelConfig) -> Iterator[Hit]:
    steps = list(cfg.ensemble_scheduling.step)
    ready = {t.name for t in cfg.input}
    pending = list(range(len(steps)))
    # run every step whose inputs are all available, until no step can run
    while runnable := [i for i in pending if set(steps[i].input_map.values()) <= ready]:
        for i in runnable:
            ready |= set(steps[i].output_map.values())
            pending.remove(i)
    writers = {tensor: step for step in steps for tensor in step.output_map.values()}
    for out in cfg.output:
        writer = writers.get(out.name)
        if writer is None:
            yield "ensemble-output-unwritten", (f"output '{out.name}' is not written by any step's "
                                                "output_map (server#3198)")
        elif out.name not in ready:
            missing = sorted(set(writer.input_map.values()) - ready)
            yield "ensemble-output-unwritten", (f"output '{out.name}' comes from model "
                                                f"'{writer.model_name}', whose input '{missing[0]}' no step "
                                                "or ensemble input provides")


RULES = (check_name, check_versions, check_manifest, check_model_files, check_labels, check_python_code, check_io,
         check_tensor_names, check_batch_io, check_batching, check_sequence_batching, check_instance_groups,
         check_optimization, check_warmup, check_ensemble)
