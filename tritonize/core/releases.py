"""What each NGC Triton release (``nvcr.io/nvidia/tritonserver:<release>-py3``) can load: the production target.

A model file is read by the target's own ONNX Runtime or PyTorch, not by the ones tritonize runs, so the exporter
writes nothing the target cannot read and ``check`` reports a file it cannot read as an error. Each fact below is
in one place, with its source:

- ``RELEASES``, NGC release → Triton server version and ONNX Runtime version: 23.10–24.03 from the
  ``TRITON_VERSION_MAP`` of triton-inference-server/server ``build.py`` at tags v2.39.0–v2.44.0; 24.04–25.12
  from that repository's ``docs/introduction/compatibility.md`` ("ONNX Runtime Versions", tag v2.64.0). The
  server version is the tag whose ``build.py`` builds that container (25.07 is v2.59.1).
- ``_ORT_LIMITS``, ONNX Runtime minor version → highest ONNX IR version and highest ``ai.onnx`` opset it
  loads: ONNX Runtime's "ONNX Runtime compatibility" table (onnxruntime.ai/docs/reference/compatibility.html,
  rows 1.16–1.20), and measured for every row with the PyPI wheels (1.16.3, 1.17.3, 1.18.1, 1.19.2, 1.20.1,
  1.21.0, 1.22.0, 1.23.2): a model one IR version higher fails "Unsupported model IR version: 11, max supported
  IR version: 10" (``onnxruntime/core/graph/model.cc``), one opset higher fails "Current official support for
  domain ai.onnx is till opset 21" (``model_load_utils.h`` ValidateOpsetForDomain; an error unless
  ``ALLOW_RELEASED_ONNX_OPSET_ONLY=0``). Other domains (``ai.onnx.ml``, ``com.microsoft``) are not checked.
- ``pytorch``: the pytorch backend of ``tritonserver:<release>-py3`` is built on
  ``nvcr.io/nvidia/pytorch:<release>-py3`` (server ``build.py`` ``pytorch_cmake_args``). Its torch version, where
  found: the Torch column of server ``docs/introduction/compatibility.md`` (trtllm table; the ``.nvYY.MM`` suffix
  names the NGC PyTorch release), the Model Navigator 0.8.1 support matrix (24.02), the NGC PyTorch release
  notes (25.02 as quoted in foundation-model-stack/fms-hf-tuning#675, 25.12). ``None``: not found.
- ``TORCHSCRIPT_FILE_FORMAT``: ``torch.jit.load`` refuses an archive whose ``version`` record is above
  ``kMaxSupportedFileFormatVersion`` ("Attempted to read a PyTorch file with version 11, but the maximum supported
  version for reading is 10"). It is 0xA in ``caffe2/serialize/versions.h`` since the last bump (aten::gelu,
  February 2022, PyTorch 1.12) up to torch 2.13, so 10 for every release here (all ship PyTorch 2.x).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

TORCHSCRIPT_FILE_FORMAT = 10
# ONNX Runtime major.minor -> (highest IR version, highest ai.onnx opset)
_ORT_LIMITS = {"1.16": (9, 19), "1.17": (9, 20), "1.18": (10, 21), "1.19": (10, 21), "1.20": (10, 21),
               "1.21": (10, 22), "1.22": (10, 22), "1.23": (11, 23)}


@dataclass(frozen=True)
class Release:
    name: str  # NGC tag, e.g. "24.10"
    triton: str  # server version, e.g. "2.51.0"
    onnxruntime: str
    pytorch: str | None = None

    @property
    def onnx_ir_version(self) -> int:
        return self._ort_limits[0]

    @property
    def onnx_opset(self) -> int:
        return self._ort_limits[1]

    @property
    def _ort_limits(self) -> tuple[int, int]:
        return _ORT_LIMITS[".".join(self.onnxruntime.split(".")[:2])]

    @property
    def torchscript_file_format(self) -> int:
        return TORCHSCRIPT_FILE_FORMAT

    def onnx_ir_problem(self, ir_version: int) -> str | None:
        """Why this release cannot load an ONNX file of ``ir_version`` (None when it can)."""
        if ir_version <= self.onnx_ir_version:
            return None
        return f"ONNX IR version {ir_version} > {self.onnx_ir_version}, the highest {self.ort_name} reads"

    def onnx_opset_problem(self, opset: int) -> str | None:
        """Why this release cannot load an ONNX file importing ``ai.onnx`` opset ``opset`` (None when it can)."""
        if opset <= self.onnx_opset:
            return None
        return f"ONNX opset {opset} > {self.onnx_opset}, the highest {self.ort_name} reads"

    def torchscript_problem(self, file_format: int) -> str | None:
        """Why this release cannot load a TorchScript archive of ``file_format`` (None when it can)."""
        if file_format <= self.torchscript_file_format:
            return None
        torch = f"PyTorch {self.pytorch}" if self.pytorch else f"the PyTorch of nvcr.io/nvidia/pytorch:{self.name}-py3"
        return (f"TorchScript file format version {file_format} > {self.torchscript_file_format}, the highest "
                f"{torch} (Triton {self.name}) reads")

    @property
    def image(self) -> str:
        """The NGC image of this release (what ``serve --docker`` and ``tritonize deploy`` run)."""
        return f"nvcr.io/nvidia/tritonserver:{self.name}-py3"

    @property
    def ort_name(self) -> str:
        return f"ONNX Runtime {self.onnxruntime} (Triton {self.name})"

    def record(self) -> dict[str, object]:
        """What a build's manifest records about its target."""
        return {"triton_version": self.name, "tritonserver": self.triton, "onnxruntime": self.onnxruntime,
                "onnx_ir_version": self.onnx_ir_version, "onnx_opset": self.onnx_opset, "pytorch": self.pytorch,
                "torchscript_file_format": self.torchscript_file_format}


RELEASES = {r.name: r for r in (
    Release("23.10", "2.39.0", "1.16.0"),
    Release("23.11", "2.40.0", "1.16.3"),
    Release("23.12", "2.41.0", "1.16.3"),
    Release("24.01", "2.42.0", "1.16.3"),
    Release("24.02", "2.43.0", "1.16.3", "2.3.0a0+ebedce2"),
    Release("24.03", "2.44.0", "1.17.2", "2.3.0a0+40ec155e58"),
    Release("24.04", "2.45.0", "1.17.3"),
    Release("24.05", "2.46.0", "1.18.0", "2.4.0a0+07cecf4168"),
    Release("24.06", "2.47.0", "1.18.0"),
    Release("24.07", "2.48.0", "1.18.1", "2.4.0a0+3bcc3cddb5"),
    Release("24.08", "2.49.0", "1.18.1"),
    Release("24.09", "2.50.0", "1.19.2"),
    Release("24.10", "2.51.0", "1.19.2", "2.5.0a0+e000cf0ad9"),
    Release("24.11", "2.52.0", "1.19.2", "2.6.0a0+df5bbc09d1"),
    Release("24.12", "2.53.0", "1.20.1"),
    Release("25.01", "2.54.0", "1.20.1", "2.6.0a0+ecf3bae40a"),
    Release("25.02", "2.55.0", "1.20.1", "2.7.0a0+6c54963f75"),
    Release("25.03", "2.56.0", "1.21.0", "2.7.0a0+7c8ec84dab"),
    Release("25.04", "2.57.0", "1.21.0", "2.7.0a0+79aa17489c"),
    Release("25.05", "2.58.0", "1.22.0", "2.8.0a0+5228986c39"),
    Release("25.06", "2.59.0", "1.22.0", "2.8.0a0+5228986c39"),
    Release("25.07", "2.59.1", "1.22.0"),
    Release("25.08", "2.60.0", "1.23.0"),
    Release("25.09", "2.61.0", "1.23.0"),
    Release("25.10", "2.62.0", "1.23.1", "2.9.0a0+145a3a7bda"),
    Release("25.11", "2.63.0", "1.23.2"),
    Release("25.12", "2.64.0", "1.23.2", "2.10.0a0+b4e4ee81d3"),
)}
LOCAL = "24.10"  # the release the local server is (pip tritonserver 2.51.0): the default target


def get(name: str | None = None, field: str = "triton_version") -> Release:
    """The release called ``name`` (the local server's when None); an unknown name is a SpecError on ``field``."""
    name = LOCAL if name is None else name
    if name not in RELEASES:
        raise SpecError(field, name, "an NGC Triton release tritonize knows: " + ", ".join(RELEASES))
    return RELEASES[name]


def ai_onnx_opset(opset_imports: Iterable[Any]) -> int | None:
    """The ``ai.onnx`` opset an ONNX model's ``opset_import`` names ("" and "ai.onnx" are that domain), or None."""
    return next((int(o.version) for o in opset_imports if o.domain in ("", "ai.onnx")), None)
