"""`tritonize bench` against the local Triton: both load modes, the numbers it reports checked against their raw
data and against Triton's own statistics, SLA exit codes, and an open loop that does not hide a stalling server."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.client.bench.harness import BenchRequest, run_benchmark
from tritonize.client.bench.measure import Settings, percentile
from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import build
from tritonize.generator.config_spec import InstanceGroup
from tritonize.generator.request import ModelRequest

from .conftest import STUB_PREAMBLE

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")

# A python-backend model that returns its input and sleeps STALL_MS on every STALL_EVERY-th request.
STALL_MODEL = STUB_PREAMBLE + '''

class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.every = int(params["STALL_EVERY"]["string_value"])
        self.seconds = int(params["STALL_MS"]["string_value"]) / 1000
        self.count = 0

    def execute(self, requests):
        responses = []
        for request in requests:
            self.count += 1
            if self.every and self.count % self.every == 0:
                time.sleep(self.seconds)
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", x)]))
        return responses
'''


def _stall_model(repo: Path, name: str, every: int) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(STALL_MODEL)
    (repo / name / "config.pbtxt").write_text(f'''name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters {{ key: "STALL_EVERY" value: {{ string_value: "{every}" }} }}
parameters {{ key: "STALL_MS" value: {{ string_value: "200" }} }}
''')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    repo = tmp_path_factory.mktemp("bench_repo")
    build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("cpu", 1),))], repo)
    _stall_model(repo, "stall", every=50)
    _stall_model(repo, "steady", every=0)
    with LocalTriton(repo) as triton:
        yield triton


FAST = Settings(interval_s=1.5, warmup_s=0.5, max_trials=6, stability=0.2)


def _bench(server: LocalTriton, model: str, mode: str, levels: tuple[float, ...], protocol: str = "grpc",
           settings: Settings = FAST, distribution: str = "constant") -> list:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    request = BenchRequest(model, url=url, mode=mode, levels=levels, settings=settings, engine="builtin",
                           distribution=distribution, metrics_url=server.metrics_url)
    return run_benchmark(request).rows


@pytest.mark.parametrize(("mode", "levels", "protocol", "workers"), [
    ("concurrency", (1.0, 4.0), "grpc", 1),
    ("concurrency", (4.0,), "grpc", 2),  # worker processes: their records arrive late and must still count
    ("request_rate", (150.0,), "http", 1),
])
def test_reported_numbers_match_raw_data_and_tritons_statistics(server: LocalTriton, mode: str,
                                                                levels: tuple[float, ...], protocol: str,
                                                                workers: int) -> None:
    settings = dataclasses.replace(FAST, workers=workers)
    for row in _bench(server, "toy_onnx", mode, levels, protocol, settings=settings):
        # throughput is the completed requests over the measured windows
        assert row.throughput == pytest.approx(row.requests / row.window_s, rel=1e-9)
        assert row.server_requests is not None
        assert row.throughput == pytest.approx(row.server_requests / row.window_s, rel=0.01)  # Triton agrees
        # percentiles are perf_analyzer's nearest rank over the raw latencies
        raw = sorted(row.latencies_us)
        assert len(raw) == row.requests
        for p, value in row.percentiles_us.items():
            assert value == raw[int(p / 100 * (len(raw) - 1) + 0.5)]
        assert row.avg_us == pytest.approx(float(np.mean(raw)))
        # the server-side breakdown adds up to Triton's own per-request total
        assert row.server_request_us is not None and row.server_request_us > 0
        assert row.server_breakdown_us == pytest.approx(row.server_request_us, rel=0.10)
        assert row.errors == 0 and row.client_send_us > 0
    if mode == "request_rate":
        assert row.throughput == pytest.approx(150, rel=0.1)


def test_open_loop_shows_a_stalling_server(server: LocalTriton) -> None:
    settings = Settings(interval_s=3.0, warmup_s=0.5, max_trials=4, stability=0.5)
    steady = _bench(server, "steady", "request_rate", (50.0,), settings=settings)[0]
    stalled = _bench(server, "stall", "request_rate", (50.0,), settings=settings)[0]
    # 1 request in 50 sleeps 200 ms; the requests scheduled behind it wait too, measured from their schedule.
    # p99 rises above the normal latency (the steady run's median: its p99 moves with any hiccup of the machine)
    # by at least the stall
    assert stalled.percentiles_us[99] - steady.percentiles_us[50] >= 200_000 * 0.95
    late = [x for x in stalled.latencies_us if x >= 100_000]
    assert len(late) >= 3 * len([x for x in stalled.latencies_us if x >= 200_000])  # queued behind each stall


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 99))


def test_cli_sla_exit_codes_and_reports(server: LocalTriton, tmp_path: Path) -> None:
    common = ["bench", "toy_onnx", "--url", server.grpc_url, "--engine", "builtin", "--concurrency", "2",
              "--measurement-interval-ms", "1000", "--warmup-s", "0.3", "--stability", "25",
              "--metrics-url", server.metrics_url]
    passing = CliRunner().invoke(main, [*common, "--sla", "p99<=2s", "--sla", "errors<=1%", "--sla",
                                        "throughput>=10/s@2", "--report", str(tmp_path / "report")])
    assert passing.exit_code == 0, passing.output
    assert "p99<=2s" in passing.stdout and "FAIL" not in passing.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["engine"] == "builtin" and len(report["model_config_sha256"]) == 64
    assert report["levels"][0]["level"] == 2 and report["metrics"]["available"] is True
    assert report["metrics"]["requests"] > 0 and all(s["passed"] for s in report["sla"])
    assert (tmp_path / "report" / "latency_throughput.png").stat().st_size > 1000
    header = (tmp_path / "report" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue")
    failing = CliRunner().invoke(main, [*common, "--sla", "p50<=1us", "--sla", "throughput>=1000000/s"])
    assert failing.exit_code == 1
    assert failing.stdout.count("FAIL") == 2 and "SLA missed: 2 of 2" in failing.stderr
    usage = CliRunner().invoke(main, [*common, "--sla", "p99 under 20ms"])
    assert usage.exit_code == 2 and "--sla 'p99 under 20ms'" in usage.stderr


FAKE_PERF_ANALYZER = """#!{python}
import shutil, sys
args = sys.argv[1:]
print(open({out!r}).read())  # a recorded perf_analyzer run: levels 2 and 4 measured, 6 did not stabilise
shutil.copy({csv!r}, args[args.index("-f") + 1])
"""


def test_cli_with_perf_analyzer_reports_unmeasured_levels(server: LocalTriton, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The perf_analyzer engine end to end (it cannot be installed here: a stand-in replays a recorded run)."""
    import sys

    fixtures = Path(__file__).parents[1] / "fixtures" / "perf_analyzer"
    exe = tmp_path / "perf_analyzer"
    exe.write_text(FAKE_PERF_ANALYZER.format(python=sys.executable, out=str(fixtures / "unstable.out"),
                                             csv=str(fixtures / "unstable.csv")))
    exe.chmod(0o755)
    monkeypatch.setenv("TRITONIZE_PERF_ANALYZER", str(exe))
    result = CliRunner().invoke(main, ["bench", "toy_onnx", "--url", server.grpc_url, "--concurrency", "2,4,6",
                                       "--sla", "p99<=5ms", "--report", str(tmp_path / "report"),
                                       "--metrics-url", server.metrics_url])
    assert result.exit_code == 1, result.output
    assert "level 6: no result: perf_analyzer did not stabilise" in result.stderr
    assert "SLA not verified: 1 level(s) have no result" in result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["engine"] == "perf_analyzer" and [r["level"] for r in report["levels"]] == [2, 4]
    assert report["levels"][1]["percentiles_us"]["99"] == 1872
