"""Presentation: every table tritonize prints, as aligned text, Markdown or JSON records (``--output``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Format = Callable[[Any], str]


@dataclass
class Table:
    """Columns with raw values; ``formats`` say how a column reads as text (JSON keeps the raw value)."""

    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    formats: dict[str, Format] = field(default_factory=dict)
    free_last: bool = False  # the last column is not padded (long free text)
    right: bool = False  # right-align every column (numbers)

    def add(self, *values: Any) -> None:
        self.rows.append(values)

    def text(self) -> str:
        cells = [list(self.columns)] + [[self._cell(c, v) for c, v in zip(self.columns, row)] for row in self.rows]
        padded = len(self.columns) - (1 if self.free_last else 0)
        widths = [max(len(r[i]) for r in cells) for i in range(padded)]
        if self.right:
            return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)
        return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), *r[padded:]]).rstrip()
                         for r in cells)

    def markdown(self) -> str:
        cells = [[self._cell(c, v) for c, v in zip(self.columns, row)] for row in self.rows]
        return "\n".join("| " + " | ".join(r) + " |"
                         for r in [list(self.columns), ["---"] * len(self.columns), *cells])

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (_jsonable(v) for v in row))) for row in self.rows]

    def _cell(self, column: str, value: Any) -> str:
        if value is None:
            return "n/a"
        fmt = self.formats.get(column)
        return fmt(value) if fmt else str(value)


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def render(tables: dict[str, Table], output: str) -> str:
    """``table``: the non-empty tables as text, a blank line apart; ``json``: ``{name: [records]}``, or the
    records alone when there is one table."""
    if output == "json":
        data = {name: t.records() for name, t in tables.items()}
        return json.dumps(next(iter(data.values())) if len(data) == 1 else data, indent=2, default=str)
    return "\n\n".join(t.text() for t in tables.values() if t.rows)
