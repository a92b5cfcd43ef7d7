"""Errors of the build side. Each message names the field or tensor, the value and what was expected."""

from __future__ import annotations

from tritonize.core.errors import ModelLoadError, SourceError, SpecError, TritonizeError, UsageError

__all__ = [
    "ExportError",
    "ModelLoadError",
    "ParityError",
    "RepositoryError",
    "SourceError",
    "SpecError",
    "TemplateError",
    "TritonizeError",
    "UsageError",
]


class ExportError(TritonizeError):
    """Export to TorchScript or ONNX failed, or the artifact does not work (e.g. a baked-in batch size)."""


class ParityError(TritonizeError):
    """A verification gate (parity, determinism, batch invariance) failed."""


class TemplateError(TritonizeError):
    """A rendered config.pbtxt does not parse, or does not say what the spec says (a template bug)."""


class RepositoryError(TritonizeError):
    """Writing the repository would lose or clobber something."""
