"""The local stand-in backends against Triton's native onnxruntime and pytorch backends, side by side.

    .venv/bin/python benchmarks/standin_vs_native.py [--native DIR]   # ~8 min on 2 cores: writes results/
    .venv/bin/python benchmarks/standin_vs_native.py --quick          # smoke run: writes nothing unless --out

Both sides are the same tritonserver 2.51 binary (the nvidia-pytriton wheel's) serving the same repository, the
bundled example built by tritonize: once with tritonize's stand-ins (Python-based backends inside Triton's python
backend stub, what ``tritonize serve`` runs) and once with the native backends built from upstream r24.10 by
``../shared/native/build.sh`` (into ``--native``, built first when missing; about 5 minutes). The native pytorch
backend links the same torch 2.13.0; the native onnxruntime backend has ONNX Runtime 1.19.2, the stand-in the
onnxruntime this environment has.

For every example model, the built-in generator (gRPC, closed loop, batch-1 requests) measures concurrency 1 and
16; sequence models get 32-token inputs. The two sides alternate servers round by round (stand-in first, then
native first), and each cell is the mean of its rounds; the spread between rounds is reported as the noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tritonize.client.bench.harness import BenchRequest, run_benchmark
from tritonize.client.bench.measure import Settings
from tritonize.deploy.local import LocalTriton

THIS = Path(__file__).resolve()
sys.path.insert(0, str(THIS.parent))
from machine import environment  # noqa: E402

RESULTS = THIS.parent / "results"
BUILD_SH = THIS.parents[2] / "shared" / "native" / "build.sh"
SPEC = THIS.parents[1] / "model_repository" / "tritonize.toml"
LEVELS = (1, 16)
SHAPES = {"sequence": {"ids": (32,), "mask": (32,)}}
GOAL = 0.8  # issue 11: stand-in throughput >= 0.8 of native at concurrency 16


def measure(server: LocalTriton, models: list[str], settings: Settings) -> dict[tuple[str, int], dict[str, float]]:
    out = {}
    for model in models:
        for level in LEVELS:
            request = BenchRequest(model, url=server.grpc_url, levels=(float(level),), engine="builtin",
                                   shapes=SHAPES.get(model.split("_")[0], {}), settings=settings)
            row = run_benchmark(request).rows[0]
            out[model, level] = {"throughput": row.throughput, "p50_ms": row.percentiles_us[50] / 1e3,
                                 "p99_ms": row.percentiles_us[99] / 1e3}
            print(f"  {model:22} c={level:<3} {row.throughput:8.1f} infer/s  "
                  f"p99 {row.percentiles_us[99] / 1e3:6.2f} ms", flush=True)
    return out


def run(native: Path, rounds: int, settings: Settings, models: list[str] | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        shutil.copy(SPEC, repo / "tritonize.toml")
        subprocess.run([sys.executable, "-c", "from tritonize.cli import main; main()", "build",
                        str(repo / "tritonize.toml")], check=True, capture_output=True)
        models = models or sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
        cells: dict[str, list[dict[tuple[str, int], dict[str, float]]]] = {"stand-in": [], "native": []}
        for r in range(rounds):
            for side in (("stand-in", "native") if r % 2 == 0 else ("native", "stand-in")):
                print(f"round {r + 1}: {side}", flush=True)
                server = LocalTriton(repo, native=native if side == "native" else None)
                with server:
                    cells[side].append(measure(server, models, settings))
    rows = []
    for model in models:
        for level in LEVELS:
            row: dict[str, Any] = {"model": model, "concurrency": level}
            for side, reps in cells.items():
                values = [rep[model, level] for rep in reps]
                for key in ("throughput", "p50_ms", "p99_ms"):
                    row[f"{side} {key}"] = sum(v[key] for v in values) / len(values)
                tput = [v["throughput"] for v in values]
                row[f"{side} spread"] = max(tput) / min(tput) - 1
            row["ratio"] = row["stand-in throughput"] / row["native throughput"]
            rows.append(row)
    return {"rows": rows, "rounds": rounds, "settings": dataclasses.asdict(settings)}


def markdown(result: dict[str, Any], env: dict[str, Any]) -> str:
    lines = ["# Stand-in vs native backends (same tritonserver 2.51 binary, same repository)", "",
             f"{env['date']}, {env['machine']['cpu']}, {env['machine']['cores']} cores; "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
             "Built-in generator, gRPC, closed loop, batch-1 requests; sequence models 32 tokens. Each cell is the "
             f"mean of {result['rounds']} rounds, servers alternating (stand-in first, then native first); "
             "spread = max/min − 1 of throughput between rounds.", "",
             "| model | conc. | stand-in infer/s | native infer/s | ratio | stand-in p99 ms | native p99 ms "
             "| spread s / n |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['concurrency']} | {r['stand-in throughput']:,.0f} | "
                     f"{r['native throughput']:,.0f} | **{r['ratio']:.2f}** | {r['stand-in p99_ms']:.2f} | "
                     f"{r['native p99_ms']:.2f} | {r['stand-in spread']:.0%} / {r['native spread']:.0%} |")
    missing = [r["model"] for r in result["rows"] if r["concurrency"] == 16 and r["ratio"] < GOAL]
    lines += ["", f"Goal (issue 11): stand-in ≥ {GOAL} × native throughput at concurrency 16 for every model: "
              + (f"**missed by {', '.join(missing)}**." if missing else "**met**.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--native", type=Path, default=Path(tempfile.gettempdir()) / "tritonize-native")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (args.native / "bin" / "tritonserver").is_file():
        subprocess.run(["bash", str(BUILD_SH), str(args.native)], check=True)
    if args.quick:
        result = run(args.native, 1, Settings(interval_s=0.5, warmup_s=0.2, max_trials=3), ["digits_onnx"])
    else:
        result = run(args.native, 2, Settings(interval_s=1.5, warmup_s=0.5, max_trials=5), None)
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        env = environment("2.51.0", ("torch", "onnxruntime", "numpy"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "standin_vs_native.json").write_text(json.dumps({**env, **result}, indent=2) + "\n")
        (out / "standin_vs_native.md").write_text(markdown(result, env))
        print((out / "standin_vs_native.md").read_text())


if __name__ == "__main__":
    main()
