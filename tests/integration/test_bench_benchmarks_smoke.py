"""benchmarks/dynamic_batching.py and benchmarks/loadgen_capacity.py --quick: each builds its models, serves them,
measures every variant with the built-in load generator and writes its report.

The two run at the same time (each in its own subprocess, with its own server and output folder) to keep the test
short; their numbers mean nothing here, only that every table is there with every variant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
VARIANTS = ("no batching ×1", "no batching ×2", "dyn. batching ×1", "dyn. batching ×2")
COMBOS = {f"{p}/{w}" for p in ("grpc", "http") for w in (1, 2)}


def _section(text: str, heading: str) -> str:
    assert heading in text, heading
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _rows(table: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows."""
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]  # no header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]


def test_quick_runs_write_every_table_with_every_variant(tmp_path: Path) -> None:
    outs = {name: tmp_path / name for name in ("dynamic_batching", "loadgen_capacity")}
    runs = {name: subprocess.Popen([sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--out", str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, out in outs.items()}
    for name, run in runs.items():
        try:
            _, stderr = run.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            for other in runs.values():
                other.kill()
            raise
        assert run.returncode == 0, f"{name}: {stderr[-3000:]}"

    # dynamic batching: four variants at every level, side by side, with Triton's average batch
    text = (outs["dynamic_batching"] / "dynamic_batching.md").read_text()
    assert "tritonserver 2.51" in text and "stand-in backend" in text and "Load average" in text
    assert len(_rows(_section(text, "## onnxruntime alone"))) == 6  # batch 1 … 32
    side = _section(text, "## Throughput and p99, side by side")
    header = next(line for line in side.splitlines() if line.startswith("| concurrency"))
    for variant in VARIANTS:
        assert f"{variant} req/s" in header and f"{variant} p99 ms" in header
    levels = [row[0] for row in _rows(side)]
    assert levels == ["1", "8"]
    batches = _rows(_section(text, "## Average executed batch size"))
    assert all(len(row) == 5 and all(cell != "–" for cell in row) for row in batches)
    efficiency = _rows(_section(text, "## Requests/s per stub core"))
    assert [row[0] for row in efficiency] == levels and all(len(row) == 6 for row in efficiency)
    detail = _rows(_section(text, "## Every level in detail"))
    assert sorted((row[0], row[1]) for row in detail) == sorted((lv, v) for lv in levels for v in VARIANTS)
    assert "## Interpretation" in text
    report = json.loads((outs["dynamic_batching"] / "dynamic_batching.json").read_text())
    assert {(r["variant"], r["level"]) for r in report["rows"]} == {
        (v, lv) for v in ("plain_x1", "plain_x2", "batched_x1", "batched_x2") for lv in (1, 8)}
    for r in report["rows"]:
        assert r["throughput"] > 0 and r["errors"] == 0 and r["avg_batch"] >= 1
        if r["variant"].startswith("plain"):
            assert r["avg_batch"] == 1  # no dynamic batching: one request per execution
    assert report["onnxruntime"]["1"]["median_ms"] > 0

    # generator capacity: every protocol × workers, closed and open loop, and the summary
    text = (outs["loadgen_capacity"] / "loadgen_capacity.md").read_text()
    assert "tritonserver 2.51" in text and "stand-in backend" in text and "Load average" in text
    summary = _rows(_section(text, "## Summary"))
    assert {f"{row[0]}/{row[1]}" for row in summary} == COMBOS
    closed = _rows(_section(text, "## Closed loop"))
    assert {f"{row[1]}/{row[2]}" for row in closed} == COMBOS
    opened = _rows(_section(text, "## Open loop"))
    assert {f"{row[0]}/{row[1]}" for row in opened} == COMBOS
    assert _rows(_section(text, "## Harness check"))
    assert "## Interpretation" in text
    report = json.loads((outs["loadgen_capacity"] / "loadgen_capacity.json").read_text())
    assert set(report["summary"]) == COMBOS
    for r in report["rows"]:
        assert r["requests"] > 0 and r["client_cores"] > 0 and r["server_cores"] > 0
        assert r["server_compute_infer_us"] > 0
