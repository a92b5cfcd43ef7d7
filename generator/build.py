"""Build models into a Triton repository: load → export → verify → (judge) → render → stage → check → commit.

The formats come from the registry (``tritonize.core.formats``): their exporters, backends and tolerances.
Everything is staged, checked and planned before the first byte reaches the repository. A format that fails
(export, verification, accuracy gate, check) does not stop the others: the formats that passed are committed and
the failures reported (``build``; ``all_or_nothing`` writes nothing then); a usage error or a conflict with the
repository stops the build before anything is written. The commits are atomic per model, not per build: a
failure (or a kill) between two models' commits leaves the earlier models committed and the later ones as they
were (the failure's log line names both). A kill between a version's rename and its manifest write is repaired
by the next build of that version (``repair-manifest``). Where staging happens and what stale staging is
removed: ``writer``'s docstring.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.core import formats
from tritonize.core.check import check_repository
from tritonize.core.distribution import KEY as DISTRIBUTION_KEY
from tritonize.core.log import logger, progress

from . import ensemble
from .config_spec import TENSOR_NAME_RE, InstanceGroup, ModelConfigSpec, Warmup, WarmupInput
from .distribution import reference_distribution
from .errors import ExportError, SpecError, TritonizeError, UsageError
from .exporters import Artifact, ExportJob, equivalent, export
from .judge import judge
from .manifest import manifest_entry
from .optimize import OptimizationReport, prune_module
from .preprocess import Preprocess
from .preprocess.pooling import pooled
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
    """One model (format) of a build: committed, or ``failed`` / ``skipped`` (its FP32 base failed) with the
    ``error`` that stopped it (then ``sha256`` is "" and there may be no ``report``)."""

    name: str
    format: str
    version: int
    action: str  # new | add-version | replace-version | repair-manifest | unchanged | failed | skipped
    sha256: str
    report: VerificationReport | None
    reference: Runner | None = field(default=None, repr=False)  # the eager model, for comparisons
    optimization: OptimizationReport | None = None  # INT8 / pruned artifacts: accuracy, speed, size
    error: TritonizeError | None = None  # why a failed or skipped format was not built
    # preprocessing steps and ensembles (format "python" / "ensemble"): the step's proof, the ensemble's steps
    pipeline: dict[str, Any] | None = None


def raise_failures(results: Sequence[BuiltModel]) -> None:
    """Raise the first failure of a build (its class gives the CLI's exit code); every failure was logged."""
    errors = [r.error for r in results if r.action == "failed"] + [r.error for r in results]
    error = next((e for e in errors if e is not None), None)
    if error is not None:
        raise error


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
    parameters = {**opts.parameters, **_own_names(loaded, artifact)}
    groups = req.instance_group
    if fmt.cpu_only:
        groups = tuple(dataclasses.replace(g, kind="KIND_CPU", gpus=()) for g in groups) or (InstanceGroup("cpu"),)
    return ModelConfigSpec(
        name=req.model_name(fmt.name), backend=fmt.backend.name, max_batch_size=req.max_batch_size,
        inputs=tuple(inputs), outputs=tuple(outputs), dynamic_batching=req.dynamic_batching,
        sequence_batching=req.sequence_batching, instance_group=groups,
        version_policy=req.version_policy, warmup=warmup, response_cache=req.response_cache,
        optimization=opts.optimization, parameters=parameters,
        default_model_filename=req.default_model_filename,
    )


def _own_names(loaded: LoadedModel, artifact: Artifact) -> dict[str, str]:
    """The model's own tensor names, as tritonize's config parameters, where the config must use others (the
    pytorch backend's OUTPUT__i; INPUT__i where a TorchScript file lost forward()'s argument names): the typed
    client returns and takes the same names for every format of a model."""
    own = {"input": [t.name for t in loaded.inputs], "output": [t.name for t in loaded.outputs]}
    used = {"input": artifact.input_names, "output": artifact.output_names}
    return {formats.TENSOR_NAMES[kind]: ",".join(names) for kind, names in own.items()
            if names != list(used[kind]) and all(TENSOR_NAME_RE.fullmatch(n) for n in names)}


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

    def offer(self, req: ModelRequest, loaded: LoadedModel, fmt: str, artifact: Artifact) -> None:
        """Keep a format's own export (a copy of its file) as the FP32 parent of the formats made from it: it is
        what ``get`` would export again (same model, opset, exporter, script and target)."""
        key = (id(loaded), fmt, req.options(fmt).opset, req.options(fmt).exporter, req.script, req.triton_version)
        if key not in self.done and any(formats.FORMATS[f].base == fmt for f in req.formats):
            directory = self.root / str(len(self.done))
            directory.mkdir(parents=True)
            self.done[key] = dataclasses.replace(artifact, path=Path(shutil.copy(artifact.path, directory)))


def _stage(req: ModelRequest, fmt: formats.Format, loaded: LoadedModel, parent: LoadedModel,
           sparsity: float | None, version: int, stage: Path, template_dir: Path | None,
           fp32_exports: _Fp32Exports, artifacts: dict[str, Artifact]
           ) -> tuple[StagedModel, VerificationReport, OptimizationReport | None]:
    """Stage one format; its artifact goes into ``artifacts`` (the ensemble in front of it runs it)."""
    name = req.model_name(fmt.name)
    root = stage / name
    vdir = root / str(version)
    _log.info(f"[{name}] exporting {fmt.name}")
    artifact = export(ExportJob(loaded, req, fmt, vdir, lambda base: fp32_exports.get(req, loaded, base, fmt.name)))
    fp32_exports.offer(req, loaded, fmt.name, artifact)
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
    entry = manifest_entry(req, fmt.name, version, loaded, artifact, report, optimization,
                           reference_distribution(req, loaded))
    artifacts[name] = artifact
    return StagedModel(name, root, version, entry, model_files, equivalent(fmt.name)), report, optimization


def _check_staged(stage: Path, staged: list[StagedModel], repo: Path,
                  targets: dict[str, str]) -> dict[str, ExportError]:
    """The generator never writes what ``tritonize check`` would flag for the model's target release
    (``targets``: model name -> triton_version), checked with the versions the model will have once committed
    (the repository's other versions are linked in, read-only). Returns the models that fail, with why."""
    names = {model.name for model in staged}
    for model in staged:
        for version in existing_versions(repo / model.name):
            if version != model.version:
                (model.root / str(version)).symlink_to((repo / model.name / str(version)).resolve())
    failed: dict[str, ExportError] = {}
    for release in sorted(set(targets.values())):
        for f in check_repository(stage, release):
            if f.severity == "error" and f.model in names and targets[f.model] == release and f.model not in failed:
                failed[f.model] = ExportError(f"generated model {f.model} fails `tritonize check`: [{f.code}] "
                                              f"{f.message}")
    return failed


def _check_requests(requests: Sequence[ModelRequest], repo: Path, template_dir: Path | None) -> None:
    names = [r.model_name(f) for r in requests for f in r.formats]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError("models", duplicates[0], "unique model names (<name>_<format>)")
    if template_dir is not None and not Path(template_dir).is_dir():
        raise SpecError("template_dir", str(template_dir), "an existing directory of Jinja2 templates")
    if repo.exists() and not repo.is_dir():
        raise SpecError("repo", str(repo), "a directory (or a path to create)")


def _version(req: ModelRequest, model_dir: Path, overwrite: bool) -> int:
    """The request's version; else the next one, or with ``overwrite`` the latest one (replaced)."""
    versions = existing_versions(model_dir)
    if req.version or not versions:
        return req.version or 1
    return versions[-1] if overwrite else versions[-1] + 1


def _load(req: ModelRequest, loads: dict[str, LoadedModel | TritonizeError]) -> LoadedModel | TritonizeError:
    """The request's model, loaded once per build for requests that differ only in formats/options; a load
    that fails (the user's code raised) fails every format of the request, a usage error stops the build."""
    key = json.dumps([req.source, req.kwargs, req.max_batch_size, req.inputs, req.outputs, req.example_inputs],
                     default=str, sort_keys=True)
    if key not in loads:
        _log.info(f"[{req.name}] loading {req.source}")
        try:
            loads[key] = load_source(
                req.source, max_batch_size=req.max_batch_size, declared_inputs={d.name: d for d in req.inputs},
                output_names=list(req.outputs) if req.outputs else None, kwargs=req.kwargs,
                example_file=req.example_inputs,
            )
        except UsageError:
            raise
        except TritonizeError as exc:
            loads[key] = exc
    return loads[key]


def _failure(name: str, fmt: str, version: int, action: str, error: TritonizeError) -> BuiltModel:
    return BuiltModel(name, fmt, version, action, "", None, error=error)


def build(requests: Sequence[ModelRequest], repo: Path, *, overwrite: bool = False,
          template_dir: Path | None = None, follow_symlinks: bool = False, all_or_nothing: bool = False,
          raise_on_failure: bool = True) -> list[BuiltModel]:
    """Build every request into ``repo``: one result per model (format), in the requests' order.

    A format whose export, verification, accuracy gate or check fails (any tritonize error but a usage error)
    is recorded and the others go on; an optimized format whose FP32 base failed is skipped. What passed is
    committed (with ``all_or_nothing``, nothing is when anything failed), every failure is logged on one line,
    then the first is raised -- or, without ``raise_on_failure``, returned among the results (action
    'failed' / 'skipped', or 'discarded' for what ``all_or_nothing`` did not write). A usage error (the
    spec) and a conflict with the repository (``writer.plan``) stop the build before anything is written.
    Each model is committed atomically (a build is atomic per model only: see the module's docstring).
    ``overwrite`` without a request's ``version`` replaces the latest version. A model or version directory
    that is a symlink out of ``repo`` is refused unless ``follow_symlinks``."""
    repo = Path(repo)
    _check_requests(requests, repo, template_dir)
    staged: dict[str, tuple[StagedModel, VerificationReport | None, OptimizationReport | None]] = {}
    failed: dict[str, BuiltModel] = {}
    references: dict[str, Runner] = {}
    loads: dict[str, LoadedModel | TritonizeError] = {}
    names = [r.model_name(f) for r in requests for f in r.formats]
    targets = {r.model_name(f): r.triton_version for r in requests for f in r.formats}
    artifacts: dict[str, Artifact] = {}
    with staging_area(repo, names) as stage, progress("building", total=len(names)) as bar:
        fp32_exports = _Fp32Exports(stage / ".work")
        for req in requests:
            bar.describe(f"[{req.name}] loading")
            parent = _load(req, loads)  # the FP32 model optimizations are judged against
            if isinstance(parent, TritonizeError):
                for fmt_name in req.formats:
                    name = req.model_name(fmt_name)
                    failed[name] = _failure(name, fmt_name, _version(req, repo / name, overwrite), "failed", parent)
                    bar.advance()
                continue
            steps = req.preprocess or parent.preprocess
            if steps is not None and steps.pooling is not None:  # the served model ends in the declared pooling
                parent = pooled(parent, steps.pooling)
            loaded, sparsity = parent, None
            if req.prune:
                loaded, sparsity = _pruned(loaded, req.prune)
                _log.info(f"[{req.name}] pruned {req.prune:.0%} of Linear/Conv weights (sparsity {sparsity:.1%})")
            for fmt in sorted(map(formats.get_format, req.formats), key=lambda f: f.optimized):  # bases first
                name = req.model_name(fmt.name)
                version = _version(req, repo / name, overwrite)
                bar.describe(f"[{name}] export, verify")
                base = req.model_name(fmt.base) if fmt.base else ""
                if base in failed:
                    failed[name] = _failure(name, fmt.name, version, "skipped",
                                            ExportError(f"its FP32 base {base} failed"))
                else:
                    try:
                        staged[name] = _stage(req, fmt, loaded, parent, sparsity, version, stage, template_dir,
                                              fp32_exports, artifacts)
                        references[name] = loaded.reference
                    except UsageError:
                        raise
                    except TritonizeError as exc:
                        failed[name] = _failure(name, fmt.name, version, "failed", exc)
                        shutil.rmtree(stage / name, ignore_errors=True)
                bar.advance()
            if steps is not None:
                added = ensemble.model_names(req)
                at = names.index(req.model_name(req.formats[-1])) + 1
                names[at:at] = added  # after the request's formats
                targets.update(dict.fromkeys(added, req.triton_version))
                _stage_pipeline(req, loaded, steps, stage, repo, overwrite, artifacts, staged, failed, references)
        shutil.rmtree(stage / ".work", ignore_errors=True)
        unchecked = _check_staged(stage, [model for model, _, _ in staged.values()], repo, targets)
        for name, error in unchecked.items():
            model = staged.pop(name)[0]
            failed[name] = _failure(name, model.manifest_entry["format"], model.version, "failed", error)
        for name in [n for n, (m, _, _) in staged.items() if m.manifest_entry["format"] == "ensemble"]:
            missing = [step for step in staged[name][0].manifest_entry["steps"] if step in failed]
            if missing:  # a step that failed `check`
                model = staged.pop(name)[0]
                failed[name] = _failure(name, "ensemble", model.version, "skipped",
                                        ExportError(f"its step {missing[0]} failed"))
        keep = {} if failed and all_or_nothing else staged
        actions = {name: plan(repo, model, overwrite, follow_symlinks=follow_symlinks)
                   for name, (model, _, _) in keep.items()}
        _commit(repo, [keep[name][0] for name in names if name in keep], actions)
    results = {name: BuiltModel(m.name, m.manifest_entry["format"], m.version, actions.get(name, "discarded"),
                                m.manifest_entry["artifact"]["sha256"], r, references.get(name), o,
                                pipeline={k: m.manifest_entry[k] for k in ("proof", "steps") if k in m.manifest_entry}
                                or None)
               for name, (m, r, o) in staged.items()}
    results.update(failed)
    ordered = [results[name] for name in names]
    if failed:
        _report_failures(ordered)
        if raise_on_failure:
            raise_failures(ordered)
    return ordered


def _stage_pipeline(req: ModelRequest, loaded: LoadedModel, steps: Preprocess, stage: Path, repo: Path,
                    overwrite: bool, artifacts: dict[str, Artifact],
                    staged: dict[str, tuple[StagedModel, VerificationReport | None, OptimizationReport | None]],
                    failed: dict[str, BuiltModel], references: dict[str, Runner]) -> None:
    """``<name>_preprocess`` (proven equal to the training preprocessing) and an ensemble per format that
    passed; each format's artifact must compute the eager model's outputs on the step's outputs."""
    name = ensemble.preprocess_name(req)
    version = _version(req, repo / name, overwrite)
    try:
        pipeline = ensemble.resolve(loaded, steps)
        model, served = ensemble.stage_preprocess(req, loaded, pipeline, version, stage)
        staged[name] = (model, None, None)
    except UsageError:
        raise
    except TritonizeError as exc:
        failed[name] = _failure(name, "python", version, "failed", exc)
        shutil.rmtree(stage / name, ignore_errors=True)
    for fmt in req.formats:
        target = ensemble.ensemble_name(req, fmt)
        version = _version(req, repo / target, overwrite)
        blocked = next((n for n in (name, req.model_name(fmt)) if n in failed), None)
        if blocked:
            failed[target] = _failure(target, "ensemble", version, "skipped", ExportError(f"its step {blocked} failed"))
            continue
        artifact = artifacts[req.model_name(fmt)]
        try:
            ensemble.check_artifact(pipeline, served, loaded, artifact, req.tolerance(fmt), target,
                                    gate=not formats.FORMATS[fmt].optimized)
            model = ensemble.stage_ensemble(req, fmt, loaded, pipeline, artifact, _labels(req, loaded), version,
                                            stage)
            model.manifest_entry[DISTRIBUTION_KEY] = reference_distribution(req, loaded)  # the model's outputs
            staged[target] = (model, None, None)
            references[target] = ensemble.eager_runner(pipeline, loaded)
        except TritonizeError as exc:
            failed[target] = _failure(target, "ensemble", version, "failed", exc)
            shutil.rmtree(stage / target, ignore_errors=True)


def _commit(repo: Path, staged: list[StagedModel], actions: dict[str, str]) -> None:
    done: list[str] = []
    for i, model in enumerate(staged):
        action = actions[model.name]
        try:
            commit(repo, model, action)
        except BaseException:
            if done:
                rest = [m.name for m in staged[i:]]
                _log.warning(f"commit of {model.name} failed; already committed: {', '.join(done)}; not "
                             f"committed: {', '.join(rest)} (a build is atomic per model only)")
            raise
        done.append(f"{model.name} v{model.version}")
        if action == "replace-version":
            _log.info(f"[{model.name}] replaced version {model.version} in {repo / model.name}")
        else:
            _log.info(f"[{model.name}] version {model.version}: {action} in {repo / model.name}")


def _report_failures(results: list[BuiltModel]) -> None:
    """One line per format not built (one per model whose load failed), tagged like the build's other lines."""
    logged: set[int] = set()
    for r in results:
        if r.action == "discarded":
            _log.error(f"[{r.name}] {r.format} not written: another format failed (all or nothing)")
        elif r.error is not None and id(r.error) not in logged:
            same = [x.format for x in results if x.error is r.error]
            if len(same) > 1:  # the model's load failed
                suffix = "_" + r.format.replace("-", "_")  # ModelRequest.model_name
                model = r.name[: -len(suffix)] if r.name.endswith(suffix) else r.name
                _log.error(f"[{model}] {', '.join(same)} failed: {r.error}")
            else:
                _log.error(f"[{r.name}] {r.format} {r.action}: {r.error}")
            logged.add(id(r.error))


def _pruned(loaded: LoadedModel, amount: float) -> tuple[LoadedModel, float]:
    if loaded.module is None or loaded.kind != "callable":
        raise SpecError("prune", amount, "a model callable (not a .pt/.onnx file) to prune")
    module, sparsity = prune_module(loaded.module, amount)
    reference = TorchRunner(module, [i.name for i in loaded.inputs], loaded.output_keys)
    return dataclasses.replace(loaded, module=module, reference=reference), sparsity
