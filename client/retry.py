"""Retries with exponential backoff and full jitter, bounded by one deadline per call.

Only idempotent calls retry (inference, reads); only on errors that may pass (server unreachable, model not
ready). When the deadline would pass, the call fails with ``InferenceTimeoutError`` carrying the last error.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from .errors import (
    InferenceTimeoutError,
    ModelNotReadyError,
    RegionInUseError,
    ServerUnavailableError,
    TritonClientError,
)


@dataclass(frozen=True)
class RetryPolicy:
    deadline_s: float = 30.0  # default budget of a call, retries included, when the call gives no timeout
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0
    retry_on: tuple[type[TritonClientError], ...] = (ServerUnavailableError, ModelNotReadyError)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial · multiplier^attempt)]."""
        return random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** attempt))


DEFAULT_RETRY = RetryPolicy()
# Triton releases a request's shared-memory regions a moment after its response: unregistering retries until then.
UNREGISTER_RETRY = RetryPolicy(deadline_s=5.0, initial_backoff_s=0.01, retry_on=(RegionInUseError,))


class Attempts:
    """Deadline bookkeeping for one call: ``remaining()`` for each attempt, ``delay_after(exc)`` between them."""

    def __init__(self, policy: RetryPolicy | None, timeout_s: float | None, what: str,
                 start: float | None = None) -> None:
        self.policy = policy
        self.what = what
        budget = timeout_s if timeout_s is not None else (policy.deadline_s if policy else math.inf)
        self.budget = budget
        self.deadline = (time.monotonic() if start is None else start) + budget
        self.attempt = 0

    def remaining(self) -> float | None:
        return None if math.isinf(self.budget) else max(self.deadline - time.monotonic(), 0.001)

    def delay_after(self, exc: TritonClientError) -> float:
        """Seconds to wait before the next attempt; re-raises when the error is final or time is up."""
        if self.policy is None or not isinstance(exc, self.policy.retry_on):
            raise exc
        delay = self.policy.backoff(self.attempt)
        self.attempt += 1
        if time.monotonic() + delay >= self.deadline:
            raise deadline_error(self.what, self.budget, self.attempt, exc) from exc
        return delay


def deadline_error(what: str, budget: float, attempts: int, last: TritonClientError) -> InferenceTimeoutError:
    """The deadline passed; an unreachable server is named as such (it stopped, died or never started)."""
    why = "the server was unreachable (stopped or died?)" if isinstance(last, ServerUnavailableError) \
        else "no success"
    return InferenceTimeoutError(f"{what}: {why} for the whole {budget:.1f} s deadline ({attempts} attempts); "
                                 f"last error: {last}")
