"""Errors of the client side: a call to Triton failed (below the root in ``tritonize.core.errors``)."""

from __future__ import annotations

from tritonize.core.errors import SpecError, TritonizeError, UsageError

__all__ = [
    "InferenceTimeoutError",
    "InvalidInputError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "RegionInUseError",
    "ServerError",
    "ServerUnavailableError",
    "SpecError",
    "TritonClientError",
    "TritonizeError",
    "UsageError",
]


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
