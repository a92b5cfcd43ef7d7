"""Build models into a Triton repository: load → export → verify → render → stage → check → commit.

``ModelRequest`` is the one description of a model to build; the CLI's ``export`` and the TOML spec's
``build`` both produce it. Everything is staged and checked before the first byte reaches the repository.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
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
from .export import DEFAULT_OPSET, FORMATS, Artifact, export, torchscript_equivalent
from .io_spec import DeclaredTensor
from .render import render_config
from .runners import Runner
from .source import LoadedModel, load_source
from .verify import DEFAULT_TOLERANCES, Tolerance, VerificationReport, verify
from .writer import StagedModel, commit, existing_versions, plan, sha256, staging_area

BACKEND_OF = {"onnx": "onnxruntime", "torchscript": "pytorch"}
LABELS_FILE = "labels.txt"
CPU_VARIANT = "cpu.pbtxt"


@dataclass(frozen=True)
class FormatOptions:
    """Settings that apply to one format of a model."""

    tolerance: Tolerance | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    optimization: Optimization = field(default_factory=Optimization)
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", dict(self.parameters))
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

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        object.__setattr__(self, "formats", tuple(self.formats))
        if not self.formats:
            raise SpecError("formats", [], "at least one of " + ", ".join(FORMATS))
        for fmt in self.formats + tuple(self.format_options):
            if fmt not in FORMATS:
                raise SpecError("formats", fmt, "one of " + ", ".join(FORMATS))
        for fmt, opts in self.format_options.items():
            try:
                check_backend_options(BACKEND_OF[fmt], opts.parameters, opts.optimization)
            except SpecError as exc:
                raise exc.within(fmt) from None
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
        return f"{self.name}_{fmt}"

    def options(self, fmt: str) -> FormatOptions:
        return self.format_options.get(fmt, FormatOptions())


@dataclass
class BuiltModel:
    name: str
    format: str
    version: int
    action: str  # new | add-version | replace-version | unchanged
    sha256: str
    report: VerificationReport
    reference: Runner | None = field(default=None, repr=False)  # the eager model, for comparisons


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
    return ModelConfigSpec(
        name=req.model_name(fmt), backend=BACKEND_OF[fmt], max_batch_size=req.max_batch_size,
        inputs=tuple(inputs), outputs=tuple(outputs), dynamic_batching=req.dynamic_batching,
        sequence_batching=req.sequence_batching, instance_groups=req.instance_groups,
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


def _stage(req: ModelRequest, fmt: str, loaded: LoadedModel, version: int, stage: Path,
           template_dir: Path | None, log: Callable[[str], None]) -> tuple[StagedModel, VerificationReport]:
    name = req.model_name(fmt)
    root = stage / name
    vdir = root / str(version)
    opts = req.options(fmt)
    log(f"[{name}] exporting {fmt}")
    artifact = export(loaded, fmt, vdir, opset=opts.opset, script=req.script)
    log(f"[{name}] verifying against the {loaded.kind} reference")
    report = verify(name, loaded, artifact, opts.tolerance or DEFAULT_TOLERANCES[fmt], req.max_batch_size)
    if artifact.warnings:
        log(f"[{name}] warning: tracing reported {len(artifact.warnings)} TracerWarning(s), e.g. "
            f"{artifact.warnings[0]}; outputs matched, but if forward() branches on data use --script")
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
        "request": _jsonable(req),
        "environment": environment(),
    }
    equivalent = torchscript_equivalent if fmt == "torchscript" else None
    return StagedModel(name, root, version, entry, model_files, equivalent), report


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
    staged: list[tuple[StagedModel, VerificationReport]] = []
    references: dict[str, Runner] = {}
    with staging_area(repo) as stage:
        for req in requests:
            log(f"[{req.name}] loading {req.source}")
            loaded = load_source(
                req.source, max_batch_size=req.max_batch_size, declared_inputs={d.name: d for d in req.inputs},
                output_names=list(req.output_names) if req.output_names else None, kwargs=req.kwargs,
                example_file=req.example_inputs,
            )
            for fmt in req.formats:
                references[req.model_name(fmt)] = loaded.reference
                versions = existing_versions(repo / req.model_name(fmt))
                version = req.version or (versions[-1] + 1 if versions else 1)
                staged.append(_stage(req, fmt, loaded, version, stage, template_dir, log))
        _check_staged(stage, [model for model, _ in staged], repo)
        actions = [plan(repo, model, overwrite) for model, _ in staged]
        for (model, _), action in zip(staged, actions):
            commit(repo, model, action)
            log(f"[{model.name}] version {model.version}: {action} in {repo / model.name}")
    return [BuiltModel(m.name, m.manifest_entry["format"], m.version, a, m.manifest_entry["artifact"]["sha256"], r,
                       references[m.name]) for (m, r), a in zip(staged, actions)]


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
