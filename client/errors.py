"""The error hierarchy shared by the whole tool.

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
        super().__init__(f"{field}: got {value!r}, expected {expected}")

    def within(self, prefix: str) -> SpecError:
        """The same error with its field placed under ``prefix`` (e.g. ``models.digits``).

        Segments the field already shares with the end of the prefix are not repeated:
        ``models.m.tolerance`` + ``tolerance.atol`` is ``models.m.tolerance.atol``.
        """
        outer, inner = prefix.split("."), self.field.split(".")
        bare = [s.split("[")[0] for s in outer]
        overlap = next((n for n in range(min(len(outer), len(inner)), 0, -1) if bare[-n:] == inner[:n]), 0)
        return SpecError(".".join(outer + inner[overlap:]), self.value, self.expected)


class TritonClientError(TritonizeError):
    """A call to Triton failed. ``status`` is the gRPC code or HTTP status when the server answered."""

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class InvalidInputError(TritonClientError, UsageError):
    """Inputs that do not match the model's config (checked before sending), or that Triton refused."""


class ModelNotFoundError(TritonClientError):
    """No such model or version is loaded."""


class ModelNotReadyError(TritonClientError):
    """The model exists but is not ready (loading, unloading or failed)."""


class ServerUnavailableError(TritonClientError):
    """The server cannot be reached or answered UNAVAILABLE; retried for idempotent calls."""


class InferenceTimeoutError(TritonClientError, TimeoutError):
    """The call, with its retries, did not finish within its deadline."""


class ServerError(TritonClientError):
    """Any other error the server reported (its message is kept)."""


class RegionInUseError(ServerError):
    """Triton refused to unregister a shared-memory region a finishing request still holds; it passes."""
