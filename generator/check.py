"""``tritonize check REPO``: a static linter for any Triton model repository.

It reads each ``<model>/config.pbtxt`` (and the ``configs/*.pbtxt`` variants) as Triton does and reports,
without a server, what Triton would refuse at load time or silently work around. The rules follow Triton's
sources — core ``model_config_utils.cc`` (ValidateModelConfig, ValidateIOShape, NormalizeInstanceGroup),
``model_lifecycle.cc`` (VersionsToLoad), ``dynamic_batch_scheduler.cc``, onnxruntime_backend
``onnxruntime.cc`` and pytorch_backend ``libtorch.cc`` — and the issues in ``reference/triton-facts.md``.
``CODES`` documents every finding code.

ONNX graphs and TorchScript modules are opened only for the models that use them; ``onnx`` and ``torch``
are imported inside those functions, so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, NamedTuple, TypeAlias

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from tritonize.client.datatypes import BY_CONFIG, from_numpy

from .errors import SpecError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    model: str  # model directory name, "" for repository-level findings
    code: str  # stable kebab-case id, one of CODES
    message: str  # one line: the field or tensor, the value found, what was expected


class Code(NamedTuple):
    id: str
    severity: Severity
    rule: str  # what triggers it, and where Triton says so


CODES: tuple[Code, ...] = (
    # repository layout
    Code("repo-missing", "error", "the repository path does not exist, is not a directory, or is a model"),
    Code("config-missing", "error", "no config.pbtxt and no model file Triton can auto-complete from"),
    Code("config-autocomplete", "warning", "no config.pbtxt, or an onnxruntime config without inputs or "
         "outputs: loads only via backend auto-complete, never with --disable-auto-complete-config"),
    Code("config-parse", "error", "not protobuf text format (line/column given; JSON-ish: server#6571)"),
    Code("scheduling-oneof", "error", "two of dynamic_batching / sequence_batching / ensemble_scheduling "
         "(oneof scheduling_choice)"),
    Code("name-mismatch", "error", "'name' differs from the directory name: Triton skips the model"),
    # backend / platform (core AutoCompleteBackendFields, ValidateModelConfig)
    Code("backend-typo", "error", "backend is a near miss of a Triton backend name (case-sensitive)"),
    Code("backend-unknown", "warning", "backend is not one Triton ships: needs a custom backend library"),
    Code("platform-unknown", "error", "platform is not a Triton platform and no backend is given"),
    Code("backend-platform-mismatch", "error", "a built-in backend paired with another backend's platform"),
    Code("backend-missing", "error", "neither backend nor platform, and no model file to infer them from"),
    # versions (model_lifecycle.cc VersionsToLoad)
    Code("version-missing", "error", "no numeric version directory (or the version policy loads none)"),
    Code("version-dir-ignored", "warning", "a subdirectory Triton ignores as a version: not a number or a "
         "leading zero (configs/, warmup/, initial_state/ are fine)"),
    Code("version-policy-missing", "warning", "version_policy.specific names a missing version directory: "
         "Triton 2.51 loads the others and that version stays unavailable (observed on the local server)"),
    Code("model-file-missing", "error", "a loaded version lacks its model file (default_model_filename)"),
    # inputs / outputs (ValidateIOShape)
    Code("tensor-field-missing", "error", "an input/output without name or data_type"),
    Code("empty-dims", "error", "dims: [] — at least one dimension is required (server#7981)"),
    Code("bad-dim", "error", "a dims/reshape entry that is 0 or below -1"),
    Code("duplicate-tensor", "warning", "two inputs (or two outputs) share a name: Triton 2.51 loads the model "
         "(observed) but a request can carry only one tensor of that name"),
    Code("reshape-mismatch", "error", "reshape and dims hold different element counts, or an empty reshape "
         "on a non-batching model"),
    Code("label-file-missing", "error", "label_filename does not exist in the model directory"),
    # batching and instances
    Code("bad-max-batch-size", "error", "max_batch_size is negative"),
    Code("preferred-batch-size", "error", "preferred_batch_size <= 0 or > max_batch_size"),
    Code("dynamic-batching-unbatched", "warning", "dynamic_batching with max_batch_size 0: core caps "
         "batches at max(1, max_batch_size), so nothing is ever batched"),
    Code("priority-level", "error", "default_priority_level or a priority_queue_policy key outside "
         "[1, priority_levels]"),
    Code("instance-count", "warning", "instance_group count < 1: core silently uses the default count"),
    Code("instance-gpus", "error", "a negative GPU id, or gpus on a KIND_CPU / KIND_MODEL group"),
    # ONNX Runtime (onnxruntime_backend ValidateInputs / ValidateOutputs / CompareDimsSupported)
    Code("model-unreadable", "error", "the ONNX / TorchScript file cannot be loaded"),
    Code("onnx-unknown-tensor", "error", "a configured input/output that the ONNX graph does not have"),
    Code("onnx-input-missing", "error", "an ONNX graph input that the configuration does not list"),
    Code("onnx-dtype", "error", "configured data_type differs from the ONNX element type"),
    Code("batch-dim-in-dims", "error", "max_batch_size > 0 and dims already include the batch dimension "
         "(server#1545, server#6529)"),
    Code("fixed-batch-dim", "error", "max_batch_size > 0 but the model's first dimension is fixed "
         "(server#2387)"),
    Code("rank-mismatch", "error", "configured rank (plus the batch dimension) differs from the model rank"),
    Code("dim-mismatch", "error", "a fixed model dimension that the configuration does not give exactly"),
    Code("max-batch-size-autofill", "warning", "max_batch_size 0/omitted, I/O left to auto-complete and "
         "every tensor batchable: ORT sets max_batch_size 4 and dynamic batching (onnxruntime_backend "
         "PR #36, server PR #4395)"),
    Code("trt-precision-mode", "error", "TensorRT accelerator precision_mode not FP32/FP16/BF16/INT8"),
    Code("trt-int8-calibration", "error", "TensorRT INT8 with neither Q/DQ nodes nor a calibration table, "
         "or with both"),
    # PyTorch (pytorch_backend ValidateInputs / ValidateOutputs / GetNamingConvention)
    Code("torch-output-name", "error", "a TorchScript output not named <name>__<index>: mapped by position, "
         "labels can swap"),
    Code("torch-input-name", "error", "a TorchScript input that is neither a forward() argument nor "
         "<name>__<index> (or whose index is out of range)"),
    Code("torch-mixed-naming", "warning", "inputs mix forward() names and <name>__<index>: config order"),
    Code("torch-input-count", "error", "configured input count differs from forward()'s argument count"),
    # optimization and warmup
    Code("cuda-graphs-ignored", "warning", "optimization.cuda.graphs on a backend other than tensorrt"),
    Code("warmup-file-missing", "error", "model_warmup input_data_file missing from <model>/warmup/"),
    Code("warmup-batch-size", "error", "model_warmup batch_size above max_batch_size (above 1 if it is 0)"),
    Code("warmup-unknown-input", "error", "model_warmup names an input the configuration does not have"),
    Code("warmup-input-invalid", "error", "a warmup input with no data source, a -1 dimension, or a data "
         "file smaller than its dims need (core GenerateWarmupData)"),
    # ensembles (ValidateEnsembleSchedulingConfig)
    Code("ensemble-unknown-model", "error", "an ensemble step names a model that is not in the repository"),
    Code("ensemble-output-unwritten", "error", "an ensemble output that no step produces (server#3198)"),
    Code("ensemble-step-io", "error", "a step maps a tensor its model does not have"),
    Code("ensemble-structure", "error", "ensemble rules: steps and their maps present, every input used, "
         "no backend / instance_group / optimization / model_warmup, platform matches ensemble_scheduling"),
)
_SEVERITY: dict[str, Severity] = {c.id: c.severity for c in CODES}

_Hit: TypeAlias = tuple[str, str]  # (code, message), before the model name and severity are attached
_Tensor: TypeAlias = "pb.ModelInput | pb.ModelOutput"

_PLATFORM_BACKEND = {
    "onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch", "torch_aoti": "pytorch",
    "tensorrt_plan": "tensorrt", "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow",
}
_BACKEND_PLATFORM = {
    "onnxruntime": "onnxruntime_onnx", "pytorch": "pytorch_libtorch", "tensorrt": "tensorrt_plan",
}
_KNOWN_BACKENDS = ("onnxruntime", "pytorch", "tensorrt", "tensorflow", "python", "openvino", "dali", "fil",
                   "vllm", "tensorrtllm", "identity")
_BACKEND_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "torch": "pytorch", "libtorch": "pytorch",
                    "torchscript": "pytorch", "trt": "tensorrt", "tf": "tensorflow"}
# default model file per platform (or backend, when it has no platform)
_DEFAULT_FILE = {
    "onnxruntime_onnx": "model.onnx", "pytorch_libtorch": "model.pt", "torch_aoti": "model.pt2",
    "tensorrt_plan": "model.plan", "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef", "python": "model.py", "openvino": "model.xml",
}
# (backend, platform) in the order core probes the first version directory when neither is configured
_AUTODETECT = (("tensorflow", "tensorflow_savedmodel"), ("tensorflow", "tensorflow_graphdef"),
               ("tensorrt", "tensorrt_plan"), ("onnxruntime", "onnxruntime_onnx"), ("openvino", ""),
               ("pytorch", "pytorch_libtorch"), ("pytorch", "torch_aoti"), ("python", ""))
# files a backend can auto-complete a missing config.pbtxt from (model.py: if it defines auto_complete_config)
_AUTOCOMPLETE_FILES = ("model.onnx", "model.plan", "model.savedmodel", "model.graphdef", "model.py")
_NON_VERSION_DIRS = frozenset({"configs", "warmup", "initial_state"})
_PRECISION_MODES = ("FP32", "FP16", "BF16", "INT8")
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def check_repository(repo: Path | str) -> list[Finding]:
    """Lint every model directory of ``repo``; the findings are sorted by model, then code."""
    root = Path(repo)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        return [_finding("", ("repo-missing", f"model repository '{root}' {what}"))]
    if (root / "config.pbtxt").is_file():
        return [_finding("", ("repo-missing", f"'{root}' is a model directory (it has config.pbtxt); "
                                              "check the repository that contains it"))]
    model_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    sources = {p.name: _read_configs(p) for p in model_dirs}
    primary = {name: next((s.config for s in found if s.rel == "config.pbtxt"), None)
               for name, found in sources.items()}
    findings = {f for p in model_dirs for f in _lint_model_dir(p, sources[p.name], primary)}
    return sorted(findings, key=lambda f: (f.model, f.code, f.message))


def _finding(model: str, hit: _Hit) -> Finding:
    code, message = hit
    return Finding(_SEVERITY[code], model, code, message)


# --- reading configs -----------------------------------------------------------------------------------


class _Source(NamedTuple):
    rel: str  # "config.pbtxt" or "configs/<name>.pbtxt"
    config: pb.ModelConfig | None
    parse_error: _Hit | None


def _read_configs(model_dir: Path) -> list[_Source]:
    files = [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]
    sources = []
    for f in files:
        if f.is_file():
            rel = f.relative_to(model_dir).as_posix()
            sources.append(_Source(rel, *_parse_config(f.read_text(errors="replace"), rel)))
    return sources


def _parse_config(text: str, rel: str) -> tuple[pb.ModelConfig | None, _Hit | None]:
    try:
        return text_format.Parse(text, pb.ModelConfig()), None
    except text_format.ParseError as exc:
        where = f"{rel} line {exc.GetLine()} column {exc.GetColumn()}"
        detail = re.sub(r"^\d+:\d+ : ", "", str(exc)).rstrip(".")
        if "another member of oneof" in detail:
            both = " and ".join(re.findall(r'[Ff]ield "(\w+)"', detail))
            return None, ("scheduling-oneof", f"{where}: {both} are both set; dynamic_batching, "
                          "sequence_batching and ensemble_scheduling are mutually exclusive: keep one")
        return None, ("config-parse", f"{where}: {detail}{_parse_hint(text, detail)}")


def _parse_hint(text: str, detail: str) -> str:
    unknown = re.search(r'Message type "([\w.]+)" has no field named "(\w+)"', detail)
    if unknown:
        try:
            fields = [f.name for f in pb.DESCRIPTOR.pool.FindMessageTypeByName(unknown[1]).fields]
        except KeyError:
            fields = []
        close = difflib.get_close_matches(unknown[2], fields, n=1)
        return f"; did you mean '{close[0]}'?" if close else ""
    if text.lstrip().startswith("{") or re.search(r'"\w+"\s*:', text):
        return "; config.pbtxt is protobuf text format (name: \"m\"), not JSON (server#6571)"
    return ""


# --- one model directory -------------------------------------------------------------------------------


def _lint_model_dir(
    path: Path, sources: list[_Source], repo: Mapping[str, pb.ModelConfig | None]
) -> list[Finding]:
    hits: list[_Hit] = list(_ignored_version_dirs(path))
    if not any(s.rel == "config.pbtxt" for s in sources):
        hits.append(_missing_config(path))
    primary: set[_Hit] = set()
    for source in sources:
        if source.config is None:  # unparsable: the parse error is the finding
            hits.extend(filter(None, [source.parse_error]))
            continue
        found = _lint_config(path, source.config, repo)
        if source.rel == "config.pbtxt":
            primary = set(found)
            hits.extend(found)
        else:  # a variant: report what config.pbtxt does not already show
            hits.extend((code, f"{source.rel}: {msg}") for code, msg in found if (code, msg) not in primary)
    return [_finding(path.name, hit) for hit in hits]


def _version_of(name: str) -> int | None:
    """The version a subdirectory stands for, or None when Triton ignores it (VersionsToLoad)."""
    return int(name) if re.fullmatch(r"0|[1-9][0-9]*", name) else None


def _ignored_version_dirs(path: Path) -> Iterator[_Hit]:
    for sub in sorted(p.name for p in path.iterdir() if p.is_dir()):
        if sub not in _NON_VERSION_DIRS and _version_of(sub) is None:
            why = "has a leading zero" if sub.isdigit() else "is not a number"
            yield "version-dir-ignored", f"directory '{sub}' {why}: Triton ignores it as a version (use 1, 2)"


def _missing_config(path: Path) -> _Hit:
    versions = [p for p in sorted(path.iterdir()) if p.is_dir() and _version_of(p.name) is not None]
    auto = [f"{v.name}/{f}" for v in versions for f in _AUTOCOMPLETE_FILES if (v / f).exists()]
    if auto:
        return "config-autocomplete", (f"no config.pbtxt: Triton can serve it only by auto-completing from "
                                       f"{auto[0]}, never with --disable-auto-complete-config; write one")
    return "config-missing", (f"no config.pbtxt in '{path.name}': Triton cannot load it (only ONNX, "
                              "TensorRT, TensorFlow and some Python models auto-complete a missing config)")


@dataclass(frozen=True)
class _Model:
    """A model directory read with one configuration, backend and platform resolved as core does."""

    name: str
    path: Path
    cfg: pb.ModelConfig
    repo: Mapping[str, pb.ModelConfig | None]  # every model of the repository -> its config.pbtxt
    backend: str
    platform: str

    @property
    def mbs(self) -> int:
        return self.cfg.max_batch_size

    @cached_property
    def present_versions(self) -> list[int]:
        found = (_version_of(p.name) for p in self.path.iterdir() if p.is_dir())
        return sorted(v for v in found if v is not None)

    @cached_property
    def loaded_versions(self) -> list[int]:
        policy = self.cfg.version_policy
        which = policy.WhichOneof("policy_choice")
        if which == "all":
            return self.present_versions
        if which == "specific":
            return sorted(set(policy.specific.versions) & set(self.present_versions))
        keep = policy.latest.num_versions if which == "latest" else 1
        return self.present_versions[-keep:] if keep else []

    @property
    def model_filename(self) -> str:
        return self.cfg.default_model_filename or _DEFAULT_FILE.get(self.platform or self.backend, "")

    def artifacts(self) -> list[tuple[int, Path]]:
        """(version, file) for every loaded version whose model file exists."""
        found = ((v, _artifact(self.path / str(v), self.model_filename)) for v in self.loaded_versions)
        return [(v, p) for v, p in found if p is not None]


def _artifact(version_dir: Path, filename: str) -> Path | None:
    path = version_dir / filename
    if path.is_dir() and filename.endswith(".onnx"):  # model.onnx/ holds model.onnx plus external data
        path = path / "model.onnx"
    return path if filename and path.exists() else None


def _lint_config(path: Path, cfg: pb.ModelConfig, repo: Mapping[str, pb.ModelConfig | None]) -> list[_Hit]:
    backend, platform, hits = _resolve_backend(cfg, path)
    model = _Model(path.name, path, cfg, repo, backend, platform)
    for check in _CHECKS:
        hits.extend(check(model))
    return hits


# --- name, backend, platform ---------------------------------------------------------------------------


def _check_name(m: _Model) -> Iterator[_Hit]:
    if m.cfg.name and m.cfg.name != m.name:
        yield "name-mismatch", (f"name '{m.cfg.name}' differs from the directory name '{m.name}': Triton "
                                "skips the model; remove 'name' or make them equal")


def _resolve_backend(cfg: pb.ModelConfig, path: Path) -> tuple[str, str, list[_Hit]]:
    """(backend, platform) as core's AutoCompleteBackendFields fills them in, and what is wrong with them."""
    backend, platform = cfg.backend, cfg.platform
    if platform == "ensemble":
        return backend, platform, []  # a backend on an ensemble is an ensemble-structure finding
    if not backend and not platform:
        return _autodetect_backend(cfg, path)
    hits = [hit for hit in [_unknown_backend(backend)] if hit]
    expected = _PLATFORM_BACKEND.get(platform)
    if platform and backend in _PLATFORM_BACKEND.values() and expected != backend:
        # core accepts any platform beside a custom backend, but not beside a built-in one
        hits.append(("backend-platform-mismatch", (
            f"backend '{backend}' and platform '{platform}' disagree; backend '{backend}' takes platform "
            f"'{_BACKEND_PLATFORM.get(backend, backend)}' (or leave platform out)")))
        platform = _BACKEND_PLATFORM.get(backend, "")  # check the rest as the backend's own platform
    elif platform and not backend and expected is None:
        close = difflib.get_close_matches(platform, [*_PLATFORM_BACKEND, "ensemble"], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        hits.append(("platform-unknown", f"platform '{platform}' is not a Triton platform and no backend "
                                         f"is set{hint}"))
    backend = backend or expected or ""
    return backend, platform or _BACKEND_PLATFORM.get(backend, ""), hits


def _unknown_backend(backend: str) -> _Hit | None:
    if not backend or backend in _KNOWN_BACKENDS:
        return None
    matches = difflib.get_close_matches(backend.lower(), _KNOWN_BACKENDS, n=1, cutoff=0.7)
    close = _BACKEND_ALIASES.get(backend.lower()) or (matches[0] if matches else None)
    if close:
        return "backend-typo", (f"backend '{backend}' is not a Triton backend name (names are "
                                f"case-sensitive); did you mean '{close}'?")
    return "backend-unknown", (f"backend '{backend}' is not a backend Triton ships: it loads only if the "
                               f"backend directory has {backend}/libtriton_{backend}.so or "
                               f"{backend}/model.py")


def _autodetect_backend(cfg: pb.ModelConfig, path: Path) -> tuple[str, str, list[_Hit]]:
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())  # core looks into the first one only
    named = cfg.default_model_filename
    for backend, platform in _AUTODETECT:
        filename = _DEFAULT_FILE[platform or backend]
        if named == filename or (not named and subdirs and (subdirs[0] / filename).exists()):
            return backend, platform, []
    where = f"'{subdirs[0].name}/'" if subdirs else "any version directory"
    return "", "", [("backend-missing", f"neither 'backend' nor 'platform' is set and {where} holds no "
                     "known model file (model.onnx, model.pt, model.plan, model.py, ...); set 'backend'")]


# --- versions and files --------------------------------------------------------------------------------


def _check_versions(m: _Model) -> Iterator[_Hit]:
    if not m.present_versions:
        yield "version-missing", f"no version directory: Triton needs a numeric subdirectory like {m.name}/1/"
        return
    policy = m.cfg.version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        for v in policy.specific.versions:
            if v not in m.present_versions:
                yield "version-policy-missing", (f"version_policy.specific lists version {v} but "
                                                 f"'{m.name}/{v}/' does not exist (present: "
                                                 f"{_csv(m.present_versions)}): it will be unavailable")
    elif not m.loaded_versions:
        yield "version-missing", "version_policy latest num_versions 0 loads no version"


def _check_model_files(m: _Model) -> Iterator[_Hit]:
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
        if _artifact(version_dir, filename) is None and not alternative:
            yield "model-file-missing", f"version {v} has no '{filename}' ({origin}): Triton cannot load it"


def _check_labels(m: _Model) -> Iterator[_Hit]:
    for t in m.cfg.output:
        if t.label_filename and not (m.path / t.label_filename).is_file():
            yield "label-file-missing", (f"output '{t.name}' label_filename '{t.label_filename}' is not in "
                                         f"'{m.name}/' (Triton reads labels from the model directory)")


# --- inputs and outputs --------------------------------------------------------------------------------


def _check_io(m: _Model) -> Iterator[_Hit]:
    for kind, tensors in (("input", m.cfg.input), ("output", m.cfg.output)):
        seen: set[str] = set()
        for t in tensors:
            label = f"{kind} '{t.name}'"
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


def _dims_hits(label: str, dims: list[int], mbs: int) -> Iterator[_Hit]:
    if not dims:
        fix = "dims: [ 1 ] with reshape: { shape: [ ] }" if mbs > 0 else "dims: [ 1 ]"
        yield "empty-dims", (f"{label} has dims: [] but Triton requires at least one dimension "
                             f"(server#7981); for a model tensor of shape [batch] use {fix}")
    bad = [d for d in dims if d == 0 or d < -1]
    if bad:
        yield "bad-dim", (f"{label} dims {_shape(dims)} contain {bad[0]}: each dimension must be >= 1, "
                          "or -1 for a variable-size dimension")


def _reshape_hits(label: str, dims: list[int], shape: list[int], mbs: int) -> Iterator[_Hit]:
    bad = [d for d in shape if d == 0 or d < -1]
    if bad:
        yield "bad-dim", f"{label} reshape {_shape(shape)} contains {bad[0]}: dimensions must be >= 1 or -1"
    elif not shape and mbs == 0:
        yield "reshape-mismatch", (f"{label} has an empty reshape but max_batch_size is 0: a non-batching "
                                   "model cannot have scalar tensors")
    elif _segments(dims) != (_segments(shape) if shape else [1]):  # an empty reshape needs dims of 1 element
        yield "reshape-mismatch", (f"{label} dims {_shape(dims)} and reshape {_shape(shape)} hold different "
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


def _check_batching(m: _Model) -> Iterator[_Hit]:
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


def _preferred_sizes(field: str, sizes: Iterable[int], mbs: int) -> Iterator[_Hit]:
    for size in sizes:
        if size <= 0 or size > mbs:
            yield "preferred-batch-size", (f"{field}.preferred_batch_size {size} must be in "
                                           f"[1, max_batch_size] (max_batch_size is {mbs})")


def _priority_levels(db: pb.ModelDynamicBatching) -> Iterator[_Hit]:
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


def _check_instance_groups(m: _Model) -> Iterator[_Hit]:
    for i, group in enumerate(m.cfg.instance_group):
        label = f"instance_group[{i}]" + (f" '{group.name}'" if group.name else "")
        kind = pb.ModelInstanceGroup.Kind.Name(group.kind)
        if group.count < 0:
            yield "instance-count", (f"{label} count {group.count}: Triton treats a count below 1 as unset "
                                     "and uses its default (1; 2 for KIND_CPU on onnxruntime/tensorflow)")
        negative = [g for g in group.gpus if g < 0]
        if negative:
            yield "instance-gpus", f"{label} gpus {_shape(group.gpus)} has id {negative[0]}: GPU ids are >= 0"
        elif group.gpus and group.kind in (pb.ModelInstanceGroup.KIND_CPU, pb.ModelInstanceGroup.KIND_MODEL):
            yield "instance-gpus", (f"{label} has kind {kind} but lists gpus {_shape(group.gpus)}; only "
                                    "KIND_GPU takes gpus")


# --- optimization and warmup ---------------------------------------------------------------------------


_Accelerator: TypeAlias = pb.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator


def _trt_accelerators(cfg: pb.ModelConfig) -> list[_Accelerator]:
    accelerators = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    return [a for a in accelerators if a.name == "tensorrt"]


def _check_optimization(m: _Model) -> Iterator[_Hit]:
    if m.cfg.optimization.cuda.graphs and m.backend != "tensorrt":
        yield "cuda-graphs-ignored", (f"optimization.cuda.graphs is only recognized by the tensorrt backend; "
                                      f"'{m.backend or m.platform}' ignores it")
    if m.backend != "onnxruntime":
        return
    for acc in _trt_accelerators(m.cfg):
        mode = acc.parameters.get("precision_mode")
        if mode is not None and mode not in _PRECISION_MODES:
            yield "trt-precision-mode", (f"gpu_execution_accelerator 'tensorrt' precision_mode '{mode}' is "
                                         f"not one of {', '.join(_PRECISION_MODES)} (case-sensitive)")


def _check_warmup(m: _Model) -> Iterator[_Hit]:
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
                                               f"({_csv(known)})")
            yield from _warmup_input(m, f"{label} input '{key}'", data)


def _warmup_input(m: _Model, label: str, data: pb.ModelWarmup.Input) -> Iterator[_Hit]:
    """What core's GenerateWarmupData refuses for one warmup input."""
    dims = list(data.dims)
    source = data.WhichOneof("input_data_type")
    if source is None:
        yield "warmup-input-invalid", f"{label} sets none of zero_data, random_data, input_data_file"
    if -1 in dims:
        yield "warmup-input-invalid", f"{label} dims {_shape(dims)} must be fully specified (no -1)"
    if source != "input_data_file":
        return
    path = m.path / "warmup" / data.input_data_file
    if not path.is_file():
        yield "warmup-file-missing", (f"{label} input_data_file '{data.input_data_file}' is not in "
                                      f"'{m.name}/warmup/'")
        return
    dtype = BY_CONFIG.get(pb.DataType.Name(data.data_type))
    if dtype is None or dtype.is_string or -1 in dims:
        return  # strings are length-prefixed: any size can be right
    need, size = math.prod(dims) * dtype.numpy.itemsize, path.stat().st_size
    if size < need:
        yield "warmup-input-invalid", (f"{label} input_data_file '{data.input_data_file}' has {size} bytes "
                                       f"but {dtype} dims {_shape(dims)} need {need}")


# --- ensembles -----------------------------------------------------------------------------------------


def _check_ensemble(m: _Model) -> Iterator[_Hit]:
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


def _ensemble_step(m: _Model, i: int, step: pb.ModelEnsembling.Step) -> Iterator[_Hit]:
    if not step.model_name:
        return
    if step.model_name not in m.repo:
        yield "ensemble-unknown-model", (f"step {i} model_name '{step.model_name}' is not a model in this "
                                         f"repository ({_csv(m.repo)})")
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
                                           f"which has no such {kind} ({_csv(names)})")


def _ensemble_dataflow(cfg: pb.ModelConfig) -> Iterator[_Hit]:
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


# --- ONNX ----------------------------------------------------------------------------------------------


class _OnnxGraph(NamedTuple):
    inputs: dict[str, tuple[str, list[int] | None]]  # name -> (TYPE_* name, dims: -1 dynamic, None unknown)
    outputs: dict[str, tuple[str, list[int] | None]]
    ops: frozenset[str]


def _onnx_graph(path: Path) -> _OnnxGraph:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def info(vi: onnx.ValueInfoProto) -> tuple[str, list[int] | None]:
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return _onnx_type(tensor.elem_type), dims if tensor.HasField("shape") else None

    return _OnnxGraph({vi.name: info(vi) for vi in graph.input if vi.name not in initializers},
                      {vi.name: info(vi) for vi in graph.output}, frozenset(n.op_type for n in graph.node))


def _onnx_type(elem_type: int) -> str:
    import onnx

    try:
        return from_numpy(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).config
    except (KeyError, TypeError, ValueError, SpecError):
        return f"unsupported {onnx.TensorProto.DataType.Name(elem_type)}"


def _check_onnx(m: _Model) -> Iterator[_Hit]:
    if m.platform != "onnxruntime_onnx":
        return
    for version, path in m.artifacts():
        try:
            graph = _onnx_graph(path)
        except Exception as exc:  # a user file that does not parse is a finding, not a crash
            yield "model-unreadable", (f"version {version} '{m.model_filename}' is not readable ONNX: "
                                       f"{_one_line(exc)}")
            continue
        yield from _onnx_names(m, graph)
        for kind, tensors, known in _onnx_pairs(m, graph):
            for t in tensors:
                if t.name in known:
                    yield from _onnx_tensor(m, f"{kind} '{t.name}'", t, *known[t.name])
        yield from _onnx_autofill(m, graph)
        yield from _onnx_int8(m, graph)


def _onnx_pairs(m: _Model, graph: _OnnxGraph) -> tuple[tuple[str, Iterable[_Tensor], dict], ...]:
    """(kind, configured tensors, graph tensors) for inputs, then outputs."""
    return ("input", m.cfg.input, graph.inputs), ("output", m.cfg.output, graph.outputs)


def _onnx_names(m: _Model, graph: _OnnxGraph) -> Iterator[_Hit]:
    for kind, tensors, known in _onnx_pairs(m, graph):
        for t in tensors:
            if t.name and t.name not in known:
                yield "onnx-unknown-tensor", (f"{kind} '{t.name}' is not in the ONNX graph; its {kind}s are: "
                                              f"{_csv(known)}")
    if not m.cfg.input:
        return  # the backend auto-completes the inputs (see _onnx_autofill)
    seq = m.cfg.sequence_batching
    listed = ({t.name for t in m.cfg.input} | {c.name for c in seq.control_input}
              | {s.input_name for s in seq.state} | {n for b in m.cfg.batch_input for n in b.target_name})
    for name in sorted(set(graph.inputs) - listed):
        yield "onnx-input-missing", (f"ONNX graph input '{name}' is not in the configuration "
                                     f"({len(m.cfg.input)} configured inputs, {len(graph.inputs)} in the "
                                     "model): the backend refuses to load")


def _onnx_tensor(
    m: _Model, label: str, t: _Tensor, dtype: str, model_dims: list[int] | None
) -> Iterator[_Hit]:
    configured = pb.DataType.Name(t.data_type)
    if t.data_type != pb.TYPE_INVALID and configured != dtype:
        yield "onnx-dtype", f"{label} has data_type {configured} but the model provides {dtype}"
    if model_dims is None or not t.dims:
        return
    dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
    if not model_dims:  # a scalar in the model: every configured dimension must be 1
        if any(d != 1 for d in dims):
            yield "dim-mismatch", f"{label} is a scalar in the model; the configuration may only give 1s"
        return
    if m.mbs > 0 and model_dims[0] != -1:
        yield "fixed-batch-dim", (
            f"{label}: max_batch_size is {m.mbs} but the model's first dimension is fixed at {model_dims[0]} "
            f"(model shape {_shape(model_dims)}); to batch, the first dimension must be -1: re-export with a "
            "dynamic batch axis (server#2387) or set max_batch_size: 0 and give the full shape")
        return
    full = [-1, *dims] if m.mbs > 0 else dims
    if len(full) != len(model_dims):
        yield _rank_hit(m, label, dims, full, model_dims)
        return
    for i, (want, have) in enumerate(zip(full, model_dims, strict=True)):
        if have != -1 and want != have:
            yield "dim-mismatch", (f"{label}: configuration shape {_shape(full)} differs from the model "
                                   f"shape {_shape(model_dims)} at dimension {i} (config {want}, model "
                                   f"{have}); a fixed model dimension must be given exactly")
            return


def _rank_hit(m: _Model, label: str, dims: list[int], full: list[int], model_dims: list[int]) -> _Hit:
    if m.mbs > 0 and len(dims) == len(model_dims):
        return "batch-dim-in-dims", (
            f"{label}: dims {_shape(dims)} include the batch dimension; with max_batch_size {m.mbs} Triton "
            f"prepends it (full shape {_shape(full)}) but the model shape is {_shape(model_dims)}: use dims "
            f"{_shape(model_dims[1:])} (server#1545, server#6529)")
    hint = ""
    if m.mbs == 0 and len(dims) + 1 == len(model_dims) and model_dims[0] == -1:
        hint = "; max_batch_size is 0, so dims are the full shape (or set max_batch_size > 0 to batch)"
    return "rank-mismatch", (f"{label}: the model expects {len(model_dims)} dimensions {_shape(model_dims)} "
                             f"but the configuration gives {len(full)} {_shape(full)}{hint}")


def _onnx_autofill(m: _Model, graph: _OnnxGraph) -> Iterator[_Hit]:
    if m.cfg.input and m.cfg.output:
        return  # the backend skips auto-complete when both are listed (onnxruntime_backend#113)
    missing = "inputs" if not m.cfg.input else "outputs"
    yield "config-autocomplete", (f"the configuration lists no {missing}: the onnxruntime backend fills them "
                                  "in from the model, never with --disable-auto-complete-config; list them")
    shapes = {name: dims for name, (_, dims) in (*graph.inputs.items(), *graph.outputs.items())}
    fixed = sorted(name for name, dims in shapes.items() if not dims or dims[0] != -1)
    if m.mbs > 0 and fixed:
        yield "fixed-batch-dim", (f"max_batch_size is {m.mbs} but model tensor '{fixed[0]}' has no dynamic "
                                  "first dimension: auto-complete fails ('model does not support batching')")
    elif m.mbs == 0 and not fixed:
        yield "max-batch-size-autofill", (
            "max_batch_size is 0 or omitted and every model tensor has a dynamic first dimension: "
            "auto-complete sets max_batch_size to 4 and turns on dynamic batching, so dims lose their first "
            "dimension; write max_batch_size explicitly")


def _onnx_int8(m: _Model, graph: _OnnxGraph) -> Iterator[_Hit]:
    for acc in _trt_accelerators(m.cfg):
        if acc.parameters.get("precision_mode") != "INT8":
            continue
        table = acc.parameters.get("int8_calibration_table_name")
        has_qdq = bool(graph.ops & _QDQ_OPS)
        if not has_qdq and not table:
            yield "trt-int8-calibration", ("tensorrt precision_mode INT8 needs QuantizeLinear/"
                                           "DequantizeLinear nodes or int8_calibration_table_name; the "
                                           "model has neither")
        elif has_qdq and table:
            yield "trt-int8-calibration", (f"int8_calibration_table_name '{table}' is set but the model has "
                                           "Q/DQ nodes: TensorRT refuses a calibration table for a Q/DQ "
                                           "model and session creation fails; remove the table")


# --- TorchScript ---------------------------------------------------------------------------------------


def _named_index(name: str) -> int | None:
    """The index of a ``<name>__<index>`` tensor name (split at the first ``__``, as the backend does)."""
    _, sep, tail = name.partition("__")
    return int(tail) if sep and tail.isascii() and tail.isdigit() else None


def _torch_forward_args(path: Path) -> list[tuple[str, str]]:
    """(name, type kind) of forward()'s arguments, without ``self``."""
    import torch

    module = torch.jit.load(str(path), map_location="cpu")
    return [(a.name, a.type.kind()) for a in module.forward.schema.arguments if a.name != "self"]


def _check_torchscript(m: _Model) -> Iterator[_Hit]:
    if m.platform != "pytorch_libtorch":
        return
    for t in m.cfg.output:
        if _named_index(t.name) is None:
            yield "torch-output-name", (f"output '{t.name}' does not follow <name>__<index> (e.g. "
                                        "OUTPUT__0): TorchScript outputs carry no names, so the backend "
                                        "maps them by position and labels can silently swap")
    for version, path in m.artifacts():
        try:
            args = _torch_forward_args(path)
        except Exception as exc:  # a user file that does not load is a finding, not a crash
            yield "model-unreadable", (f"version {version} '{m.model_filename}' does not load: "
                                       f"{_one_line(exc)}")
            continue
        if not (len(args) == 1 and args[0][1] == "DictType"):  # a Dict input is keyed by the config names
            yield from _torch_inputs(m, [name for name, _ in args])


def _torch_inputs(m: _Model, args: list[str]) -> Iterator[_Hit]:
    names = [t.name for t in m.cfg.input]
    signature = f"forward({', '.join(args)})"
    if len(names) != len(args):
        yield "torch-input-count", (f"the configuration has {len(names)} inputs but {signature} takes "
                                    f"{len(args)}: the backend refuses to load")
    by_arg = [name for name in names if name in args]
    by_index = []
    for name in names:
        index = None if name in args else _named_index(name)
        if name in args:
            continue
        if index is None:
            yield "torch-input-name", (f"input '{name}' is neither an argument of {signature} nor "
                                       "<name>__<index>: the backend falls back to config order")
        elif index >= len(args):
            yield "torch-input-name", f"input '{name}' has index {index} but {signature} has {len(args)}"
        else:
            by_index.append(name)
    if by_arg and by_index and len(by_arg) + len(by_index) == len(names):
        yield "torch-mixed-naming", (f"inputs ({', '.join(names)}) mix {signature} argument names and "
                                     "<name>__<index>: the backend then ignores both and uses config order")


# --- helpers -------------------------------------------------------------------------------------------


def _shape(dims: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def _csv(names: Iterable[object]) -> str:
    return ", ".join(sorted(str(n) for n in names)) or "none"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


_CHECKS = (
    _check_name, _check_versions, _check_model_files, _check_labels, _check_io, _check_batching,
    _check_instance_groups, _check_optimization, _check_warmup, _check_ensemble, _check_onnx,
    _check_torchscript,
)


# What the native onnxruntime / pytorch backends themselves refuse when they load a model. The local
# stand-in backends (tritonize.deploy) apply exactly these rules, so a repository fails there as it fails in
# the NGC image. Not among them: torch-output-name (the native backend maps other names by position).
BACKEND_LOAD_CODES = frozenset({
    "model-file-missing", "model-unreadable", "onnx-unknown-tensor", "onnx-input-missing", "onnx-dtype",
    "batch-dim-in-dims", "fixed-batch-dim", "rank-mismatch", "dim-mismatch", "torch-input-name",
    "torch-input-count",
})


def backend_load_errors(model_dir: Path, cfg: pb.ModelConfig, version: int) -> list[str]:
    """Messages for what the native backend of ``cfg`` rejects when it loads ``version`` of ``model_dir``."""
    backend, platform, _ = _resolve_backend(cfg, model_dir)
    model = _Model(model_dir.name, model_dir, cfg, {}, backend, platform)
    model.__dict__["loaded_versions"] = [version]  # this version only (overrides the cached property)
    hits = [*_check_model_files(model), *_check_onnx(model), *_check_torchscript(model)]
    return [message for code, message in hits if code in BACKEND_LOAD_CODES]
