"""Reading a model directory: its configs as Triton parses them, its versions and model files."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, TypeAlias, cast

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from .. import releases
from ..datatypes import BY_CONFIG
from .backends import default_file
from .codes import Hit

Tensor: TypeAlias = "pb.ModelInput | pb.ModelOutput"
Accelerator: TypeAlias = pb.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator


# --- configs -------------------------------------------------------------------------------------------


class Source(NamedTuple):
    rel: str  # "config.pbtxt" or "configs/<name>.pbtxt"
    config: pb.ModelConfig | None
    parse_error: Hit | None


def read_configs(model_dir: Path) -> list[Source]:
    files = [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]
    sources = []
    for f in files:
        if f.is_file():
            rel = f.relative_to(model_dir).as_posix()
            sources.append(Source(rel, *_parse_config(f.read_text(errors="replace"), rel)))
    return sources


def _parse_config(text: str, rel: str) -> tuple[pb.ModelConfig | None, Hit | None]:
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


# --- versions and files --------------------------------------------------------------------------------


def version_of(name: str) -> int | None:
    """The version a subdirectory stands for, or None when Triton ignores it (VersionsToLoad)."""
    return int(name) if re.fullmatch(r"0|[1-9][0-9]*", name) else None


@dataclass(frozen=True)
class ModelView:
    """A model directory read with one configuration, backend and platform resolved as core does."""

    name: str
    path: Path
    cfg: pb.ModelConfig
    repo: Mapping[str, pb.ModelConfig | None]  # every model of the repository -> its config.pbtxt
    backend: str
    platform: str
    only_version: int | None = None  # check this version alone instead of what the policy loads
    target: releases.Release = field(default_factory=releases.get)  # the release that must load it
    autocomplete: bool = True  # backend auto-complete on, as tritonserver runs by default

    @property
    def mbs(self) -> int:
        return cast(int, self.cfg.max_batch_size)

    @cached_property
    def present_versions(self) -> list[int]:
        found = (version_of(p.name) for p in self.path.iterdir() if p.is_dir())
        return sorted(v for v in found if v is not None)

    @cached_property
    def loaded_versions(self) -> list[int]:
        if self.only_version is not None:
            return [self.only_version]
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
        return self.cfg.default_model_filename or default_file(self.platform or self.backend)

    def artifacts(self) -> list[tuple[int, Path]]:
        """(version, file) for every loaded version whose model file exists."""
        found = ((v, artifact(self.path / str(v), self.model_filename)) for v in self.loaded_versions)
        return [(v, p) for v, p in found if p is not None]


def artifact(version_dir: Path, filename: str) -> Path | None:
    path = version_dir / filename
    if path.is_dir() and filename.endswith(".onnx"):  # model.onnx/ holds model.onnx plus external data
        path = path / "model.onnx"
    return path if filename and path.exists() else None


# --- shared helpers ------------------------------------------------------------------------------------


def trt_accelerators(cfg: pb.ModelConfig) -> list[Accelerator]:
    accelerators = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    return [a for a in accelerators if a.name == "tensorrt"]


def data_file_problem(m: ModelView, folder: str, filename: str, data_type: int,
                      dims: list[int]) -> tuple[str, str] | None:
    """What core refuses about a tensor's data file in ``<model>/<folder>/`` (warmup inputs, initial states):
    ("missing", message) or ("short", message); strings are length-prefixed, so any size can be right for them."""
    path = m.path / folder / filename
    if not path.is_file():
        return "missing", f"'{filename}' is not in '{m.name}/{folder}/'"
    dtype = BY_CONFIG.get(pb.DataType.Name(data_type))
    if dtype is None or dtype.is_string or -1 in dims:
        return None
    need, size = math.prod(dims) * dtype.numpy.itemsize, path.stat().st_size
    if size < need:
        return "short", f"'{filename}' has {size} bytes but {dtype} dims {fmt_shape(dims)} need {need}"
    return None


def fmt_shape(dims: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def fmt_list(names: Iterable[object]) -> str:
    return ", ".join(sorted(str(n) for n in names)) or "none"
