"""The one percentile: perf_analyzer's nearest rank, so our numbers and perf_analyzer's mean the same."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float:
    """``sorted(values)[int(p/100 · (n−1) + 0.5)]``; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return float(ordered[int((p / 100) * (len(ordered) - 1) + 0.5)])
