"""Build models into a Triton repository: load → export → verify → (judge) → render → stage → check → commit.

The formats come from the registry (``tritonize.core.formats``): their exporters, backends and tolerances.
Everything is staged, checked and planned before the first byte reaches the repository; on any error until then
nothing is written. The commits are atomic per model, not per build: a failure (or a kill) between two models'
commits leaves the earlier models committed and the later ones as they were (the failure's log line names
both). A kill between a version's rename and its manifest write is repaired by the next build of that version
(``repair-manifest``). Where staging happens and what stale staging is removed: ``writer``'s docstring.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tritonize.core import formats
from tritonize.core.check import check_repository
from tritonize.core.log import logger, progress

from .config_spec import InstanceGroup, ModelConfigSpec, Warmup, WarmupInput
from .errors import ExportError, SpecError
from .exporters import Artifact, ExportJob, equivalent, export
from .judge import judge
from .manifest import manifest_entry
from .optimize import OptimizationReport, prune_module
from .render import render_config
from .request import ModelRequest
from .runners import Runner, TorchRunner
from .source import LoadedModel, load_source
from .verify import VerificationReport, verify
from .writer import StagedModel, commit, existing_versions, plan, staging_area

LABELS_FILE = "labels.txt"
CPU_VARIANT = "cpu.pbtxt"
_log = logger(__name__)


@dataclass
class BuiltModel:
    name: str
    format: str
    version: int
    action: str  # new | add-version | replace-version | repair-manifest | unchanged
    sha256: str
    report: VerificationReport
    reference: Runner | None = field(default=None, repr=False)  # the eager model, for comparisons
    optimization: OptimizationReport | None = None  # INT8 / pruned artifacts: accuracy, speed, size


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


def _config(req: ModelRequest, fmt: formats.Format, loaded: LoadedModel, artifact: Artifact,
            warmup: tuple[Warmup, ...], labels: list[str] | None) -> ModelConfigSpec:
    opts = req.options(fmt.name)
    inputs = [t.config(name) for t, name in zip(loaded.inputs, artifact.input_names)]
    outputs = [t.config(name, LABELS_FILE if labels and i == 0 else None)
               for i, (t, name) in enumerate(zip(loaded.outputs, artifact.output_names))]
    groups = req.instance_group
    if fmt.cpu_only:
        groups = tuple(dataclasses.replace(g, kind="KIND_CPU", gpus=()) for g in groups) or (InstanceGroup("cpu"),)
    return ModelConfigSpec(
        name=req.model_name(fmt.name), backend=fmt.backend.name, max_batch_size=req.max_batch_size,
        inputs=tuple(inputs), outputs=tuple(outputs), dynamic_batching=req.dynamic_batching,
        sequence_batching=req.sequence_batching, instance_group=groups,
        version_policy=req.version_policy, warmup=warmup, response_cache=req.response_cache,
        optimization=opts.optimization, parameters=opts.parameters,
        default_model_filename=req.default_model_filename,
    )


def cpu_variant(spec: ModelConfigSpec) -> ModelConfigSpec | None:
    """The same model on CPU instances, for machines without a GPU (``--model-config-name=cpu``); None when
    the spec has no KIND_GPU group. GPU-only accelerators (TensorRT) are dropped; everything else is kept."""
    if not any(g.kind == "KIND_GPU" for g in spec.instance_group):
        return None
    groups = tuple(dataclasses.replace(g, kind="KIND_CPU", gpus=()) if g.kind == "KIND_GPU" else g
                   for g in spec.instance_group)
    return dataclasses.replace(spec, instance_group=groups,
                               optimization=dataclasses.replace(spec.optimization, tensorrt=None))


class _Fp32Exports:
    """FP32 exports that optimized formats are made from and compared with: made once per model and format
    in a build, in the staging area's scratch space."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple[int, str, int, str, bool, str], Artifact] = {}

    def get(self, req: ModelRequest, loaded: LoadedModel, fmt: str, like: str) -> Artifact:
        """The FP32 ``fmt`` export with the opset and exporter of format ``like`` (the optimized one)."""
        opset, exporter = req.options(like).opset, req.options(like).exporter
        key = (id(loaded), fmt, opset, exporter, req.script, req.triton_version)
        if key not in self.done:
            own = dataclasses.replace(req.options(fmt), opset=opset, exporter=exporter)
            options = {**req.format_options, fmt: own}
            job = ExportJob(loaded, dataclasses.replace(req, format_options=options), formats.FORMATS[fmt],
                            self.root / str(len(self.done)), lambda base: self.get(req, loaded, base, like))
            self.done[key] = export(job)
        return self.done[key]


def _stage(req: ModelRequest, fmt: formats.Format, loaded: LoadedModel, parent: LoadedModel,
           sparsity: float | None, version: int, stage: Path, template_dir: Path | None,
           fp32_exports: _Fp32Exports) -> tuple[StagedModel, VerificationReport, OptimizationReport | None]:
    name = req.model_name(fmt.name)
    root = stage / name
    vdir = root / str(version)
    _log.info(f"[{name}] exporting {fmt.name}")
    artifact = export(ExportJob(loaded, req, fmt, vdir, lambda base: fp32_exports.get(req, loaded, base, fmt.name)))
    _log.info(f"[{name}] verifying against the {loaded.kind} reference")
    report = verify(name, loaded, artifact, req.tolerance(fmt.name), req.max_batch_size, gate=not fmt.optimized)
    if artifact.warnings:
        _log.warning(f"[{name}] tracing reported {len(artifact.warnings)} TracerWarning(s), e.g. "
                     f"{artifact.warnings[0]}; outputs matched, but if forward() branches on data use --script")
    optimization = None
    if fmt.optimized or sparsity is not None:
        _log.info(f"[{name}] accuracy gate and speed against FP32")
        optimization = judge(req, fmt.name, loaded, parent, artifact,
                             fp32_exports.get(req, parent, fmt.fp32, fmt.name), sparsity)
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
    entry = manifest_entry(req, fmt.name, version, loaded, artifact, report, optimization)
    return StagedModel(name, root, version, entry, model_files, equivalent(fmt.name)), report, optimization


def _check_staged(stage: Path, staged: list[StagedModel], repo: Path, targets: dict[str, str]) -> None:
    """The generator never writes what ``tritonize check`` would flag for the model's target release
    (``targets``: model name -> triton_version), checked with the versions the model will have once committed
    (the repository's other versions are linked in, read-only)."""
    names = {model.name for model in staged}
    for model in staged:
        for version in existing_versions(repo / model.name):
            if version != model.version:
                (model.root / str(version)).symlink_to((repo / model.name / str(version)).resolve())

    errors = [f for version in sorted(set(targets.values())) for f in check_repository(stage, version)
              if f.severity == "error" and f.model in names and targets[f.model] == version]
    if errors:
        raise ExportError(f"generated model {errors[0].model} fails `tritonize check`: "
                          f"[{errors[0].code}] {errors[0].message}")


def _check_requests(requests: Sequence[ModelRequest], repo: Path, template_dir: Path | None) -> None:
    names = [r.model_name(f) for r in requests for f in r.formats]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError("models", duplicates[0], "unique model names (<name>_<format>)")
    if template_dir is not None and not Path(template_dir).is_dir():
        raise SpecError("template_dir", str(template_dir), "an existing directory of Jinja2 templates")
    if repo.exists() and not repo.is_dir():
        raise SpecError("repo", str(repo), "a directory (or a path to create)")


def build(requests: Sequence[ModelRequest], repo: Path, *, overwrite: bool = False,
          template_dir: Path | None = None, follow_symlinks: bool = False) -> list[BuiltModel]:
    """Build every request into ``repo``; on any error before the commits nothing is written, and each model is
    committed atomically (a multi-model build is atomic per model only: see the module's docstring). A model
    or version directory that is a symlink out of ``repo`` is refused unless ``follow_symlinks``."""
    repo = Path(repo)
    _check_requests(requests, repo, template_dir)
    staged: list[tuple[StagedModel, VerificationReport, OptimizationReport | None]] = []
    references: dict[str, Runner] = {}
    loads: dict[str, LoadedModel] = {}  # requests that differ only in formats/options share one load
    names = [r.model_name(f) for r in requests for f in r.formats]
    with staging_area(repo, names) as stage, progress("building", total=sum(len(r.formats) for r in requests)) as bar:
        fp32_exports = _Fp32Exports(stage / ".work")
        for req in requests:
            key = json.dumps([req.source, req.kwargs, req.max_batch_size, req.inputs, req.outputs,
                              req.example_inputs], default=str, sort_keys=True)
            if key not in loads:
                _log.info(f"[{req.name}] loading {req.source}")
                bar.describe(f"[{req.name}] loading")
                loads[key] = load_source(
                    req.source, max_batch_size=req.max_batch_size, declared_inputs={d.name: d for d in req.inputs},
                    output_names=list(req.outputs) if req.outputs else None, kwargs=req.kwargs,
                    example_file=req.example_inputs,
                )
            loaded = loads[key]
            parent, sparsity = loaded, None  # the FP32 model optimizations are judged against
            if req.prune:
                loaded, sparsity = _pruned(loaded, req.prune)
                _log.info(f"[{req.name}] pruned {req.prune:.0%} of Linear/Conv weights (sparsity {sparsity:.1%})")
            for name in req.formats:
                fmt = formats.get_format(name)
                bar.describe(f"[{req.model_name(name)}] export, verify")
                references[req.model_name(name)] = loaded.reference
                versions = existing_versions(repo / req.model_name(name))
                version = req.version or (versions[-1] + 1 if versions else 1)
                staged.append(_stage(req, fmt, loaded, parent, sparsity, version, stage, template_dir, fp32_exports))
                bar.advance()
        shutil.rmtree(stage / ".work", ignore_errors=True)
        _check_staged(stage, [model for model, _, _ in staged], repo,
                      {r.model_name(f): r.triton_version for r in requests for f in r.formats})
        actions = [plan(repo, model, overwrite, follow_symlinks=follow_symlinks) for model, _, _ in staged]
        done: list[str] = []
        for (model, _, _), action in zip(staged, actions):
            try:
                commit(repo, model, action)
            except BaseException:
                if done:
                    rest = [m.name for m, _, _ in staged[len(done):]]
                    _log.warning(f"commit of {model.name} failed; already committed: {', '.join(done)}; not "
                                 f"committed: {', '.join(rest)} (a build is atomic per model only)")
                raise
            done.append(f"{model.name} v{model.version}")
            _log.info(f"[{model.name}] version {model.version}: {action} in {repo / model.name}")
    return [BuiltModel(m.name, m.manifest_entry["format"], m.version, a, m.manifest_entry["artifact"]["sha256"], r,
                       references[m.name], o) for (m, r, o), a in zip(staged, actions)]


def _pruned(loaded: LoadedModel, amount: float) -> tuple[LoadedModel, float]:
    if loaded.module is None or loaded.kind != "callable":
        raise SpecError("prune", amount, "a model callable (not a .pt/.onnx file) to prune")
    module, sparsity = prune_module(loaded.module, amount)
    reference = TorchRunner(module, [i.name for i in loaded.inputs], loaded.output_keys)
    return dataclasses.replace(loaded, module=module, reference=reference), sparsity
