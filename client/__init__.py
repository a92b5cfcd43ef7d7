"""tritonize.client: the run-time side (no torch)."""

from .errors import SpecError, TritonizeError, UsageError

__all__ = ["SpecError", "TritonizeError", "UsageError"]
