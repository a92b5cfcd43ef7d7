"""Issue 10, item 4: when the server dies (kill -9) or was never there, every caller says so within its stated
deadline + 10 %: ``infer_batch`` within its ``timeout_s`` (one deadline for the whole call, not one per part),
``bench`` within one measurement window + ``PROBE_TIMEOUT_S``, ``bench``'s readiness wait within
``--ready-timeout``, and ``serve`` within 2 s. A model or version the server lacks fails at once (also tested in test_client)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.client import InferenceTimeoutError, TritonClient
from tritonize.client.aio import AsyncTritonClient
from tritonize.client.bench.measure import PROBE_TIMEOUT_S
from tritonize.deploy.local import LocalTriton, free_port

from .conftest import Served
from .test_serve import CLI

SLACK = 1.10  # the stated deadline + 10 %


def _kill_after(server: LocalTriton, delay_s: float, killed: list[float]) -> threading.Thread:
    assert server.process is not None
    pid = server.process.pid

    def kill() -> None:
        time.sleep(delay_s)
        os.kill(pid, signal.SIGKILL)
        killed.append(time.monotonic())

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


# 40,000 samples at max_batch_size 8 are 5,000 requests: far more than run before the kill.
BIG = {"features": np.random.default_rng(0).standard_normal((40_000, 4)).astype(np.float32)}
TIMEOUT_S = 6.0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_infer_batch_says_the_server_died_within_its_deadline(toy_repo: Path, protocol: str) -> None:
    with LocalTriton(toy_repo) as server:
        url = server.grpc_url if protocol == "grpc" else server.http_url
        with TritonClient(url, timeout_s=TIMEOUT_S) as client:
            model = client.model("toy_onnx")
            model.infer_batch({"features": BIG["features"][:16]})  # connected and served
            _kill_after(server, 0.5, [])
            start = time.monotonic()
            with pytest.raises(InferenceTimeoutError, match=r"server was unreachable \(stopped or died\?\)"):
                model.infer_batch(BIG, max_concurrency=4)
            elapsed = time.monotonic() - start
    # Before: each part had its own deadline, so a call of many parts ran for a multiple of it.
    assert elapsed <= TIMEOUT_S * SLACK, elapsed


def test_async_infer_batch_says_the_server_died_within_its_deadline(toy_repo: Path) -> None:
    async def run(server: LocalTriton) -> float:
        async with AsyncTritonClient(server.grpc_url, timeout_s=TIMEOUT_S) as client:
            model = await client.model("toy_onnx")
            await model.infer_batch({"features": BIG["features"][:16]})
            _kill_after(server, 0.5, [])
            start = time.monotonic()
            with pytest.raises(InferenceTimeoutError, match="server was unreachable"):
                await model.infer_batch(BIG, max_concurrency=4)
            return time.monotonic() - start

    with LocalTriton(toy_repo) as server:
        elapsed = asyncio.run(run(server))
    assert elapsed <= TIMEOUT_S * SLACK, elapsed


def test_bench_says_the_server_died_within_a_window_and_the_probe(toy_repo: Path) -> None:
    interval_s = 1.0
    with LocalTriton(toy_repo) as server:
        killed: list[float] = []
        _kill_after(server, 4.0, killed)  # after readiness, warm-up and a few windows
        result = CliRunner().invoke(main, ["bench", "toy_onnx", "--url", server.grpc_url, "--engine", "builtin",
                                           "--concurrency", "2", "--warmup-s", "0.5", "--max-trials", "1000",
                                           "--stability", "0.01",
                                           "--measurement-interval-ms", str(int(interval_s * 1000))])
        ended = time.monotonic()
    assert killed, "bench ended before the kill: nothing was tested"
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    assert "concurrency 2: the server at" in lines[-1] and "stopped answering" in lines[-1], lines[-1]
    assert ended - killed[0] <= (interval_s + PROBE_TIMEOUT_S) * SLACK, ended - killed[0]


def _bench_error(*args: str) -> tuple[str, float]:
    start = time.monotonic()
    result = CliRunner().invoke(main, ["bench", "--engine", "builtin", "--concurrency", "1", *args])
    elapsed = time.monotonic() - start
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0], elapsed


def test_bench_on_a_dead_url_fails_within_its_ready_timeout() -> None:
    line, elapsed = _bench_error("toy_onnx", "--url", f"127.0.0.1:{free_port()}", "--ready-timeout", "3")
    assert "not ready after 3 s: the server was unreachable" in line, line
    assert elapsed <= 3 * SLACK, elapsed  # before: the wait, then a 60 s retried index call on top


def test_bench_of_a_model_the_server_lacks_fails_at_once(served: Served) -> None:
    line, elapsed = _bench_error("nosuch_model", "--url", served.server.grpc_url)
    assert "model 'nosuch_model': not in the server's repository" in line and "two_heads" in line, line
    assert elapsed < 5, elapsed  # before: 61 s and "not ready"


def test_bench_of_a_version_the_server_lacks_fails_at_once(served: Served) -> None:
    line, elapsed = _bench_error("latest2_onnx", "--version", "9", "--url", served.server.grpc_url)
    assert "version 9 is not served (served: 2, 3)" in line, line
    assert elapsed < 5, elapsed


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_serve_says_the_server_died_within_2_s(toy_repo: Path) -> None:
    serve = subprocess.Popen([*CLI, "serve", str(toy_repo),
                              "--http-port", str(free_port()), "--grpc-port", str(free_port()),
                              "--metrics-port", str(free_port())],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        for line in serve.stderr:  # "Ctrl-C to stop" once the models are ready
            if "Ctrl-C to stop" in line:
                break
        else:
            pytest.fail(f"serve did not start: {serve.wait()}")
        (server,) = _children(serve.pid)
        os.kill(server, signal.SIGKILL)
        killed = time.monotonic()
        code = serve.wait(timeout=30)
        elapsed = time.monotonic() - killed
        rest = serve.stderr.read()
    finally:
        if serve.poll() is None:
            serve.kill()
    assert code == 1, rest
    assert "error: tritonserver died (killed by SIGKILL)" in rest and "Traceback" not in rest, rest
    assert elapsed <= 2 * SLACK, elapsed
