"""``tritonize monitor`` against a real tritonserver: a known load inside the measured interval (N requests of
batch B to the toy model, S good and F failing requests to a python model that fails negative inputs) must come
out of ``--once --output json`` as exactly those counts, equal to ``statistics()`` read right after; an idle
interval reads zero; the live view draws the model names under a pseudo-terminal and ends on SIGINT with exit 0."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritonize.client.client import TritonClient
from tritonize.client.errors import ServerError
from tritonize.deploy.local import LocalTriton

from .conftest import STUB_PREAMBLE

TOY = "toy_onnx"  # toy_repo's ONNX model: max_batch_size 8, two CPU instances, no dynamic batcher
N, B = 12, 3  # requests of batch B to the toy model
S, F = 5, 4  # good and failing requests to the flaky model

FLAKY_MODEL = STUB_PREAMBLE + '''

class TritonPythonModel:
    def execute(self, requests):  # one request per execution (no dynamic batcher)
        xs = [pb_utils.get_input_tensor_by_name(r, "x").as_numpy() for r in requests]
        if any((x < 0).any() for x in xs):  # a raise fails the execution: Triton counts its requests as failed
            raise RuntimeError("negative input")  # (an error response would count as a success)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("y", x)]) for x in xs]
'''


@pytest.fixture(scope="module")
def triton(toy_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    repo = tmp_path_factory.mktemp("monitor") / "repo"
    shutil.copytree(toy_repo, repo)
    (repo / "flaky" / "1").mkdir(parents=True)
    (repo / "flaky" / "1" / "model.py").write_text(FLAKY_MODEL)
    (repo / "flaky" / "config.pbtxt").write_text('''name: "flaky"
backend: "python"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
''')
    with LocalTriton(repo) as server:
        yield server


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tritonize.cli import main; main()", *args]


def _monitor(triton: LocalTriton, *args: str) -> list[str]:
    return _cli("-v", "monitor", "--url", triton.grpc_url, "--metrics-url", triton.metrics_url, *args)


def _stats(client: TritonClient, model: str) -> dict[str, Any]:
    (entry,) = client.statistics(model)
    return entry


def _send_load(client: TritonClient) -> None:
    toy = client.model(TOY)
    features = toy.info.inputs[0].name
    for _ in range(N):
        toy.infer({features: np.random.rand(B, 4).astype(np.float32)})
    flaky = client.model("flaky")
    for i in range(S + F):
        x = np.ones((1, 4), np.float32) * (-1 if i < F else 1)
        if i < F:
            with pytest.raises(ServerError, match="negative input"):
                flaky.infer({"x": x})
        else:
            flaky.infer({"x": x})


def _once_with_load(triton: LocalTriton, client: TritonClient, interval_s: float) -> dict[str, Any]:
    """``--once --output json``, the load sent after its first snapshot (its debug line) and done before its
    second one."""
    process = subprocess.Popen(_monitor(triton, "--once", "--output", "json", "--interval", str(interval_s)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "snapshot:" in line:
            break
    else:
        pytest.fail(f"no first snapshot: {''.join(seen)}")
    started = time.monotonic()
    _send_load(client)
    assert time.monotonic() - started < interval_s, "the load outlasted the interval: raise interval_s"
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + err
    return dict(json.loads(out))


def _by_model(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {(m["model"]): m for m in report["models"] if m["version"] == "1"}


def test_once_json_equals_the_servers_statistics_for_a_known_load(triton: LocalTriton) -> None:
    with TritonClient(triton.grpc_url) as client:
        client.model(TOY), client.model("flaky")  # configs read before the interval
        base = {m: _stats(client, m) for m in (TOY, "flaky")}
        report = _once_with_load(triton, client, interval_s=8.0)
        after = {m: _stats(client, m) for m in (TOY, "flaky")}
    assert report["metrics"] is True and report["url"] == triton.grpc_url
    rows = _by_model(report)
    assert set(rows) == {TOY, "toy_torchscript", "flaky"}
    toy, flaky = rows[TOY], rows["flaky"]

    # the interval's counts are exactly the load
    assert toy["interval"] == {"success": N, "fail": 0, "inference_count": N * B, "execution_count": N}
    assert flaky["interval"]["success"] == S and flaky["interval"]["fail"] == F
    assert flaky["failures"] == F and flaky["failures_per_s"] == pytest.approx(F / report["interval_s"])
    assert toy["batch"] == B  # no dynamic batcher: one request per execution
    assert rows["toy_torchscript"]["interval"]["success"] == 0

    # cumulative counts: what statistics() reads right after, and the baseline plus the load
    for model, sent, failed in ((TOY, N, 0), ("flaky", S, F)):
        cumulative, server, before = rows[model]["cumulative"], after[model], base[model]
        stats = server["inference_stats"]
        assert cumulative["success"] == stats["success"]["count"] == before["inference_stats"]["success"]["count"] \
            + sent
        assert cumulative["fail"] == stats.get("fail", {}).get("count", 0) == \
            before["inference_stats"].get("fail", {}).get("count", 0) + failed
        assert cumulative["inference_count"] == server["inference_count"]
        assert cumulative["execution_count"] == server["execution_count"]
        assert cumulative["batch_executions"] == {str(b["batch_size"]): b["compute_infer"]["count"]
                                                  for b in server["batch_stats"]}
    assert after[TOY]["inference_count"] - base[TOY]["inference_count"] == N * B
    assert after[TOY]["execution_count"] - base[TOY]["execution_count"] == N

    # rates over the measured interval
    assert 8.0 <= report["interval_s"] < 12.0
    assert toy["requests_per_s"] > 0 and toy["requests_per_s"] == pytest.approx(N / report["interval_s"])
    assert toy["inferences_per_s"] == pytest.approx(N * B / report["interval_s"])

    # latencies: p50/p99 from Triton's summaries (the launcher turns them on); means equal the statistics'
    assert toy["latency_source"] == "summary"
    for key, stage in (("queue_ms", "queue"), ("compute_ms", "compute_infer")):
        delta = {k: after[TOY]["inference_stats"][stage][k] - base[TOY]["inference_stats"][stage].get(k, 0)
                 for k in ("count", "ns")}
        assert delta["count"] == N
        assert toy[key]["mean"] == pytest.approx(delta["ns"] / delta["count"] / 1e6)
        assert 0 <= toy[key]["p50"] <= toy[key]["p99"]
    assert toy["compute_ms"]["p50"] > 0

    # instance use: the config's two instances, busy for part of the interval
    assert toy["instances"] == 2 and rows["flaky"]["instances"] == 1
    assert 0 < toy["instance_use"] < 1


def test_idle_interval_reads_zero(triton: LocalTriton) -> None:
    with TritonClient(triton.grpc_url) as client:
        before = _stats(client, TOY)
        done = subprocess.run(_monitor(triton, "--once", "--output", "json", "--interval", "1", "--model", TOY),
                              capture_output=True, text=True, timeout=60)
        after = _stats(client, TOY)
    assert done.returncode == 0, done.stderr
    (toy,) = json.loads(done.stdout)["models"]
    assert before == after  # nothing ran
    assert toy["model"] == TOY and toy["requests_per_s"] == toy["failures_per_s"] == toy["inferences_per_s"] == 0
    assert toy["interval"] == {"success": 0, "fail": 0, "inference_count": 0, "execution_count": 0}
    assert toy["queue_ms"] == toy["compute_ms"] == {"p50": None, "p99": None, "mean": None}
    assert toy["batch"] is None and toy["instance_use"] == 0
    assert toy["cumulative"]["success"] == after["inference_stats"]["success"]["count"]


def test_once_table_and_an_unknown_model(triton: LocalTriton) -> None:
    done = subprocess.run(_monitor(triton, "--once", "--interval", "0.5"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[:3] == ["model", "version", "req/s"]
    assert sorted(line.split()[0] for line in lines) == ["flaky", TOY, "toy_torchscript"]
    assert "p50/p99 from Triton's summaries" in done.stderr
    missing = subprocess.run(_monitor(triton, "--once", "--model", "nope"), capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode != 0 and missing.stdout == ""
    (line,) = [x for x in missing.stderr.splitlines() if x.startswith("error:")]
    assert "nope" in line and "Traceback" not in missing.stderr


def test_live_view_draws_the_models_and_ends_on_sigint(triton: LocalTriton) -> None:
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "LINES": "40", "TERM": "xterm"}
    process = subprocess.Popen(_cli("monitor", "--url", triton.grpc_url, "--metrics-url", triton.metrics_url,
                                    "--interval", "0.5"), stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not all(m.encode() in screen for m in (TOY, "flaky", "req/s")):
            if select.select([main], [], [], 0.5)[0]:
                screen += os.read(main, 65536)
        assert all(m.encode() in screen for m in (TOY, "toy_torchscript", "flaky", "req/s")), screen.decode()
        process.send_signal(signal.SIGINT)
        rc = process.wait(timeout=20)
        with contextlib.suppress(OSError):  # EIO: the other end closed, the output is over
            while select.select([main], [], [], 0.2)[0]:
                screen += os.read(main, 65536)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    assert rc == 0, screen.decode()
    assert b"Traceback" not in screen and b"KeyboardInterrupt" not in screen

