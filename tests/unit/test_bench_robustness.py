"""Benchmark results against older perf_analyzer outputs and degenerate levels (issue 10, items 6, 12, 13, 14)."""

from __future__ import annotations

import csv
import json
import math
import stat
import sys
from pathlib import Path

import pytest

from tritonize.client.bench.perf_analyzer import PerfAnalyzerOptions, parse_stdout, run
from tritonize.client.bench.report import write_reports
from tritonize.client.bench.results import LevelResult, read_csv, write_csv

RATE_HEADER = ("Request Rate,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
               "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,"
               "p99 latency,Avg latency,request/response,response wait\n")


def _no_nan(text: str) -> object:
    raise ValueError(f"not JSON: {text}")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ item 12


OLD_RATE_OUT = """\
Request Rate: 100 inference requests per seconds
  Client:
    Request count: 1800
    Throughput: 100 infer/sec
    Avg latency: 2100 usec (standard deviation 300 usec)
  Server:
    Inference count: 1800
    Execution count: 1800
    Successful request count: 1800
    Avg request latency: 1500 usec (overhead 40 usec + queue 60 usec + compute 1400 usec)

"""


def test_old_plural_request_rate_block_keeps_its_level_data() -> None:
    info = parse_stdout(OLD_RATE_OUT + "Request Rate: 200 inference requests per seconds\n"
                        "Failed to obtain stable measurement.\n")
    assert [(r.mode, r.level, r.requests, r.server_request_us) for r in info.reports] == [
        ("request_rate", 100.0, 1800, 1500.0)]
    assert info.unstable_levels == (200.0,)


FAKE = """#!{python}
import shutil, sys
args = sys.argv[1:]
rate = args[args.index("--request-rate-range") + 1]
runs = {runs!r}
out, csv_path, code = runs[rate]
sys.stdout.write(out)
if csv_path:
    shutil.copy(csv_path, args[args.index("-f") + 1])
sys.exit(code)
"""


def test_old_plural_runner_keeps_the_measured_levels(tmp_path: Path) -> None:
    csv100 = tmp_path / "r100.csv"
    csv100.write_text(RATE_HEADER + "100,100,50,400,60,10,1400,10,40,2000,2500,2700,3000,2100,90,2010\n")
    csv400 = tmp_path / "r400.csv"
    csv400.write_text(RATE_HEADER + "400,399.5,50,500,90,10,1400,10,40,2200,2900,3100,3500,2300,90,2210\n")
    unstable = "Request Rate: 200 inference requests per seconds\nFailed to obtain stable measurement.\n"
    runs = {"100:100:1": (OLD_RATE_OUT, str(csv100), 0), "200:200:1": (unstable, None, 2),
            "400:400:1": (OLD_RATE_OUT.replace("100", "400"), str(csv400), 0)}
    exe = tmp_path / "perf_analyzer"
    exe.write_text(FAKE.format(python=sys.executable, runs=runs))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    options = PerfAnalyzerOptions("m", mode="request_rate", levels=(100, 200, 400))
    result = run(options, tmp_path / "work", executable=str(exe))
    assert [(r.level, r.requests) for r in result.rows] == [(100.0, 1800), (400.0, 1800)]
    assert result.unstable_levels == (200.0,) and result.returncode == 2


# ------------------------------------------------------------------------------------------------ item 13


def test_2019_perf_client_single_server_compute_column_is_compute_infer(tmp_path: Path) -> None:
    path = tmp_path / "perf_client.csv"
    path.write_text("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute,"
                    "Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
                    "1,305.6,59,427,42,2693,5,3250,3400,3500,3800\n")
    (row,) = read_csv(path)
    assert row.server_compute_infer_us == 2693.0
    assert (row.server_compute_input_us, row.server_compute_output_us) == (0.0, 0.0)
    assert row.server_breakdown_us == 42.0 + 2693.0


# ------------------------------------------------------------------------------------------------ item 14


def _level(level: float, avg: float | None) -> LevelResult:
    return LevelResult("concurrency", level, 100.0 * level, {50: 900.0, 90: 1100.0, 95: 1200.0, 99: 1500.0},
                       avg_us=avg, client_send_us=20.0, network_us=300.0, server_queue_us=50.0,
                       server_compute_input_us=10.0, server_compute_infer_us=500.0, server_compute_output_us=10.0,
                       client_recv_us=30.0, requests=1000)


def test_percentile_run_csv_has_no_avg_latency_column(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_csv([_level(1, None), _level(2, None)], path)
    header = path.read_text().splitlines()[0].split(",")
    assert "Avg latency" not in header
    assert all(v != "" for row in _rows(path) for v in row.values())


def test_csv_has_request_response_and_response_wait(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_csv([_level(1, 950.0)], path)
    (row,) = _rows(path)
    assert row["Avg latency"] == "950"
    assert row["request/response"] == "50"  # client send + client recv, as perf_analyzer computes it
    assert row["response wait"] == "900"  # average latency - send - recv
    header = list(row)
    assert header.index("p99 latency") < header.index("Avg latency") < header.index("request/response") \
        < header.index("response wait") < header.index("Errors")


# ------------------------------------------------------------------------------------------------ item 6


def test_reports_survive_a_level_with_no_completed_request(tmp_path: Path) -> None:
    nan = math.nan
    saturated = LevelResult("concurrency", 64, 0.0, {50: nan, 90: nan, 95: nan, 99: nan}, avg_us=nan,
                            client_send_us=nan, network_us=nan, server_queue_us=nan, server_compute_input_us=nan,
                            server_compute_infer_us=nan, server_compute_output_us=nan, client_recv_us=nan,
                            requests=0, errors=12, stable=False, latencies_us=[])
    measured = LevelResult("concurrency", 8, 500.0, {50: 900.0, 90: 1000.0, 95: 1100.0, 99: 1200.0}, avg_us=950.0,
                           requests=1000)
    written = write_reports(tmp_path / "report", "m", "builtin", [measured, saturated], [], {}, {"name": "m"}, {})
    report = json.loads((tmp_path / "report" / "report.json").read_text(), parse_constant=_no_nan)
    level = report["levels"][1]
    assert level["avg_us"] is None and level["percentiles_us"]["99"] is None and level["errors"] == 12
    # as perf_analyzer, no CSV row for a level it could not measure (Model Analyzer fails on empty cells)
    assert [row["Concurrency"] for row in _rows(tmp_path / "report" / "results.csv")] == ["8"]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| 64 |" in markdown and "nan" not in markdown
    assert tmp_path / "report" / "results.csv" in written


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
