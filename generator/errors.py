"""Errors of the build side. Each message names the field or tensor, the value and what was expected."""

from __future__ import annotations

from tritonize.client.errors import SpecError, TritonizeError, UsageError

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


class SourceError(UsageError):
    """The model source cannot be found or is not what was expected (exit 2)."""


class ModelLoadError(TritonizeError):
    """The user's callable or file raised while building or loading the model."""


class ExportError(TritonizeError):
    """Export to TorchScript or ONNX failed, or the artifact does not work (e.g. a baked-in batch size)."""


class ParityError(TritonizeError):
    """A verification gate (parity, determinism, batch invariance) failed."""


class TemplateError(TritonizeError):
    """A rendered config.pbtxt does not parse, or does not say what the spec says (a template bug)."""


class RepositoryError(TritonizeError):
    """Writing the repository would lose or clobber something."""
