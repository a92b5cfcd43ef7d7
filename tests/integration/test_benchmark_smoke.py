"""benchmarks/client_overhead.py --quick: builds its model, serves it, measures every cell and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "client_overhead.py"
CELLS = {f"{protocol}/{mode}/{load}" for protocol in ("grpc", "http") for mode in ("sync", "async")
         for load in ("sequential", "concurrent")}


def test_client_overhead_quick_run_writes_all_cells(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]

    text = (tmp_path / "client_overhead.md").read_text()
    table = text.split("## Typed vs raw", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]  # no header
    assert sorted(rows) == sorted(CELLS)
    for heading in ("## Typed vs raw", "## gRPC vs HTTP", "## Client-side cost in isolation", "## Interpretation"):
        assert heading in text
    assert "tritonserver 2.51" in text

    report = json.loads((tmp_path / "client_overhead.json").read_text())
    assert set(report["cells"]) == CELLS
    for cell in report["cells"].values():
        for variant in ("raw", "typed"):
            assert cell[variant]["n"] > 0 and cell[variant]["median_us"] > 0
        assert cell["ratio_median"] > 0
    assert report["isolation"]["check_inputs_us"] > 0
    assert {"python", "tritonize", "tritonclient", "tritonserver", "numpy"} <= set(report["environment"]["versions"])

