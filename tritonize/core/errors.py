"""The root of every error tritonize raises on purpose; each side adds its own below it.

Every message names the field or tensor, the value, and what was expected. ``exit_code`` is what the CLI
returns: 2 for a usage error (bad spec, bad arguments), 1 for a failure (export, verification, server).
"""

from __future__ import annotations


class TritonizeError(Exception):
    """Base of every error tritonize raises on purpose."""

    exit_code = 1


class UsageError(TritonizeError):
    """The user asked for something invalid; nothing was done."""

    exit_code = 2


class SpecError(UsageError):
    """A field of a spec, config or command line has an invalid value."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        shown = field if field.isprintable() else repr(field)[1:-1]  # a newline in a name stays on one line
        super().__init__(f"{shown}: got {value!r}, expected {expected}")

    def within(self, prefix: str) -> SpecError:
        """The same error with its field placed under ``prefix`` (e.g. ``models.digits``).

        Segments the field already shares with the end of the prefix are not repeated:
        ``models.m.tolerance`` + ``tolerance.atol`` is ``models.m.tolerance.atol``.
        """
        if not prefix:
            return self
        outer, inner = prefix.split("."), self.field.split(".")
        bare = [s.split("[")[0] for s in outer]
        overlap = next((n for n in range(min(len(outer), len(inner)), 0, -1) if bare[-n:] == inner[:n]), 0)
        return SpecError(".".join(outer + inner[overlap:]), self.value, self.expected)


class SourceError(SpecError):
    """A reference (``module:function``, a file) that cannot be resolved to what was expected."""


class ModelLoadError(TritonizeError):
    """The user's code raised while it was imported or called (their model, data set or calibration set)."""
