"""SLA gates: ``p99<=20ms``, ``avg<5ms``, ``throughput>=500/s``, ``errors<=1%``, optionally at one load level
(``p99<=20ms@16``); without a level a gate must hold at every measured level."""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from .results import LevelResult

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_TIME = {"us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
_GATE = re.compile(r"^\s*(p\d{1,2}|avg|throughput|errors)\s*(<=|>=|<|>)\s*([0-9.]+)\s*([a-zµ/%]*)"
                   r"\s*(?:@\s*([0-9.]+))?\s*$")


@dataclass(frozen=True)
class Gate:
    text: str
    metric: str  # p50 | p90 | p95 | p99 | pNN | avg | throughput | errors
    op: str
    limit: float  # µs for latencies, inferences/s for throughput, a fraction for errors
    level: float | None = None

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = _GATE.match(text)
        if not match:
            raise UsageError(f"--sla {text!r}: expected e.g. p99<=20ms, avg<5ms, throughput>=500/s, errors<=1% "
                             "(optionally @LEVEL, e.g. p99<=20ms@16)")
        metric, op, number, unit, level = match.groups()
        value = float(number)
        if metric in ("throughput",):
            if unit not in ("", "/s"):
                raise UsageError(f"--sla {text!r}: throughput is in /s, got {unit!r}")
        elif metric == "errors":
            if unit not in ("%", ""):
                raise UsageError(f"--sla {text!r}: errors are a percentage, got {unit!r}")
            value /= 100
        else:
            if unit not in _TIME:
                raise UsageError(f"--sla {text!r}: latency needs a unit: us, ms or s")
            value *= _TIME[unit]
        return cls(text.strip(), metric, op, value, float(level) if level else None)

    def measured(self, row: LevelResult) -> float:
        if self.metric == "throughput":
            return row.throughput
        if self.metric == "errors":
            return row.error_rate
        if self.metric == "avg":
            if row.avg_us is None:
                raise UsageError(f"--sla {self.text!r}: no average was measured (perf_analyzer reports none with "
                                 "--percentile); gate a percentile instead")
            return row.avg_us
        p = int(self.metric[1:])
        if p not in row.percentiles_us:
            raise UsageError(f"--sla {self.text!r}: p{p} was not measured (add --percentile {p})")
        return row.percentiles_us[p]


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    level: float
    measured: float
    passed: bool

    def describe(self) -> str:
        unit = {"throughput": "/s", "errors": "%"}.get(self.gate.metric, "ms")
        scale = {"throughput": 1.0, "errors": 100.0}.get(self.gate.metric, 1e-3)
        return (f"{self.gate.text:<24} level {self.level:<8g} measured {self.measured * scale:,.3g}{unit} "
                f"limit {self.gate.limit * scale:,.3g}{unit}  {'pass' if self.passed else 'FAIL'}")


def evaluate(gates: Sequence[Gate], rows: Sequence[LevelResult]) -> list[GateResult]:
    results = []
    for gate in gates:
        chosen = [r for r in rows if gate.level is None or abs(r.level - gate.level) < 1e-9]
        if not chosen:
            raise UsageError(f"--sla {gate.text!r}: level {gate.level:g} was not measured "
                             f"(levels: {', '.join(f'{r.level:g}' for r in rows)})")
        for row in chosen:
            value = gate.measured(row)
            results.append(GateResult(gate, row.level, value, bool(_OPS[gate.op](value, gate.limit))))
    return results
