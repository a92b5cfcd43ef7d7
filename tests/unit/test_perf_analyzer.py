"""perf_analyzer runner: options, command lines, output parsing, and run() against a fake perf_analyzer that replays
recorded outputs (tests/fixtures/perf_analyzer, see its README)."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from tritonize.client.bench.perf_analyzer import (
    ENV_VAR,
    PerfAnalyzerError,
    PerfAnalyzerOptions,
    command,
    find_perf_analyzer,
    parse_stdout,
    read_gpu_metrics,
    run,
)
from tritonize.client.bench.results import read_csv
from tritonize.client.errors import TritonClientError, UsageError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "perf_analyzer"
SWEEP = tuple(range(16, 113, 16))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# ------------------------------------------------------------------------------------------------ options


def test_options_normalise_levels_and_version() -> None:
    o = PerfAnalyzerOptions("m", levels=(8.0, 1, 4, 4), model_version=3)  # type: ignore[arg-type]
    assert o.levels == (1, 4, 8) and all(isinstance(v, int) for v in o.levels)
    assert o.model_version == "3"
    r = PerfAnalyzerOptions("m", mode="request_rate", levels=(200, 50.5))
    assert r.levels == (50.5, 200.0)
    assert hash(PerfAnalyzerOptions("m", shapes={"x": [3, 4]})) == hash(PerfAnalyzerOptions("m", shapes={"x": (3, 4)}))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"model": ""}, "model"),
    ({"url": "http://localhost:8000"}, "url"),
    ({"protocol": "https"}, "protocol"),
    ({"mode": "periodic"}, "mode"),
    ({"levels": ()}, "levels"),
    ({"levels": (0, 4)}, "levels"),
    ({"levels": (1.5,)}, "levels"),
    ({"levels": (True,)}, "levels"),
    ({"measurement_interval_ms": 0}, "measurement_interval_ms"),
    ({"measurement_mode": "windows"}, "measurement_mode"),
    ({"measurement_request_count": -1}, "measurement_request_count"),
    ({"stability_percentage": -5}, "stability_percentage"),
    ({"max_trials": 0}, "max_trials"),
    ({"percentile": 100}, "percentile"),
    ({"percentile": 0}, "percentile"),
    ({"batch_size": 0}, "batch_size"),
    ({"shapes": {"x": (-1, 3)}}, "shapes"),
    ({"shapes": {"x": ()}}, "shapes"),
    ({"input_data": "ones"}, "input_data"),
    ({"input_data": "inputs.npz"}, "input_data"),
    ({"shared_memory": "gpu"}, "shared_memory"),
    ({"output_shared_memory_size": 1024}, "output_shared_memory_size"),
    ({"shared_memory": "system", "output_shared_memory_size": -1}, "output_shared_memory_size"),
    ({"request_distribution": "poisson"}, "request_distribution"),
    ({"mode": "request_rate", "request_distribution": "uniform"}, "request_distribution"),
    ({"async_mode": "yes"}, "async_mode"),
    ({"latency_threshold_ms": 0}, "latency_threshold_ms"),
    ({"metrics_url": "localhost:8002/metrics"}, "metrics_url"),
    ({"model_version": "latest"}, "model_version"),
    ({"extra_args": ("-f", "other.csv")}, "extra_args"),
    ({"extra_args": ("--concurrency-range=1:4",)}, "extra_args"),
    ({"extra_args": "--async"}, "extra_args"),
])
def test_options_refuse_bad_values(kwargs: dict[str, object], field: str) -> None:
    kwargs = {"model": "m", **kwargs}
    with pytest.raises(UsageError, match=rf"^{re.escape(field)}\b.*got .*expected "):
        PerfAnalyzerOptions(**kwargs)  # type: ignore[arg-type]


def test_input_data_may_be_a_directory_or_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.json").write_text('{"data": []}')
    assert PerfAnalyzerOptions("m", input_data=str(tmp_path)).input_data == str(tmp_path)
    monkeypatch.chdir(tmp_path)  # made absolute: perf_analyzer runs in another directory
    assert PerfAnalyzerOptions("m", input_data=Path("data.json")).input_data == str(tmp_path / "data.json")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ command


def test_concurrency_progression_is_one_sweep() -> None:
    cmds = command(PerfAnalyzerOptions("resnet50", levels=SWEEP), Path("pa.csv"))
    assert cmds == [["perf_analyzer", "-m", "resnet50", "-u", "localhost:8001", "-i", "grpc", "-b", "1",
                     "--input-data", "random", "--shared-memory", "none", "--measurement-mode", "time_windows",
                     "--measurement-interval", "5000", "-s", "10", "-r", "10", "--concurrency-range", "16:112:16",
                     "-f", "pa.csv", "--verbose-csv"]]


def test_single_level_and_two_levels_are_sweeps() -> None:
    assert command(PerfAnalyzerOptions("m", levels=(4,)), Path("pa.csv"))[0][-5:-3] == ["--concurrency-range",
                                                                                        "4:4:1"]
    assert "1:8:7" in command(PerfAnalyzerOptions("m", levels=(1, 8)), Path("pa.csv"))[0]


def test_other_levels_run_one_invocation_each(tmp_path: Path) -> None:
    cmds = command(PerfAnalyzerOptions("m", levels=(1, 2, 4, 8)), tmp_path / "pa.csv", executable="/opt/pa")
    assert [c[c.index("--concurrency-range") + 1] for c in cmds] == ["1:1:1", "2:2:1", "4:4:1", "8:8:1"]
    assert [c[c.index("-f") + 1] for c in cmds] == [str(tmp_path / f"pa-{n}.csv") for n in (1, 2, 4, 8)]
    assert all(c[0] == "/opt/pa" and c[-1] == "--verbose-csv" for c in cmds)


def test_request_rate_follows_perf_analyzers_double_arithmetic() -> None:
    def ranges(levels: tuple[float, ...]) -> list[str]:
        cmds = command(PerfAnalyzerOptions("m", mode="request_rate", levels=levels), Path("pa.csv"))
        return [c[c.index("--request-rate-range") + 1] for c in cmds]

    assert ranges((100, 200, 300, 400)) == ["100:400:100"]
    assert ranges((12.5, 25, 37.5)) == ["12.5:37.5:12.5"]
    assert ranges((0.1, 0.3, 0.5)) == ["0.1:0.5:0.2"]
    # 0.1 + 0.1 + 0.1 > 0.3 in doubles: one sweep would stop after 0.2, so each rate gets its own run
    assert ranges((0.1, 0.2, 0.3)) == ["0.1:0.1:1", "0.2:0.2:1", "0.3:0.3:1"]
    assert ranges((50, 100, 400)) == ["50:50:1", "100:100:1", "400:400:1"]


def test_request_rate_flags() -> None:
    [cmd] = command(PerfAnalyzerOptions("m", protocol="http", url="h:8000", mode="request_rate", levels=(50, 100),
                                         request_distribution="poisson", async_mode=True, latency_threshold_ms=20,
                                         percentile=95), Path("pa.csv"))
    text = " ".join(cmd)
    assert "-u h:8000 -i http" in text
    assert "--percentile=95 --request-distribution poisson --async --latency-threshold 20" in text
    assert "--request-rate-range 50:100:50 -f pa.csv --verbose-csv" in text


def test_inputs_shared_memory_version_metrics_and_extra_args(tmp_path: Path) -> None:
    [cmd] = command(PerfAnalyzerOptions(
        "resnet50", model_version="2", batch_size=8, shapes={"pixels": (3, 224, 224), "ids": [16]}, input_data="zero",
        shared_memory="cuda", output_shared_memory_size=4_000_000, measurement_mode="count_windows",
        measurement_request_count=200, stability_percentage=7.5, max_trials=5, collect_metrics=True,
        metrics_url="gpu-host:8002/metrics", extra_args=("--max-threads", "32")), Path("pa.csv"))
    text = " ".join(cmd)
    assert "-m resnet50 -x 2 -u localhost:8001 -i grpc -b 8" in text
    assert "--shape ids:16 --shape pixels:3,224,224 --input-data zero" in text
    assert "--shared-memory cuda --output-shared-memory-size 4000000" in text
    assert "--measurement-mode count_windows --measurement-request-count 200 -s 7.5 -r 5" in text
    assert "--measurement-interval" not in text and "--request-distribution" not in text
    assert "--collect-metrics --metrics-url gpu-host:8002/metrics --concurrency-range 1:1:1" in text
    assert cmd[-2:] == ["--max-threads", "32"]
    assert "-x" not in command(PerfAnalyzerOptions("m"), Path("pa.csv"))[0]


# ------------------------------------------------------------------------------------------------ find


def _executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_find_perf_analyzer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_perf_analyzer() is None
    on_path = _executable(tmp_path / "perf_analyzer")
    assert find_perf_analyzer() == str(on_path)
    elsewhere = _executable(tmp_path / "pa-24.08")
    monkeypatch.setenv(ENV_VAR, str(elsewhere))
    assert find_perf_analyzer() == str(elsewhere)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=ENV_VAR):
        find_perf_analyzer()


# ------------------------------------------------------------------------------------------------ stdout


def test_parse_concurrency_sweep_output() -> None:
    info = parse_stdout(fixture("concurrency_sweep.out"))
    assert info.latency_metric == "average"
    assert [(s.mode, s.level) for s in info.summary] == [("concurrency", float(n)) for n in SWEEP]
    first = info.summary[0]
    assert (first.throughput, first.latency_us) == (2571.06, 6223.0)
    assert [(r.level, r.requests, r.server_request_us) for r in info.reports][:2] == [(16.0, 46279, 5892.0),
                                                                                     (32.0, 66411, 8294.0)]
    assert info.unstable_levels == info.over_latency_levels == info.errors == info.warnings == ()


def test_parse_request_rate_output_with_percentile() -> None:
    info = parse_stdout(fixture("request_rate_p95.out"))
    assert info.latency_metric == "p95"
    assert [(s.mode, s.level, s.latency_us) for s in info.summary] == [
        ("request_rate", 80.0, 14180.0), ("request_rate", 160.0, 17620.0), ("request_rate", 240.0, 29840.0)]
    assert [r.throughput for r in info.reports] == [80.0, 159.944, 239.833]


def test_parse_metrics_output_keeps_server_numbers_apart_from_gpu_lines() -> None:
    info = parse_stdout(fixture("collect_metrics.out"))
    assert [(r.level, r.requests, r.server_request_us) for r in info.reports] == [
        (1.0, 3319, 4687.0), (2.0, 5632, 5656.0), (3.0, 6331, 7793.0)]


def test_parse_failures() -> None:
    info = parse_stdout(fixture("unstable.out"))
    assert info.unstable_levels == (6.0,)
    assert [s.level for s in info.summary] == [2.0, 4.0]
    assert info.errors == ("Failed to obtain stable measurement within 10 measurement windows for concurrency 6. "
                           "Please try to increase the --measurement-interval.",)
    first = parse_stdout(fixture("unstable_first.out"))
    assert first.unstable_levels == (2.0,) and first.errors[-1] == "Failed to obtain stable measurement."
    assert parse_stdout(fixture("model_not_found.out")).errors == (
        "error: failed to get model metadata: Request for unknown model: 'resnet50' is not found",)


def test_parse_request_rate_failure_belongs_to_the_rate_before_it() -> None:
    text = ("Request Rate: 100 inference requests per second\n  Client: \n    Request count: 1800\n"
            "Request Rate: 200 inference requests per second\nFailed to obtain stable measurement.\n"
            "Request Rate: 300 inference requests per second\n"
            "Measured latency went over the set limit of 50 msec. \n"
            "Request concurrency: 4\n"
            "Failed to maintain requested inference load. Worker thread(s) failed to generate concurrent requests.\n"
            "Thread [0] had error: Deadline Exceeded\n"
            "[WARNING] Perf Analyzer is not able to keep up with the desired load. The results may not be accurate.\n")
    info = parse_stdout(text)
    assert info.unstable_levels == (200.0,)
    assert info.over_latency_levels == (300.0,)
    assert info.errors == ("Failed to obtain stable measurement.",
                           "Failed to maintain requested inference load. Worker thread(s) failed to generate "
                           "concurrent requests.", "Thread [0] had error: Deadline Exceeded")
    assert info.warnings[0].startswith("[WARNING] Perf Analyzer is not able to keep up")


# ------------------------------------------------------------------------------------------------ CSV


def test_csv_rows_are_in_throughput_order_and_come_back_by_level() -> None:
    recorded = [line.split(",")[0] for line in fixture("concurrency_sweep.csv").splitlines()[1:]]
    assert recorded == ["16", "32", "48", "64", "112", "80", "96"]  # perf_analyzer sorts by Inferences/Second
    rows = read_csv(FIXTURES / "concurrency_sweep.csv")
    assert [r.level for r in rows] == [float(n) for n in SWEEP]
    r16 = rows[0]
    assert (r16.mode, r16.throughput, r16.avg_us) == ("concurrency", 2571.06, 6223.0)
    assert r16.percentiles_us == {50: 6130.0, 90: 6304.0, 95: 6349.0, 99: 6403.0}
    assert (r16.client_send_us, r16.network_us, r16.server_queue_us, r16.server_compute_input_us,
            r16.server_compute_infer_us, r16.server_compute_output_us, r16.client_recv_us) == (
        39, 308, 2173, 322, 3312, 52, 17)


def test_csv_with_percentile_has_no_average() -> None:
    rows = read_csv(FIXTURES / "request_rate_p95.csv")
    assert [(r.mode, r.level, r.avg_us) for r in rows] == [("request_rate", 80.0, None),
                                                            ("request_rate", 160.0, None),
                                                            ("request_rate", 240.0, None)]
    assert rows[2].percentiles_us[95] == 29840.0


def test_gpu_metric_columns() -> None:
    rows = read_csv(FIXTURES / "collect_metrics.csv")  # the GPU columns do not disturb the rest
    assert [(r.level, r.avg_us) for r in rows] == [(1.0, 5423.0), (2.0, 6392.0), (3.0, 8529.0)]
    gpu = read_gpu_metrics(FIXTURES / "collect_metrics.csv")
    busy, idle = "GPU-3fa2b7c4-9d1e-4b6a-8f0e-2c5d7a1b9e34", "GPU-71c0e8d2-5a4f-4e3b-b6d9-0f8a2e4c6b17"
    assert gpu[3.0]["Avg GPU Utilization"] == {busy: 0.87, idle: 0.0}
    assert gpu[1.0]["Max GPU Memory Usage"][busy] == 2415919104
    assert gpu[2.0]["Total GPU Memory"] == {busy: 85899345920, idle: 85899345920}
    assert read_gpu_metrics(FIXTURES / "concurrency_sweep.csv") == {}


def test_csv_variants_documented_elsewhere(tmp_path: Path) -> None:
    # docs/measurements_metrics.md shows a trailing comma after the GPU values; --percentile=75 adds a column in order
    path = tmp_path / "pa.csv"
    path.write_text("Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency,p75 latency,p90 latency,"
                    "p95 latency,p99 latency,request/response,response wait,Avg GPU Utilization\n"
                    "2,300.5,40,20,900,950,1000,1100,1300,60,800,gpu_uuid_0:0.25;gpu_uuid_1:0.6;,\n"
                    "1,200.25,40,20,700,750,800,900,1000,60,600,gpu_uuid_0:0.33;gpu_uuid_1:0.5;,\n")
    rows = read_csv(path)
    assert [r.level for r in rows] == [1.0, 2.0]
    assert rows[0].percentiles_us == {50: 700.0, 75: 750.0, 90: 800.0, 95: 900.0, 99: 1000.0}
    assert rows[0].server_queue_us == 0.0  # no server statistics columns
    assert read_gpu_metrics(path)[2.0] == {"Avg GPU Utilization": {"gpu_uuid_0": 0.25, "gpu_uuid_1": 0.6}}


# ------------------------------------------------------------------------------------------------ run()

STDERR_LINES = ("Failed to", "error:", "Measured latency", "Thread [", "WARNING", "Warning")
FAKE = """#!{python}
import json, shutil, sys, time
from pathlib import Path

scenario = json.loads(Path({scenario!r}).read_text())
args = sys.argv[1:]
with open(scenario["log"], "a") as log:
    log.write(json.dumps(args) + "\\n")


def value(flag):
    return args[args.index(flag) + 1] if flag in args else None


problems = [f"{{flag}} is {{value(flag)!r}}, expected {{want!r}}" for flag, want in scenario["expect"].items()
            if value(flag) != want]
problems += [f"no {{flag}}" for flag in ("-f", "--verbose-csv") if flag not in args]
flag = "--concurrency-range" if "--concurrency-range" in args else "--request-rate-range"
entry = scenario["runs"].get(value(flag) or "")
if entry is None:
    problems.append(f"unexpected {{flag}} {{value(flag)}}")
if problems:
    print("fake perf_analyzer: " + "; ".join(problems), file=sys.stderr)
    sys.exit(97)
time.sleep(entry.get("sleep", 0))
for line in entry["out"].splitlines():  # perf_analyzer's std::cerr lines go to stderr
    print(line, file=sys.stderr if line.startswith({stderr!r}) else sys.stdout, flush=True)
if entry.get("csv"):
    shutil.copy(entry["csv"], value("-f"))  # -f is relative: perf_analyzer runs in the work directory
sys.exit(entry.get("code", 0))
"""


class FakePerfAnalyzer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "calls.jsonl"

    def __call__(self, runs: dict[str, dict[str, object]], **expect: str) -> str:
        """runs: range argument -> {"out": text, "csv": path or None, "code": exit status, "sleep": s}."""
        scenario = self.root / "scenario.json"
        scenario.write_text(json.dumps({"log": str(self.log), "expect": expect, "runs": runs}))
        script = FAKE.format(python=sys.executable, scenario=str(scenario), stderr=STDERR_LINES)
        return str(_executable(self.root / "perf_analyzer", script))

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture
def fake(tmp_path: Path) -> FakePerfAnalyzer:
    root = tmp_path / "bin"
    root.mkdir()
    return FakePerfAnalyzer(root)


def recorded(name: str, code: int = 0, csv: bool = True) -> dict[str, object]:
    return {"out": fixture(f"{name}.out"), "csv": str(FIXTURES / f"{name}.csv") if csv else None, "code": code}


def test_run_concurrency_sweep(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"16:112:16": recorded("concurrency_sweep")}, **{"-m": "resnet50", "-i": "grpc"})
    result = run(PerfAnalyzerOptions("resnet50", levels=SWEEP), tmp_path / "work", executable=exe)
    assert [[exe, *args] for args in fake.calls] == result.commands == command(PerfAnalyzerOptions("resnet50", levels=SWEEP),
                                                    Path("perf_analyzer.csv"), exe)
    assert result.returncode == 0 and result.complete
    assert [r.level for r in result.rows] == [float(n) for n in SWEEP]
    assert [r.throughput for r in result.rows][-2:] == [4894.22, 4788.39]
    assert all(r.stable and r.mode == "concurrency" for r in result.rows)
    r16 = result.rows[0]
    assert (r16.requests, r16.server_request_us, r16.avg_us) == (46279, 5892.0, 6223.0)  # from stdout and the CSV
    assert r16.window_s == pytest.approx(18.0, rel=1e-4)  # 3 windows of 1.2 x 5000 ms
    assert "Concurrency: 112, throughput: 4788.39 infer/sec" in result.stdout
    assert result.csv_paths == [tmp_path / "work" / "perf_analyzer.csv"]
    assert result.unstable_levels == result.unmeasured_levels == result.errors == ()


def test_run_request_rate_with_percentile(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"80:240:80": recorded("request_rate_p95")}, **{"-i": "http", "--request-distribution": "constant"})
    options = PerfAnalyzerOptions("inception_onnx", url="localhost:8000", protocol="http", mode="request_rate",
                                  levels=(80, 160, 240), percentile=95)
    result = run(options, tmp_path, executable=exe)
    assert [(r.mode, r.level, r.throughput, r.percentiles_us[95]) for r in result.rows] == [
        ("request_rate", 80.0, 80.0, 14180.0), ("request_rate", 160.0, 159.944, 17620.0),
        ("request_rate", 240.0, 239.833, 29840.0)]
    assert [r.requests for r in result.rows] == [1440, 2879, 4317]
    assert "--percentile=95" in fake.calls[0]


def test_run_collect_metrics(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"1:3:1": recorded("collect_metrics")}, **{"-m": "resnet50_libtorch"})
    result = run(PerfAnalyzerOptions("resnet50_libtorch", levels=(1, 2, 3), collect_metrics=True), tmp_path,
                 executable=exe)
    assert "--collect-metrics" in fake.calls[0]
    assert sorted(result.gpu_metrics) == [1.0, 2.0, 3.0]
    assert result.gpu_metrics[2.0]["Avg GPU Power Usage"]["GPU-3fa2b7c4-9d1e-4b6a-8f0e-2c5d7a1b9e34"] == 130.8


@pytest.mark.parametrize("code", [0, 1])  # current perf_analyzer exits 0 here; the brief's older builds exit 1
def test_run_failed_stability_returns_what_was_measured(fake: FakePerfAnalyzer, tmp_path: Path, code: int) -> None:
    exe = fake({"2:8:2": recorded("unstable", code=code)})
    result = run(PerfAnalyzerOptions("simple", protocol="http", url="localhost:8000", levels=(2, 4, 6, 8)), tmp_path,
                 executable=exe)
    assert result.returncode == code
    assert [(r.level, r.stable) for r in result.rows] == [(2.0, True), (4.0, True)]
    assert result.unstable_levels == (6.0,)
    assert result.unmeasured_levels == (8.0,)  # perf_analyzer's sweep stops at the unstable level
    assert not result.complete
    assert "concurrency 6" in result.errors[0]


def test_run_marks_an_unstable_level_that_old_builds_still_wrote(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    csv = tmp_path / "old.csv"  # before client PR #116 the unstable level was written too
    csv.write_text(fixture("unstable.csv") + "6,3011.7,51,700,1020,26,257,16,53,1900,2500,2700,3300,1990,104,1820\n")
    exe = fake({"2:8:2": {"out": fixture("unstable.out"), "csv": str(csv), "code": 0}})
    result = run(PerfAnalyzerOptions("simple", levels=(2, 4, 6, 8)), tmp_path / "work", executable=exe)
    assert [(r.level, r.stable) for r in result.rows] == [(2.0, True), (4.0, True), (6.0, False)]
    assert result.unstable_levels == (6.0,) and result.unmeasured_levels == (8.0,)


def test_run_fails_when_the_first_level_is_unstable(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"2:8:2": recorded("unstable_first", code=2, csv=False)})
    with pytest.raises(PerfAnalyzerError) as info:
        run(PerfAnalyzerOptions("simple", levels=(2, 4, 6, 8)), tmp_path, executable=exe)
    message = str(info.value)
    assert message == ("perf_analyzer failed (exit 2): Failed to obtain stable measurement within 10 measurement "
                       "windows for concurrency 2. Please try to increase the --measurement-interval.")
    assert info.value.returncode == 2 and "Request concurrency: 2" in info.value.output
    assert isinstance(info.value, TritonClientError) and info.value.exit_code == 1


def test_run_fails_with_perf_analyzers_error(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    (tmp_path / "perf_analyzer.csv").write_text(fixture("concurrency_sweep.csv"))  # a previous run's: never read
    exe = fake({"16:112:16": recorded("model_not_found", code=99, csv=False)})
    with pytest.raises(PerfAnalyzerError, match=r"^perf_analyzer failed \(exit 99\): error: failed to get model "
                                                r"metadata: Request for unknown model: 'resnet50' is not found$"):
        run(PerfAnalyzerOptions("resnet50", levels=SWEEP), tmp_path, executable=exe)
    assert not (tmp_path / "perf_analyzer.csv").exists()


def test_run_fails_when_nothing_was_written(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"1:1:1": {"out": "*** Measurement Settings ***\n  Batch size: 1\n", "code": 0}})
    with pytest.raises(PerfAnalyzerError, match=r"exited 0 without writing perf_analyzer\.csv: Batch size: 1"):
        run(PerfAnalyzerOptions("m"), tmp_path, executable=exe)


def test_run_per_level(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    sweep_csv = fixture("concurrency_sweep.csv").splitlines()
    sweep_out = fixture("concurrency_sweep.out")
    runs: dict[str, dict[str, object]] = {}
    for level in (16, 64):
        csv = tmp_path / f"level{level}.csv"
        csv.write_text("\n".join([sweep_csv[0], *(r for r in sweep_csv if r.startswith(f"{level},"))]) + "\n")
        block = re.search(rf"^Request concurrency: {level}\n.*?\n\n", sweep_out, re.S | re.M)
        summary = re.search(rf"^Concurrency: {level},.*$", sweep_out, re.M)
        assert block and summary
        runs[f"{level}:{level}:1"] = {"out": block.group(0) + summary.group(0) + "\n", "csv": str(csv)}
    runs["32:32:1"] = {"out": "Request concurrency: 32\nFailed to obtain stable measurement within 10 measurement "
                              "windows for concurrency 32. Please try to increase the --measurement-interval.\n"
                              "Failed to obtain stable measurement.\n\n", "code": 2}
    exe = fake(runs)
    result = run(PerfAnalyzerOptions("resnet50", levels=(16, 32, 64)), tmp_path / "work", executable=exe)
    assert [c[c.index("-f") + 1] for c in fake.calls] == ["perf_analyzer-16.csv", "perf_analyzer-32.csv",
                                                          "perf_analyzer-64.csv"]
    assert [(r.level, r.requests) for r in result.rows] == [(16.0, 46279), (64.0, 83897)]
    assert result.unstable_levels == (32.0,) and result.unmeasured_levels == ()
    assert result.returncode == 2 and len(result.commands) == 3


def test_run_per_level_stops_over_the_latency_limit(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    over = "Request concurrency: 1\nMeasured latency went over the set limit of 1 msec. \n"
    exe = fake({"1:1:1": {"out": over}, "2:2:1": {"out": over}})
    result = run(PerfAnalyzerOptions("m", levels=(1, 2, 4), latency_threshold_ms=1), tmp_path, executable=exe)
    assert len(fake.calls) == 1 and "--latency-threshold" in fake.calls[0]
    assert result.rows == [] and result.over_latency_levels == (1.0,) and result.unmeasured_levels == (2.0, 4.0)


def test_run_timeout(fake: FakePerfAnalyzer, tmp_path: Path) -> None:
    exe = fake({"1:1:1": {"out": "", "sleep": 30}})
    with pytest.raises(PerfAnalyzerError, match=r"did not finish within 0.5 s"):
        run(PerfAnalyzerOptions("m"), tmp_path, executable=exe, timeout_s=0.5)


def test_run_without_perf_analyzer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    for executable in (None, str(tmp_path / "perf_analyzer")):
        with pytest.raises(PerfAnalyzerError, match=r"nvcr\.io/nvidia/tritonserver:<yy\.mm>-py3-sdk.*built-in"):
            run(PerfAnalyzerOptions("m"), tmp_path, executable=executable)


def test_run_uses_the_environment_variable(fake: FakePerfAnalyzer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    exe = fake({"1:3:1": recorded("collect_metrics")})
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.setenv(ENV_VAR, exe)
    assert [r.level for r in run(PerfAnalyzerOptions("m", levels=(1, 2, 3)), tmp_path / "w").rows] == [1.0, 2.0, 3.0]
