"""Build models into a Triton repository: load → export → verify → render → stage → check → commit.

``ModelRequest`` is the one description of a model to build; the CLI's ``export`` and the TOML spec's
``build`` both produce it. Everything is staged and checked before the first byte reaches the repository.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config_spec import (
    DynamicBatching,
    InstanceGroup,
    ModelConfigSpec,
    Optimization,
    SequenceBatching,
    VersionPolicy,
    Warmup,
    WarmupInput,
    check_backend_options,
    check_name,
    check_scheduling,
)
from .errors import ExportError, SpecError
from .export import DEFAULT_OPSET, FORMATS, Artifact, export, export_torchscript, torchscript_equivalent
from .io_spec import DeclaredTensor
from .optimize import (
    OptimizationReport,
    Quantization,
    accuracy_gate,
    calibration_batches,
    call_ref,
    compare_latency,
    file_sizes,
    load_npz,
    load_samples,
    prune_module,
    quantize_onnx,
    quantize_torch_module,
    run_in_chunks,
)
from .render import render_config
from .runners import OnnxRunner, Runner, TorchRunner
from .source import LoadedModel, load_source
from .verify import DEFAULT_TOLERANCES, Tolerance, VerificationReport, verify
from .writer import StagedModel, commit, existing_versions, plan, sha256, staging_area

INT8_FORMATS = {"onnx-int8": "onnx", "torchscript-int8": "torchscript"}  # -> the FP32 format they come from
ALL_FORMATS = (*FORMATS, *INT8_FORMATS)
BACKEND_OF = {"onnx": "onnxruntime", "torchscript": "pytorch", "onnx-int8": "onnxruntime",
              "torchscript-int8": "pytorch"}
LABELS_FILE = "labels.txt"
CPU_VARIANT = "cpu.pbtxt"


@dataclass(frozen=True)
class FormatOptions:
    """Settings that apply to one format of a model."""

    tolerance: Tolerance | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    optimization: Optimization = field(default_factory=Optimization)
    opset: int = DEFAULT_OPSET
    quantization: Quantization | None = None  # int8 formats (default: dynamic)
    accuracy_budget: float = 1.0  # points of accuracy (or of agreement without labels) an optimization may lose

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", dict(self.parameters))
        if isinstance(self.accuracy_budget, bool) or not 0 <= self.accuracy_budget <= 100:
            raise SpecError("accuracy_budget", self.accuracy_budget, "percentage points in [0, 100]")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not 7 <= self.opset <= 23:
            raise SpecError("opset", self.opset, "an ONNX opset between 7 and 23")


@dataclass(frozen=True)
class ModelRequest:
    name: str
    source: str
    formats: tuple[str, ...] = FORMATS
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[DeclaredTensor, ...] = ()
    output_names: tuple[str, ...] | None = None
    example_inputs: Path | None = None  # .npz of example inputs (for .pt sources)
    max_batch_size: int = 32
    dynamic_batching: DynamicBatching | None = None
    sequence_batching: SequenceBatching | None = None
    instance_groups: tuple[InstanceGroup, ...] = ()
    version: int | None = None  # None: next free version
    version_policy: VersionPolicy | None = None
    warmup_batch_sizes: tuple[int, ...] | None = None  # None: 1 and max_batch_size
    response_cache: bool = False
    labels: Path | None = None
    default_model_filename: str | None = None
    script: bool = False
    format_options: Mapping[str, FormatOptions] = field(default_factory=dict)
    prune: float | None = None  # fraction of Linear/Conv weights zeroed (L1, unstructured) before export
    evaluation: str | None = None  # labeled set for the accuracy gate: .npz (inputs + "labels") or module:fn

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        object.__setattr__(self, "formats", tuple(self.formats))
        if not self.formats:
            raise SpecError("formats", [], "at least one of " + ", ".join(ALL_FORMATS))
        for fmt in self.formats + tuple(self.format_options):
            if fmt not in ALL_FORMATS:
                raise SpecError("formats", fmt, "one of " + ", ".join(ALL_FORMATS))
        for fmt, opts in self.format_options.items():
            try:
                check_backend_options(BACKEND_OF[fmt], opts.parameters, opts.optimization)
                _check_int8_options(fmt, opts)
            except SpecError as exc:
                raise exc.within(fmt) from None
        if self.prune is not None and (isinstance(self.prune, bool) or not 0 < self.prune < 1):
            raise SpecError("prune", self.prune, "a fraction in (0, 1) of Linear/Conv weights to zero")
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int) or self.max_batch_size < 0:
            raise SpecError("max_batch_size", self.max_batch_size, "an integer >= 0 (0: the model does not batch)")
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise SpecError("version", self.version, "an integer >= 1")
        for size in self.warmup_batch_sizes or ():
            if not isinstance(size, int) or not 1 <= size <= max(self.max_batch_size, 1):
                raise SpecError("warmup_batch_sizes", size, f"sizes in [1, {max(self.max_batch_size, 1)}]")
        check_scheduling(self.max_batch_size, self.dynamic_batching, self.sequence_batching)
        if self.labels is not None and not Path(self.labels).is_file():
            raise SpecError("labels", str(self.labels), "an existing text file, one label per line")

    def model_name(self, fmt: str) -> str:
        return f"{self.name}_{fmt.replace('-', '_')}"

    def options(self, fmt: str) -> FormatOptions:
        return self.format_options.get(fmt, FormatOptions())


def _check_int8_options(fmt: str, opts: FormatOptions) -> None:
    """Quantization settings only on INT8 formats; TensorRT INT8 only where TensorRT can run it."""
    if opts.quantization is not None and fmt not in INT8_FORMATS:
        raise SpecError("quantization", "set", "quantization settings only on onnx-int8 or torchscript-int8")
    trt = opts.optimization.tensorrt
    if trt is None or trt.precision_mode != "INT8":
        return
    static = fmt == "onnx-int8" and opts.quantization is not None and opts.quantization.method == "static"
    if static and trt.int8_calibration_table_name:
        raise SpecError("optimization.tensorrt.int8_calibration_table_name", trt.int8_calibration_table_name,
                        "no calibration table for a Q/DQ model (TensorRT refuses both together)")
    if not static and not trt.int8_calibration_table_name:
        raise SpecError("optimization.tensorrt.precision_mode", "INT8",
                        "INT8 only for a Q/DQ model (onnx-int8 with quantization.method = static) or with "
                        "int8_calibration_table_name")


@dataclass
class BuiltModel:
    name: str
    format: str
    version: int
    action: str  # new | add-version | replace-version | unchanged
    sha256: str
    report: VerificationReport
    reference: Runner | None = field(default=None, repr=False)  # the eager model, for comparisons
    optimization: OptimizationReport | None = None  # INT8 / pruned artifacts: accuracy, speed, size


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("tritonize", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _labels(req: ModelRequest, loaded: LoadedModel) -> list[str] | None:
    labels = Path(req.labels).read_text().splitlines() if req.labels else loaded.labels
    if labels is None:
        return None
    classes = loaded.outputs[0].dims[-1]
    if classes != -1 and len(labels) != classes:
        raise SpecError("labels", f"{len(labels)} labels", f"{classes}, one per class of output "
                        f"'{loaded.outputs[0].name}'")
    return labels


def _warmup(req: ModelRequest, loaded: LoadedModel, artifact: Artifact, root: Path) -> tuple[Warmup, ...]:
    """Warmup requests from one real sample, written as raw row-major files under ``warmup/``."""
    sizes = req.warmup_batch_sizes
    if sizes is None:
        sizes = tuple(sorted({1, req.max_batch_size})) if req.max_batch_size else (1,)
    if not sizes:
        return ()
    sample = loaded.samples.batch(1, seed=7)
    inputs = []
    (root / "warmup").mkdir(exist_ok=True)
    for spec, config_name in zip(loaded.inputs, artifact.input_names):
        arr = sample[spec.name][0] if loaded.batching else sample[spec.name]
        (root / "warmup" / config_name).write_bytes(np.ascontiguousarray(arr).tobytes())
        inputs.append(WarmupInput(config_name, spec.dtype.config, tuple(arr.shape) or (1,), config_name))
    return tuple(Warmup(f"batch_{b}", b, tuple(inputs)) for b in sizes)


def _config(req: ModelRequest, fmt: str, loaded: LoadedModel, artifact: Artifact, warmup: tuple[Warmup, ...],
            labels: list[str] | None) -> ModelConfigSpec:
    opts = req.options(fmt)
    inputs = [t.config(name) for t, name in zip(loaded.inputs, artifact.input_names)]
    outputs = [t.config(name, LABELS_FILE if labels and i == 0 else None)
               for i, (t, name) in enumerate(zip(loaded.outputs, artifact.output_names))]
    groups = req.instance_groups
    if fmt == "torchscript-int8":  # quantized TorchScript kernels exist for CPU only
        groups = tuple(dataclasses.replace(g, kind="KIND_CPU", gpus=()) for g in groups) or (InstanceGroup("cpu"),)
    return ModelConfigSpec(
        name=req.model_name(fmt), backend=BACKEND_OF[fmt], max_batch_size=req.max_batch_size,
        inputs=tuple(inputs), outputs=tuple(outputs), dynamic_batching=req.dynamic_batching,
        sequence_batching=req.sequence_batching, instance_groups=groups,
        version_policy=req.version_policy, warmup=warmup, response_cache=req.response_cache,
        optimization=opts.optimization, parameters=opts.parameters,
        default_model_filename=req.default_model_filename,
    )


def cpu_variant(spec: ModelConfigSpec) -> ModelConfigSpec | None:
    """The same model on CPU instances, for machines without a GPU (``--model-config-name=cpu``); None when
    the spec has no KIND_GPU group. GPU-only accelerators (TensorRT) are dropped; everything else is kept."""
    if not any(g.kind == "KIND_GPU" for g in spec.instance_groups):
        return None
    groups = tuple(dataclasses.replace(g, kind="KIND_CPU", gpus=()) if g.kind == "KIND_GPU" else g
                   for g in spec.instance_groups)
    return dataclasses.replace(spec, instance_groups=groups,
                               optimization=dataclasses.replace(spec.optimization, tensorrt=None))


class _Fp32Exports:
    """FP32 exports that INT8 quantizes and optimizations are compared with: made once per model and format
    in a build, in the staging area's scratch space."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple[int, str, int, bool], Artifact] = {}

    def get(self, loaded: LoadedModel, fmt: str, opset: int, script: bool) -> Artifact:
        key = (id(loaded), fmt, opset, script)
        if key not in self.done:
            self.done[key] = export(loaded, fmt, self.root / str(len(self.done)), opset=opset, script=script)
        return self.done[key]


def _artifact(req: ModelRequest, fmt: str, loaded: LoadedModel, vdir: Path, fp32_exports: _Fp32Exports,
              log: Callable[[str], None]) -> Artifact:
    """Export ``fmt``; for an INT8 format, export FP32 and quantize it."""
    opts = req.options(fmt)
    if fmt not in INT8_FORMATS:
        return export(loaded, fmt, vdir, opset=opts.opset, script=req.script)
    q = opts.quantization or Quantization()
    if loaded.module is None or loaded.kind != "callable":
        raise SpecError("formats", fmt, "INT8 formats from a model callable (not from a .pt/.onnx file)")
    if fmt == "torchscript-int8":
        quantized = quantize_torch_module(loaded.module, q)
        vdir.mkdir(parents=True, exist_ok=True)
        artifact = export_torchscript(dataclasses.replace(loaded, module=quantized), vdir, req.script)
        kinds = "/".join(q.modules)
        artifact.details["quantization"] = f"torch.ao dynamic INT8 ({kinds}), {artifact.method}"
        artifact.method = f"int8 dynamic + {artifact.method}"
        log(f"[{req.model_name(fmt)}] quantized TorchScript runs on CPU only: instance group KIND_CPU")
        return artifact
    fp32 = fp32_exports.get(loaded, "onnx", opts.opset, req.script)
    batches: list[dict[str, np.ndarray]] = []
    if q.method == "static":
        source = (load_samples(q.calibration_data) if q.calibration_data else
                  loaded.calibration() if loaded.calibration else None)
        if source is None:
            log(f"[{req.model_name(fmt)}] warning: no calibration data given: calibrating on synthesized inputs")
            source = (loaded.samples.batch(max(req.max_batch_size, 1), seed=500 + i) for i in range(64))
        batches = calibration_batches(source, fp32.input_names, q.calibration_samples, log, req.model_name(fmt))
    vdir.mkdir(parents=True, exist_ok=True)
    path = vdir / "model.onnx"
    try:
        what = quantize_onnx(fp32.path, path, q, batches)
        runner = OnnxRunner(path, fp32.input_names)
    except Exception as exc:
        raise ExportError(f"{fmt} quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return Artifact("onnx", path, f"int8 {q.method}", fp32.input_names, fp32.output_names, runner, fp32.warnings,
                    {**fp32.details, "quantization": what})


def _evaluation_set(req: ModelRequest, loaded: LoadedModel) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """The labeled set the accuracy gate uses; without one, samples of the model's inputs (no labels)."""
    raw: tuple[Mapping[str, Any], Any]
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
        batches = [loaded.samples.batch(max(req.max_batch_size, 1), seed=900 + i) for i in range(8)]
        raw = ({k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, None)
        where = "synthesized inputs (no labels: agreement is the gate)"
    inputs = {i.name: np.asarray(raw[0][i.name]) for i in loaded.inputs}
    labels = None if raw[1] is None else np.asarray(raw[1])
    return inputs, labels, where


def _judge(req: ModelRequest, fmt: str, loaded: LoadedModel, parent: LoadedModel, artifact: Artifact,
           sparsity: float | None, fp32_exports: _Fp32Exports, log: Callable[[str], None]) -> OptimizationReport:
    """Accuracy gate and speed/size report of an INT8 or pruned artifact against the FP32 model."""
    name, opts = req.model_name(fmt), req.options(fmt)
    base = INT8_FORMATS.get(fmt, fmt)
    fp32 = fp32_exports.get(parent, base, opts.opset, req.script)
    inputs, labels, where = _evaluation_set(req, loaded)
    chunk = max(req.max_batch_size, 1)
    technique = artifact.details.get("quantization") or ""
    if sparsity is not None:
        technique = ", ".join(filter(None, [f"L1-pruned {req.prune:.0%} (sparsity {sparsity:.1%})", technique]))
    q = opts.quantization or Quantization()
    hint = (f"prune less than {req.prune:g}, or " if req.prune else "") + {
        "onnx-int8": "calibrate on representative data, try entropy/percentile, or exclude sensitive nodes, or "
        if q.method == "static" else "try quantization.method = static with representative data, or ",
        "torchscript-int8": "quantize fewer module types (quantization.modules), or ",
    }.get(fmt, "") + f"raise [models.{req.name}.{fmt}] accuracy_budget"
    metrics = accuracy_gate(name, run_in_chunks(parent.reference, inputs, chunk),
                            run_in_chunks(artifact.runner, inputs, chunk), labels, opts.accuracy_budget, hint)
    latency, speedup = {}, {}
    for size in sorted({1, req.max_batch_size} - {0}):
        batch = loaded.samples.batch(size, seed=77)
        fp32_ms, optimized_ms = compare_latency(fp32.runner, artifact.runner, batch)
        times = {"fp32": fp32_ms, "optimized": optimized_ms}
        latency[str(size)] = times
        speedup[str(size)] = times["fp32"] / times["optimized"]
    sizes, ratio, zipped = file_sizes(fp32.path, artifact.path)
    warnings = [f"slower than FP32 at batch {b} ({x:.2f}× its speed): check before deploying (onnxruntime#6732)"
                for b, x in speedup.items() if x < 1 and fmt in INT8_FORMATS]
    if sparsity is not None:
        warnings.append("unstructured sparsity does not make dense kernels faster: it buys compressed size "
                        f"({zipped:.2f}× with gzip) at the measured accuracy")
    for warning in warnings:
        log(f"[{name}] warning: {warning}")
    return OptimizationReport(name, technique, f"FP32 {base} (unpruned)" if req.prune else f"FP32 {base}",
                              evaluated_on=where, latency_ms=latency, speedup=speedup, size_bytes=sizes,
                              size_ratio=ratio, gzip_size_ratio=zipped, sparsity=sparsity, warnings=warnings,
                              **metrics)  # type: ignore[arg-type]


def _stage(req: ModelRequest, fmt: str, loaded: LoadedModel, parent: LoadedModel, sparsity: float | None,
           version: int, stage: Path, template_dir: Path | None, fp32_exports: _Fp32Exports,
           log: Callable[[str], None]) -> tuple[StagedModel, VerificationReport, OptimizationReport | None]:
    name = req.model_name(fmt)
    root = stage / name
    vdir = root / str(version)
    opts = req.options(fmt)
    log(f"[{name}] exporting {fmt}")
    artifact = _artifact(req, fmt, loaded, vdir, fp32_exports, log)
    log(f"[{name}] verifying against the {loaded.kind} reference")
    tolerance = opts.tolerance or DEFAULT_TOLERANCES[INT8_FORMATS.get(fmt, fmt)]
    report = verify(name, loaded, artifact, tolerance, req.max_batch_size, gate=fmt not in INT8_FORMATS)
    if artifact.warnings:
        log(f"[{name}] warning: tracing reported {len(artifact.warnings)} TracerWarning(s), e.g. "
            f"{artifact.warnings[0]}; outputs matched, but if forward() branches on data use --script")
    optimization = None
    if fmt in INT8_FORMATS or sparsity is not None:
        log(f"[{name}] accuracy gate and speed against FP32")
        optimization = _judge(req, fmt, loaded, parent, artifact, sparsity, fp32_exports, log)
        optimization.batch_invariance_max_abs = report.batch_invariance_max_abs
    labels = _labels(req, loaded)
    model_files = ["config.pbtxt"]
    if labels:
        (root / LABELS_FILE).write_text("\n".join(labels) + "\n")
        model_files.append(LABELS_FILE)
    warmup = _warmup(req, loaded, artifact, root)
    model_files += sorted({f"warmup/{w.input_data_file}" for entry in warmup for w in entry.inputs})
    spec = _config(req, fmt, loaded, artifact, warmup, labels)
    if spec.model_filename != artifact.path.name:
        artifact.path = artifact.path.rename(vdir / spec.model_filename)
    (root / "config.pbtxt").write_text(render_config(spec, template_dir))
    cpu = cpu_variant(spec)
    if cpu is not None:
        (root / "configs").mkdir()
        (root / "configs" / CPU_VARIANT).write_text(render_config(cpu, template_dir))
        model_files.append(f"configs/{CPU_VARIANT}")
    entry = {
        "artifact": {"file": f"{version}/{artifact.path.name}", "sha256": sha256(artifact.path),
                     "bytes": artifact.path.stat().st_size},
        "format": fmt,
        "source": loaded.description,
        "export": {"method": artifact.method, **artifact.details, "config_inputs": artifact.input_names,
                   "config_outputs": dict(zip(artifact.output_names, (o.name for o in loaded.outputs))),
                   "tracer_warnings": artifact.warnings},
        "verification": report.as_dict(),
        "optimization": optimization.recorded() if optimization else None,
        "request": _jsonable(req),
        "environment": environment(),
    }
    equivalent = torchscript_equivalent if INT8_FORMATS.get(fmt, fmt) == "torchscript" else None
    return StagedModel(name, root, version, entry, model_files, equivalent), report, optimization


def _check_staged(stage: Path, staged: list[StagedModel], repo: Path) -> None:
    """The generator never writes what ``tritonize check`` would flag, checked with the versions the model
    will have once committed (the repository's other versions are linked in, read-only)."""
    from .check import check_repository

    names = {model.name for model in staged}
    for model in staged:
        for version in existing_versions(repo / model.name):
            if version != model.version:
                (model.root / str(version)).symlink_to((repo / model.name / str(version)).resolve())

    errors = [f for f in check_repository(stage) if f.severity == "error" and f.model in names]
    if errors:
        raise ExportError(f"generated model {errors[0].model} fails `tritonize check`: "
                          f"[{errors[0].code}] {errors[0].message}")


def build(requests: Sequence[ModelRequest], repo: Path, *, overwrite: bool = False,
          template_dir: Path | None = None, log: Callable[[str], None] = lambda _: None) -> list[BuiltModel]:
    """Build every request into ``repo``; on any error nothing is written."""
    repo = Path(repo)
    names = [r.model_name(f) for r in requests for f in r.formats]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError("models", duplicates[0], "unique model names (<name>_<format>)")
    if template_dir is not None and not Path(template_dir).is_dir():
        raise SpecError("template_dir", str(template_dir), "an existing directory of Jinja2 templates")
    if repo.exists() and not repo.is_dir():
        raise SpecError("repo", str(repo), "a directory (or a path to create)")
    staged: list[tuple[StagedModel, VerificationReport, OptimizationReport | None]] = []
    references: dict[str, Runner] = {}
    loads: dict[str, LoadedModel] = {}  # requests that differ only in formats/options share one load
    with staging_area(repo) as stage:
        fp32_exports = _Fp32Exports(stage / ".work")
        for req in requests:
            key = json.dumps([req.source, req.kwargs, req.max_batch_size, req.inputs, req.output_names,
                              req.example_inputs], default=str, sort_keys=True)
            if key not in loads:
                log(f"[{req.name}] loading {req.source}")
                loads[key] = load_source(
                    req.source, max_batch_size=req.max_batch_size, declared_inputs={d.name: d for d in req.inputs},
                    output_names=list(req.output_names) if req.output_names else None, kwargs=req.kwargs,
                    example_file=req.example_inputs,
                )
            loaded = loads[key]
            parent, sparsity = loaded, None  # the FP32 model optimizations are judged against
            if req.prune:
                loaded, sparsity = _pruned(loaded, req.prune)
                log(f"[{req.name}] pruned {req.prune:.0%} of Linear/Conv weights (sparsity {sparsity:.1%})")
            for fmt in req.formats:
                references[req.model_name(fmt)] = loaded.reference
                versions = existing_versions(repo / req.model_name(fmt))
                version = req.version or (versions[-1] + 1 if versions else 1)
                staged.append(_stage(req, fmt, loaded, parent, sparsity, version, stage, template_dir,
                                     fp32_exports, log))
        shutil.rmtree(stage / ".work", ignore_errors=True)
        _check_staged(stage, [model for model, _, _ in staged], repo)
        actions = [plan(repo, model, overwrite) for model, _, _ in staged]
        for (model, _, _), action in zip(staged, actions):
            commit(repo, model, action)
            log(f"[{model.name}] version {model.version}: {action} in {repo / model.name}")
    return [BuiltModel(m.name, m.manifest_entry["format"], m.version, a, m.manifest_entry["artifact"]["sha256"], r,
                       references[m.name], o) for (m, r, o), a in zip(staged, actions)]


def _pruned(loaded: LoadedModel, amount: float) -> tuple[LoadedModel, float]:
    if loaded.module is None or loaded.kind != "callable":
        raise SpecError("prune", amount, "a model callable (not a .pt/.onnx file) to prune")
    module, sparsity = prune_module(loaded.module, amount)
    reference = TorchRunner(module, [i.name for i in loaded.inputs], loaded.output_keys)
    return dataclasses.replace(loaded, module=module, reference=reference), sparsity


def optimization_table(results: Sequence[BuiltModel]) -> str:
    """INT8 / pruned artifacts against FP32: accuracy, agreement, speed, size."""
    header = ("model", "technique", "acc FP32", "acc", "drop", "agree", "speedup b1", "speedup bmax", "size")
    rows = [header]
    for r in results:
        o = r.optimization
        if o is None:
            continue
        speed = [f"{o.speedup[k]:.2f}x" for k in sorted(o.speedup, key=int)]
        rows.append((r.name, o.technique, "n/a" if o.accuracy_fp32 is None else f"{o.accuracy_fp32:.2%}",
                     "n/a" if o.accuracy is None else f"{o.accuracy:.2%}",
                     "n/a" if o.accuracy_drop_points is None else f"{o.accuracy_drop_points:+.2f} pt",
                     f"{o.agreement:.1%}", speed[0], speed[-1], f"{o.size_ratio:.2f}x (gzip {o.gzip_size_ratio:.2f}x)"))
    if len(rows) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def report_table(results: Sequence[BuiltModel]) -> str:
    """One row per artifact output: the parity metrics and the gates."""
    header = ("model", "v", "output", "max abs", "max rel", "cosine", "argmax", "determ.", "batch-inv", "action")
    rows = [header]
    for r in results:
        inv = "n/a" if r.report.batch_invariance_max_abs is None else f"{r.report.batch_invariance_max_abs:.1e}"
        for o in r.report.outputs:
            rows.append((r.name, str(r.version), o.output, f"{o.max_abs:.1e}", f"{o.max_rel:.1e}",
                         f"{o.cosine:.6f}", "n/a" if o.argmax_agreement is None else f"{o.argmax_agreement:.3f}",
                         "yes" if r.report.deterministic else "NO", inv, r.action))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
