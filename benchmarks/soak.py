"""Soak: does a long ``tritonize bench`` run stay flat? Memory of the load generator and of the server over time.

    .venv/bin/python benchmarks/soak.py                 # 10 minutes at concurrency 64: writes results/soak.md
    .venv/bin/python benchmarks/soak.py --minutes 0.5   # smoke run: writes nothing unless --out DIR

The no-op ONNX model of ``loadgen_capacity.py`` (the cheapest this server runs, so the most requests per second)
is served by ``LocalTriton``; one ``run_benchmark`` call (built-in engine, gRPC, closed loop at concurrency 64, one
worker: the asyncio generator runs in this process) measures windows of 10 s with a stability band of ±0.0001 %, so it
never stops early and runs for ``--minutes``. At the end of every window (the harness logs one line per window):
throughput and errors of that window, RSS of this process (the generator), of tritonserver and of its descendants
(the python-backend stubs that run the model). The judgement: RSS after warm-up (from the fifth window on: the
generator keeps four windows of records) stays within 10 % of its first value, for the generator and the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen_capacity as lc  # benchmarks/ is on sys.path when a benchmark runs as a script
import machine

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 64
WINDOW_S = 10.0
FLAT = 0.10  # RSS after warm-up within this fraction of its value at the first measured window
WARMUP_WINDOWS = 4  # the generator keeps the records of the last 4 windows: memory levels off after them
_WINDOW = re.compile(r"window (\d+): ([\d,.]+) infer/s, p99 ([\d.na]+) ms, (\d+) errors")


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help=f"where to write soak.md/.json (default: {RESULTS} for a full run)")
    args = parser.parse_args(argv)
    full = args.minutes >= 10
    out_dir = args.out or (RESULTS if full else None)

    from tritonize.client.bench.harness import BenchRequest, run_benchmark
    from tritonize.client.bench.measure import Settings
    from tritonize.deploy.local import LocalTriton, http_json

    windows = max(3, round(args.minutes * 60 / WINDOW_S))
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tritonize-soak-") as tmp:
        repo = Path(tmp) / "repo"
        print(f"building {lc.MODEL_NAME} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(Path(lc.__file__)), "--build-into", str(repo)], check=True)
        with LocalTriton(repo) as server:
            assert server.process is not None
            pid = server.process.pid
            version = str((http_json(server.http_url, "/v2") or {}).get("version", "unknown"))
            started = time.monotonic()

            class AtWindowEnd(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    match = _WINDOW.search(record.getMessage())
                    if not match:
                        return
                    stubs = lc.descendants(pid)
                    samples.append({
                        "t_s": round(time.monotonic() - started, 1), "window": int(match.group(1)),
                        "infer_per_s": float(match.group(2).replace(",", "")), "errors": int(match.group(4)),
                        "client_rss_mb": round(rss_mb(os.getpid()), 1), "server_rss_mb": round(rss_mb(pid), 1),
                        "stubs_rss_mb": round(sum(rss_mb(p) for p in stubs), 1)})
                    print(f"  {samples[-1]}", file=sys.stderr, flush=True)

            log = logging.getLogger("tritonize.measure")
            log.addHandler(AtWindowEnd())
            log.setLevel(logging.INFO)
            settings = Settings(interval_s=WINDOW_S, warmup_s=5.0, stability=1e-6, max_trials=windows)  # never "stable"
            request = BenchRequest(lc.MODEL_NAME, url=server.grpc_url, protocol="grpc", mode="concurrency",
                                   levels=(float(CONCURRENCY),), settings=settings, engine="builtin",
                                   metrics_url=server.metrics_url)
            result = run_benchmark(request)
    return report(samples, result.rows[0], version, args.minutes, out_dir)


def _spread(values: list[float]) -> float:
    """Largest departure from the first value, as a fraction of it."""
    return max(abs(v - values[0]) for v in values) / values[0] if values and values[0] else 0.0


def report(samples: list[dict[str, Any]], row: Any, version: str, minutes: float, out_dir: Path | None) -> int:
    measured = samples[WARMUP_WINDOWS:]
    client = _spread([s["client_rss_mb"] for s in measured])
    server = _spread([s["server_rss_mb"] + s["stubs_rss_mb"] for s in measured])
    errors = sum(s["errors"] for s in samples)
    requests = sum(s["infer_per_s"] * WINDOW_S for s in samples)
    verdict = "flat" if client <= FLAT and server <= FLAT else "NOT flat"
    env = machine.environment(version, ("numpy", "grpcio", "onnxruntime"))
    lines = [
        "# Soak: memory over a long `tritonize bench` run", "",
        f"{env['date']} · {env['machine']['cpu']} ({env['machine']['cores']} usable cores) · {env['machine']['os']}",
        "· versions " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), "",
        f"Command: `python benchmarks/soak.py --minutes {minutes:g}`. No-op ONNX model on the local Triton, built-in "
        f"generator, gRPC, closed loop at concurrency {CONCURRENCY}, one worker (this process), windows of "
        f"{WINDOW_S:g} s, stability band ±0.0001 % (never stable: runs every window). RSS from "
        "`/proc/<pid>/status` at the end of each window: the generator (this process), tritonserver, and its "
        "descendants (the python-backend stubs).", "",
        f"**Result: {verdict}.** After {WARMUP_WINDOWS} warm-up windows the generator's RSS stayed within "
        f"{client:.1%} of its first measured value and the server's (tritonserver + stubs) within {server:.1%} "
        f"(target: {FLAT:.0%}). {requests:,.0f} requests, {errors} errors; the run's reported level: "
        f"{row.throughput:,.0f} infer/s, p99 {row.percentiles_us[99] / 1e3:.2f} ms.", "",
        "| t (s) | window | infer/s | errors | generator RSS MB | tritonserver RSS MB | stubs RSS MB |",
        "|---|---|---|---|---|---|---|",
        *(f"| {s['t_s']:g} | {s['window']} | {s['infer_per_s']:,.0f} | {s['errors']} | {s['client_rss_mb']:.1f} | "
          f"{s['server_rss_mb']:.1f} | {s['stubs_rss_mb']:.1f} |" for s in samples),
        "",
        "Noise: the machine is shared (2 cores for generator, server and stub); throughput per window varies with "
        "it, memory should not. Before issue 10 the generator kept every window's records (~250 B per request: "
        "74 MB → 373 MB over 300 s at this load); it now keeps the last four windows'.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "soak.md").write_text(text)
        (out_dir / "soak.json").write_text(json.dumps({"environment": env, "samples": samples,
                                                       "row": dataclasses.asdict(row) | {"latencies_us": None},
                                                       "client_spread": client, "server_spread": server},
                                                      indent=2, default=str) + "\n")
    return 0 if verdict == "flat" else 1


if __name__ == "__main__":
    sys.exit(main())
