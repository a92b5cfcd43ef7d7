"""What the gateway adds over the typed client, on the local Triton, at batch 1.

    .venv/bin/python benchmarks/gateway_overhead.py            # writes benchmarks/results/gateway_overhead.*
    .venv/bin/python benchmarks/gateway_overhead.py --quick    # smoke run: writes nothing unless --out DIR

A tensor model (tests/unit/toy_models.py:mlp, ONNX, float32 [4]) and the glyphs example's image ensemble (PNG
bytes in) are built into a temporary repository and served by ``LocalTriton``; ``tritonize gateway`` runs in
front of it (a uvicorn subprocess, gRPC to Triton). Per round, each target is called sequentially N times through
the gateway (a JSON body, or the PNG as a multipart upload, over one keep-alive connection) and N times through
the typed client directly (``TritonClient`` over gRPC, the same bytes); the sides alternate round by round, order
reversed every round. The gateway's caller is the standard library's ``http.client``, the lightest Python HTTP
client, so that what is measured is the gateway; a third side calls it through httpx, to show what a heavier
client adds on its own (its cost, not the gateway's). Reported: median, p90, p99 per side over all requests, the
median's spread across rounds (noise), and the gateway's added median (target: at most 2 ms).
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import environment

from tritonize.client import TritonClient
from tritonize.deploy.local import LocalTriton, free_port

TOY = str(Path(__file__).parents[1] / "tests" / "unit" / "toy_models.py")
TARGET_MS = 2.0


def _build(repo: Path) -> None:
    from tritonize.generator.build import build
    from tritonize.generator.request import ModelRequest

    build([ModelRequest("glyphs", "tritonize.generator.examples.glyphs:build_glyph_classifier", formats=("onnx",),
                        max_batch_size=8),
           ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",))], repo)


def _gateway(repo: Path, url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "from tritonize.cli import main; main()", "gateway", str(repo),
                             "--url", url, "--protocol", "grpc", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the gateway did not start: {log.read_text()[-2000:]}")


def _multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "tritonize-benchmark-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _poster(port: int) -> Callable[[str, bytes, str], None]:
    """POST over one keep-alive ``http.client`` connection (opened again when uvicorn closed it after its 5 s
    keep-alive timeout, between targets); a non-200 answer stops the benchmark."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(path: str, body: bytes, content_type: str) -> None:
        try:
            conn.request("POST", path, body=body, headers={"content-type": content_type})
            answer = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            conn.request("POST", path, body=body, headers={"content-type": content_type})
            answer = conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise SystemExit(f"{path}: {answer.status} {data[:300]!r}")
    return post


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "n": int(a.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200, help="per side per round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rounds, n = (3, 30) if args.quick else (args.rounds, args.requests)
    out = args.out or (None if args.quick else Path(__file__).parent / "results")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        _build(repo)
        from tritonize.generator.examples.glyphs import STEPS
        from tritonize.generator.preprocess import reference

        png = reference.synthesized_images(STEPS, count=1, seed=0)[0]
        x = np.random.default_rng(0).standard_normal(4).astype(np.float32)
        port = free_port()
        with LocalTriton(repo) as triton, TritonClient(triton.grpc_url) as typed:
            proc = _gateway(repo, triton.grpc_url, port, Path(tmp) / "gateway.log")
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as heavy:
                    post = _poster(port)
                    toy, glyphs = typed.model("toy_onnx"), typed.model("glyphs_onnx_ensemble")
                    tensor = json.dumps({"features": x.tolist()}).encode()
                    upload, upload_type = _multipart("image_bytes", "g.png", png, "image/png")
                    calls = {
                        "tensor": {
                            "gateway": lambda: post("/predict/toy_onnx", tensor, "application/json"),
                            "typed": lambda: toy.infer(features=x[None]),
                            "gateway_httpx": lambda: heavy.post("/predict/toy_onnx", content=tensor,
                                                                headers={"content-type": "application/json"})},
                        "image": {
                            "gateway": lambda: post("/predict/glyphs_onnx_ensemble", upload, upload_type),
                            "typed": lambda: glyphs.infer(image_bytes=np.array([[png]], dtype=object)),
                            "gateway_httpx": lambda: heavy.post("/predict/glyphs_onnx_ensemble", content=upload,
                                                                headers={"content-type": upload_type})}}
                    results = {}
                    for target, sides in calls.items():
                        for fn in sides.values():  # warm up
                            for _ in range(20):
                                fn()
                        lat: dict[str, list[float]] = {s: [] for s in sides}
                        medians: dict[str, list[float]] = {s: [] for s in sides}
                        for r in range(rounds):
                            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                            for side in order:
                                fn, part = sides[side], []
                                for _ in range(n):
                                    t0 = time.perf_counter()
                                    fn()
                                    part.append((time.perf_counter() - t0) * 1e3)
                                lat[side] += part
                                medians[side].append(float(np.median(part)))
                        stats = {s: {**_stats(lat[s]), "round_medians_ms": medians[s],
                                     "round_spread_ms": max(medians[s]) - min(medians[s])} for s in sides}
                        added = [g - t for g, t in zip(medians["gateway"], medians["typed"])]
                        results[target] = {**stats, "added_median_ms": stats["gateway"]["median_ms"]
                                           - stats["typed"]["median_ms"],
                                           "added_per_round_ms": added}
            finally:
                proc.terminate()
                proc.wait(10)
    record = {"benchmark": "gateway_overhead", "rounds": rounds, "requests_per_round": n, "target_ms": TARGET_MS,
              "results": results, **environment("2.51", ("fastapi", "uvicorn", "httpx"))}
    lines = ["# Gateway overhead over the typed client (batch 1, sequential, local Triton, gRPC)", "",
             f"{rounds} rounds x {n} requests per side, alternated; {record['date']}; "
             f"{record['machine']['cpu']}, {record['machine']['cores']} cores.", "",
             "| target | side | median ms | p90 ms | p99 ms | spread of round medians ms |",
             "|---|---|---|---|---|---|"]
    for target, res in results.items():
        for side in ("typed", "gateway", "gateway_httpx"):
            s = res[side]
            lines.append(f"| {target} | {side} | {s['median_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} | "
                         f"{s['round_spread_ms']:.3f} |")
    lines.append("")
    for target, res in results.items():
        a = res["added_per_round_ms"]
        verdict = "meets" if res["added_median_ms"] <= TARGET_MS else "MISSES"
        lines.append(f"- {target}: the gateway adds {res['added_median_ms']:.3f} ms median (per round "
                     f"{min(a):.3f}..{max(a):.3f} ms): {verdict} the {TARGET_MS} ms target")
    for target, res in results.items():
        lines.append(f"- {target}: the same gateway called through httpx reads "
                     f"{res['gateway_httpx']['median_ms'] - res['gateway']['median_ms']:.3f} ms slower than through "
                     "http.client: the caller's own cost")
    lines += ["", "gateway: called with http.client (stdlib, keep-alive); gateway_httpx: with httpx (keep-alive); "
              "typed: tritonize's TritonClient over gRPC, straight to Triton."]
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gateway_overhead.md").write_text(text)
        (out / "gateway_overhead.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
