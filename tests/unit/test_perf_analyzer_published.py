"""perf_analyzer / perf_client outputs that others published (tests/fixtures/perf_analyzer/published; where each one
comes from is in its SOURCES.md) read by our parser, and our results.csv read by Model Analyzer's own CSV code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonize.client.bench.perf_analyzer import StdoutInfo, parse_stdout
from tritonize.client.bench.report import write_reports
from tritonize.client.bench.results import LevelResult, read_csv

PUBLISHED = Path(__file__).parents[1] / "fixtures" / "perf_analyzer" / "published"
MODEL_ANALYZER = ("Model Analyzer's CSV reader is not installed: pip install --no-deps triton-model-analyzer==1.58.0 "
                  "psutil")


def parsed(name: str) -> StdoutInfo:
    return parse_stdout((PUBLISHED / name).read_text())


def summary(info: StdoutInfo) -> list[tuple[float, float, float]]:
    return [(s.level, s.throughput, s.latency_us) for s in info.summary]


def reports(info: StdoutInfo) -> list[tuple[str, float, int | None, float | None, float | None]]:
    return [(r.mode, r.level, r.requests, r.throughput, r.server_request_us) for r in info.reports]


# ------------------------------------------------------------------------------------------------ stdout


@pytest.mark.parametrize(("name", "requests", "throughput", "latency_us", "server_us"), [
    ("quick_start_simple.out", 25348, 1407.84, 708, 382),
    ("c_api_my_model.out", 353, 19.6095, 50951, 50841),  # a blank line between Client and Server
    ("torchserve_resnet50.out", 799, 159.8, 6259, None),  # no Server section
    ("client_pr49_cache_hit.out", 8801, 1760.2, 556, 238),  # "Cache hit count"; more server requests than client
    ("server_issue2137_perf_client_verbose.out", 44, 8.8, 114044, 776538458634),  # -v "Pass [n]" lines
])
def test_one_level_outputs(name: str, requests: int, throughput: float, latency_us: int,
                           server_us: int | None) -> None:
    info = parsed(name)
    assert info.latency_metric == "average"
    assert summary(info) == [(1.0, throughput, latency_us)]
    assert reports(info) == [("concurrency", 1.0, requests, throughput, server_us)]
    assert info.unstable_levels == info.over_latency_levels == info.errors == info.warnings == ()


def test_sweep_with_elided_levels() -> None:
    info = parsed("inception_graphdef_sweep.out")  # "..." stands for the end of level 1 and all of 2 and 3
    assert summary(info) == [(1.0, 67.8, 14710), (2.0, 89.8, 22280), (3.0, 80.4, 37283), (4.0, 83.0, 48064)]
    assert reports(info) == [("concurrency", 1.0, 339, 67.8, None), ("concurrency", 4.0, 415, 83.0, 45602)]


def test_2019_perf_client_output() -> None:
    info = parsed("perf_client_2019_resnet50_netdef.out")  # summary lines without "throughput: "
    assert info.latency_metric == "average"
    assert summary(info) == [(1.0, 160.8, 6207), (2.0, 209.2, 9548), (3.0, 207.8, 14423), (4.0, 208.4, 19185)]
    # the Server section's own "Request count: 1250" is not the client's
    assert reports(info) == [("concurrency", 1.0, 804, 160.8, None), ("concurrency", 4.0, 1042, 208.4, 18099)]


def test_p95_summary_only() -> None:
    info = parsed("optimization_inception_onnx_p95.out")
    assert info.latency_metric == "p95" and info.reports == ()
    assert summary(info) == [(1.0, 66.8, 19785), (2.0, 80.8, 30732), (3.0, 118.0, 32968), (4.0, 165.2, 32974),
                             (5.0, 194.4, 33035), (6.0, 217.6, 34258), (7.0, 249.8, 34522), (8.0, 272.0, 35988)]


def test_request_rate_per_seconds_output() -> None:
    info = parsed("server_issue3113_request_rate.out")  # "Delayed Request Count" and "Sequence count" lines too
    assert reports(info) == [("request_rate", 24.0, 1265, 12.65, 209125)]
    assert info.summary == () and info.errors == ()


def test_no_valid_requests_at_the_second_level() -> None:
    info = parsed("server_issue6210_no_valid_requests.out")
    assert reports(info) == [("concurrency", 1.0, 5073, 140.909, 6093)]
    assert info.errors == ("No valid requests recorded within time interval. Please use a larger time window.",)
    assert info.unstable_levels == ()


# ------------------------------------------------------------------------------------------------ CSV


def breakdown(r: LevelResult) -> tuple[float, ...]:
    return (r.client_send_us, r.network_us, r.server_queue_us, r.server_compute_input_us, r.server_compute_infer_us,
            r.server_compute_output_us, r.client_recv_us)


def test_docs_csv() -> None:
    path = PUBLISHED / "inception_graphdef.csv"
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == ["1", "3", "4", "2"]
    rows = read_csv(path)
    assert [(r.level, r.throughput, r.avg_us) for r in rows] == [(1.0, 69.2, None), (2.0, 87.2, None),
                                                                 (3.0, 84.2, None), (4.0, 84.2, None)]
    assert rows[0].percentiles_us == {50: 13891, 90: 18795, 95: 19753, 99: 21018}
    assert breakdown(rows[0]) == (225, 2148, 64, 206, 11781, 19, 0)
    assert breakdown(rows[3]) == (279, 1604, 33669, 233, 11731, 18, 1)
    assert rows[3].percentiles_us == {50: 47045, 90: 56545, 95: 59225, 99: 64886}


def test_2019_perf_client_csv() -> None:
    rows = read_csv(PUBLISHED / "perf_client_2019_resnet50_netdef.csv")  # one "Server Compute" column
    assert [(r.level, r.throughput) for r in rows] == [(1.0, 160.8), (2.0, 209.2), (3.0, 207.8), (4.0, 208.4)]
    assert breakdown(rows[0]) == (68, 1291, 38, 0, 4801, 0, 7)
    assert breakdown(rows[3]) == (71, 1014, 13314, 0, 4776, 0, 8)
    assert rows[1].percentiles_us == {50: 9545, 90: 9576, 95: 9588, 99: 9627}


# ------------------------------------------------------------------------------------------------ Model Analyzer


class _RunConfig:
    """The two accessors of Model Analyzer's RunConfig/ModelRunConfig that its CSV reading calls (the real classes
    import numba through ModelConfig); the PerfAnalyzerConfig inside is Model Analyzer's own."""

    def __init__(self, perf_config: object) -> None:
        self._perf_config = perf_config

    def model_run_configs(self) -> list[_RunConfig]:
        return [self]

    def perf_config(self) -> object:
        return self._perf_config


def _level(level: int, throughput: float, p: tuple[int, ...], avg: int, times: tuple[int, ...]) -> LevelResult:
    send, network, queue, compute_input, compute_infer, compute_output, recv = times
    return LevelResult("concurrency", level, throughput, dict(zip((50, 90, 95, 99), p)), avg_us=avg,
                       client_send_us=send, network_us=network, server_queue_us=queue,
                       server_compute_input_us=compute_input, server_compute_infer_us=compute_infer,
                       server_compute_output_us=compute_output, client_recv_us=recv, requests=1000)


def test_model_analyzer_reads_all_eleven_metrics_from_our_results_csv(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ma = pytest.importorskip("model_analyzer.perf_analyzer.perf_analyzer", reason=MODEL_ANALYZER)
    from model_analyzer.perf_analyzer.perf_config import PerfAnalyzerConfig

    rows = [_level(2, 2571.5, (6130, 6304, 6349, 6403), 6223, (39, 308, 2173, 322, 3312, 52, 17)),
            _level(1, 1407.84, (690, 881, 926, 1031), 708, (41, 250, 41, 26, 257, 16, 61))]
    write_reports(tmp_path, "resnet50", "perf_analyzer", rows, [], {}, {"name": "resnet50"}, {})
    config = PerfAnalyzerConfig()
    config["model-name"] = "resnet50"
    config["latency-report-file"] = "results.csv"  # relative, as Model Analyzer passes it: it reads (and removes)
    monkeypatch.chdir(tmp_path)  # the file in its working directory
    analyzer = ma.PerfAnalyzer(path="perf_analyzer", config=_RunConfig(config), max_retries=1, timeout=1,
                               max_cpu_util=50)
    analyzer._parse_outputs(ma.PerfAnalyzer.get_perf_metrics())  # what run() does once perf_analyzer has exited
    records = {r.tag: r.value() for r in analyzer.get_perf_records()["resnet50"]}
    # It keeps the CSV's last row (it runs one level per perf_analyzer call): the highest throughput, in
    # perf_analyzer's order and ours. Times come back in ms: request/response is send + recv, response wait
    # the average less both.
    assert records == {
        "perf_latency_avg": 6.223, "perf_latency_p90": 6.304, "perf_latency_p95": 6.349, "perf_latency_p99": 6.403,
        "perf_throughput": 2571.5, "perf_client_send_recv": 0.056, "perf_client_response_wait": 6.167,
        "perf_server_queue": 2.173, "perf_server_compute_infer": 3.312, "perf_server_compute_input": 0.322,
        "perf_server_compute_output": 0.052,
    }
    assert len({m[0] for m in ma.PerfAnalyzer.perf_metric_table}) == len(records) == 11
