"""Linting a repository: every model directory, each of its configs, the generic rules plus the file
validator the format registry names for the model's platform."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as pb

from .. import formats, releases
from ..staging import is_stale, staging_dirs
from .backends import resolve_backend
from .codes import BACKEND_LOAD_CODES, Finding, Hit, finding
from .model import ModelView, Source, read_configs, version_of
from .rules import RULES, check_model_files

# files a backend can auto-complete a missing config.pbtxt from (model.py: if it defines auto_complete_config)
_AUTOCOMPLETE_FILES = ("model.onnx", "model.plan", "model.savedmodel", "model.graphdef", "model.py")
_NON_VERSION_DIRS = frozenset({"configs", "warmup", "initial_state"})


def check_repository(repo: Path | str, triton_version: str = releases.LOCAL, *,
                     autocomplete: bool = True) -> list[Finding]:
    """Lint every model directory of ``repo`` for the NGC release ``triton_version`` (what its ONNX Runtime and
    PyTorch can load), served with backend auto-complete on (tritonserver's default) or off
    (``autocomplete=False``: ``--disable-auto-complete-config``); the findings are sorted by model, then code."""
    target = releases.get(triton_version)
    root = Path(repo)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        return [finding("", ("repo-missing", f"model repository '{root}' {what}"))]
    if (root / "config.pbtxt").is_file():
        return [finding("", ("repo-missing", f"'{root}' is a model directory (it has config.pbtxt); "
                                             "check the repository that contains it"))]
    staging = set(staging_dirs(root))  # a running build's is left alone; a killed one's is reported
    leftovers = {finding(p.name, ("staging-leftover", f"'{p.name}' was left by a killed build: Triton will try to "
                                  "load it as a model; the next build or tritonize serve removes it"))
                 for p in staging if is_stale(p)}
    model_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p not in staging)
    sources = {p.name: read_configs(p) for p in model_dirs}
    primary = {name: next((s.config for s in found if s.rel == "config.pbtxt"), None)
               for name, found in sources.items()}
    findings = leftovers | {f for p in model_dirs
                            for f in _lint_model_dir(p, sources[p.name], primary, target, autocomplete)}
    return sorted(findings, key=lambda f: (f.model, f.code, f.message))


def backend_load_errors(model_dir: Path, cfg: pb.ModelConfig, version: int) -> list[str]:
    """Messages for what the native backend of ``cfg`` rejects when it loads ``version`` of ``model_dir``, as the
    local server's release (``releases.LOCAL``) runs it: a file too new for its ONNX Runtime or PyTorch too."""
    backend, platform, _ = resolve_backend(cfg, model_dir)
    # cfg is what the backend loads, after any auto-complete (the stand-ins run their own): nothing more is filled
    model = ModelView(model_dir.name, model_dir, cfg, {}, backend, platform, only_version=version,
                      autocomplete=False)
    hits = [*check_model_files(model), *file_rules(model)]
    return [message for code, message in hits if code in BACKEND_LOAD_CODES]


def file_rules(m: ModelView) -> Iterator[Hit]:
    """The registry's validator for the model's platform; reader-missing when its reader is not installed."""
    backend = formats.by_platform(m.platform) if m.platform else None
    if backend is None or backend.validator is None:
        return
    reader = backend.reader
    try:  # a validator imports its reader before the first model file, after its config-only rules
        yield from _validator(backend.validator)(m)
    except ImportError as exc:
        if not (reader and exc.name and (exc.name == reader or exc.name.startswith(reader + "."))):
            raise
        versions = [str(v) for v, _ in m.artifacts()]
        if versions:
            which = f"version{'s' if len(versions) > 1 else ''} {', '.join(versions)}"
            yield "reader-missing", (f"{which} '{m.model_filename}' not checked against the model: needs "
                                     f"{reader} (pip install {reader})")


@functools.cache
def _validator(ref: str) -> Callable[[ModelView], Iterable[Hit]]:
    module, _, attr = ref.partition(":")
    validator: Callable[[ModelView], Iterable[Hit]] = getattr(importlib.import_module(module), attr)
    return validator


def _lint_model_dir(path: Path, sources: list[Source], repo: Mapping[str, pb.ModelConfig | None],
                    target: releases.Release, autocomplete: bool) -> list[Finding]:
    hits: list[Hit] = list(_ignored_version_dirs(path))
    if not any(s.rel == "config.pbtxt" for s in sources):
        hits.append(_missing_config(path, autocomplete))
    primary: set[Hit] = set()
    for source in sources:
        if source.config is None:  # unparsable: the parse error is the finding
            hits.extend(filter(None, [source.parse_error]))
            continue
        found = _lint_config(path, source.config, repo, target, autocomplete)
        if source.rel == "config.pbtxt":
            primary = set(found)
            hits.extend(found)
        else:  # a variant: report what config.pbtxt does not already show
            hits.extend((code, f"{source.rel}: {msg}") for code, msg in found if (code, msg) not in primary)
    return [finding(path.name, hit, autocomplete) for hit in hits]


def _lint_config(path: Path, cfg: pb.ModelConfig, repo: Mapping[str, pb.ModelConfig | None],
                 target: releases.Release, autocomplete: bool) -> list[Hit]:
    backend, platform, hits = resolve_backend(cfg, path)
    model = ModelView(path.name, path, cfg, repo, backend, platform, target=target, autocomplete=autocomplete)
    for rule in (*RULES, file_rules):
        hits.extend(rule(model))
    return hits


def _ignored_version_dirs(path: Path) -> Iterator[Hit]:
    for sub in sorted(p.name for p in path.iterdir() if p.is_dir()):
        if sub not in _NON_VERSION_DIRS and version_of(sub) is None:
            why = "has a leading zero" if sub.isdigit() else "is not a number"
            yield "version-dir-ignored", f"directory '{sub}' {why}: Triton ignores it as a version (use 1, 2)"


def _missing_config(path: Path, autocomplete: bool) -> Hit:
    versions = [p for p in sorted(path.iterdir()) if p.is_dir() and version_of(p.name) is not None]
    auto = [f"{v.name}/{f}" for v in versions for f in _AUTOCOMPLETE_FILES if (v / f).exists()]
    if auto and not autocomplete:  # model.cc Model::Init: "model configuration is not provided"
        return "config-autocomplete", (f"no config.pbtxt and auto-complete is off (--disable-auto-complete-config): "
                                       f"Triton refuses the model instead of completing one from {auto[0]}; write one")
    if auto:
        return "config-autocomplete", (f"no config.pbtxt: Triton can serve it only by auto-completing from "
                                       f"{auto[0]}, never with --disable-auto-complete-config; write one")
    return "config-missing", (f"no config.pbtxt in '{path.name}': Triton cannot load it (only ONNX, "
                              "TensorRT, TensorFlow and some Python models auto-complete a missing config)")
