"""benchmarks/int8.py --quick: trains tiny models, builds FP32/dynamic/static INT8 with the pipeline, times every cell
and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "int8.py"
MODELS = {"digits": {"8×8 images"}, "sequence": {"6–24 tokens", "128 tokens"}, "encoder": {"6–24 tokens", "128 tokens"}}
VARIANTS = {"fp32", "dynamic", "static-minmax"}  # quick mode builds minmax only; fp32-pre is a reference on top


def test_int8_quick_run_covers_every_model_variant_and_batch(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]

    text = (tmp_path / "int8.md").read_text()
    for heading in ("## Method", "## Results", "## What the pipeline reported", "## Quantized nodes",
                    "## Where the time goes", "## Interpretation"):
        assert heading in text
    assert "onnxruntime" in text and "CPUExecutionProvider" in text and "avx512_vnni" in text

    table = text.split("## Results", 1)[1].strip().split("\n\n", 1)[0]  # the first table of the section
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| ")][1:]
    seen = {(r[0], r[1], r[2], r[3]) for r in rows}
    for model, inputs in MODELS.items():
        for setting in inputs:
            for batch in ("1", "32"):
                for variant in VARIANTS:
                    assert (model, setting, batch, variant) in seen, (model, setting, batch, variant)
    assert rows == [r for r in rows if len(r) == 13]
    assert run.stdout.count("| dynamic |") == 10  # the same table on stdout: 5 inputs × 2 batches

    report = json.loads((tmp_path / "int8.json").read_text())
    assert set(report["models"]) == set(MODELS)
    for model in report["models"].values():
        assert set(model["files"]) >= VARIANTS
        for cells in model["cells"].values():
            assert set(cells) == {"1", "32"}
            for cell in cells.values():
                for v in VARIANTS:
                    assert cell["variants"][v]["median_ms"] > 0 and cell["variants"][v]["throughput_sps"] > 0
        for accuracy in model["accuracy"].values():
            assert set(accuracy) >= VARIANTS and all(0 <= a["agreement"] <= 1 for a in accuracy.values())
        assert model["graphs"]["dynamic"]["written"].get("DynamicQuantizeLinear", 0) > 0
        assert model["graphs"]["static-minmax"]["written"].get("QuantizeLinear", 0) > 0
        assert model["builds"]["dynamic"]["report"]["technique"].startswith("onnxruntime dynamic INT8")
    assert report["environment"]["versions"]["onnxruntime"]
    assert "flags" in report["environment"]["cpu"]
