"""The monitor's arithmetic on recorded statistics and metrics text (tritonserver 2.51, the toy model after its
warmup and after 5 requests of batch 3 plus a dynamic batcher's batches): rates, means, summary quantiles,
batch achieved, instance use, idle and reloaded models; the launchers turn the summaries on; the command's
bad input and missing server are one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.cli.monitor import cells
from tritonize.client.bench.metrics import parse
from tritonize.client.monitor import VersionStats, activity, instance_count, summary_quantiles
from tritonize.core.observability import TRITON_SUMMARY_FLAG
from tritonize.deploy.local import LocalTriton, free_port

# statistics() over HTTP, toy_onnx after the warmup (before) and after the load (after)
BEFORE = json.loads('''{"name": "toy_onnx", "version": "1", "inference_count": 18, "execution_count": 4,
 "inference_stats": {"success": {"count": 18, "ns": 20000000}, "fail": {"count": 0, "ns": 0},
  "queue": {"count": 18, "ns": 4000000}, "compute_input": {"count": 18, "ns": 2000000},
  "compute_infer": {"count": 18, "ns": 12000000}, "compute_output": {"count": 18, "ns": 1000000}},
 "batch_stats": [
  {"batch_size": 1, "compute_input": {"count": 2, "ns": 254488}, "compute_infer": {"count": 2, "ns": 2682071},
   "compute_output": {"count": 2, "ns": 83156}},
  {"batch_size": 8, "compute_input": {"count": 2, "ns": 266019}, "compute_infer": {"count": 2, "ns": 1357466},
   "compute_output": {"count": 2, "ns": 131356}}]}''')
AFTER = json.loads('''{"name": "toy_onnx", "version": "1", "inference_count": 33, "execution_count": 9,
 "inference_stats": {"success": {"count": 23, "ns": 32565487}, "fail": {"count": 2, "ns": 900000},
  "queue": {"count": 23, "ns": 10818310}, "compute_input": {"count": 23, "ns": 2661370},
  "compute_infer": {"count": 23, "ns": 17287657}, "compute_output": {"count": 23, "ns": 1608976}},
 "batch_stats": [
  {"batch_size": 1, "compute_input": {"count": 2, "ns": 254488}, "compute_infer": {"count": 2, "ns": 2682071},
   "compute_output": {"count": 2, "ns": 83156}},
  {"batch_size": 3, "compute_input": {"count": 5, "ns": 278730}, "compute_infer": {"count": 5, "ns": 3745858},
   "compute_output": {"count": 5, "ns": 474972}},
  {"batch_size": 8, "compute_input": {"count": 2, "ns": 266019}, "compute_infer": {"count": 2, "ns": 1357466},
   "compute_output": {"count": 2, "ns": 131356}}]}''')
# the new batch-3 executions' time: what the instances were busy with in the interval
BUSY_NS = 278730 + 3745858 + 474972

METRICS = '''# HELP nv_inference_queue_summary_us Summary of inference queuing duration in microseconds
# TYPE nv_inference_queue_summary_us summary
nv_inference_queue_summary_us_count{model="toy_onnx",version="1"} 23
nv_inference_queue_summary_us_sum{model="toy_onnx",version="1"} 10806
nv_inference_queue_summary_us{model="toy_onnx",version="1",quantile="0.5"} 2
nv_inference_queue_summary_us{model="toy_onnx",version="1",quantile="0.9"} 2109
nv_inference_queue_summary_us{model="toy_onnx",version="1",quantile="0.99"} 2160
nv_inference_queue_summary_us{model="toy_torchscript",version="1",quantile="0.5"} 4
nv_inference_queue_summary_us{model="toy_torchscript",version="1",quantile="0.99"} 7
nv_inference_compute_infer_summary_us{model="toy_onnx",version="1",quantile="0.5"} 698
nv_inference_compute_infer_summary_us{model="toy_onnx",version="1",quantile="0.99"} 868
nv_inference_compute_infer_summary_us{model="toy_onnx",version="2",quantile="0.5"} 5000
nv_inference_compute_infer_summary_us{model="toy_onnx",version="2",quantile="0.99"} 9000
nv_inference_count{model="toy_onnx",version="1"} 33
'''


def _grpc_form(entry: dict[str, Any]) -> dict[str, Any]:
    """gRPC's JSON: zero fields left out (the transport turns its int64 strings into ints)."""
    grpc = copy.deepcopy(entry)
    grpc["inference_stats"]["fail"] = {}
    return grpc


def test_parse_reads_counts_and_per_batch_size_executions() -> None:
    stats = VersionStats.parse(AFTER)
    assert (stats.model, stats.version, stats.success, stats.fail) == ("toy_onnx", "1", 23, 2)
    assert (stats.inference_count, stats.execution_count) == (33, 9)
    assert stats.batch_executions == {1: 2, 3: 5, 8: 2}
    assert sum(size * n for size, n in stats.batch_executions.items()) == stats.inference_count
    assert stats.stage_ns["queue"] == 10818310 and stats.stage_count["compute_infer"] == 23
    assert stats.busy_ns == sum(b[f"compute_{p}"]["ns"] for b in AFTER["batch_stats"]
                                for p in ("input", "infer", "output"))
    grpc = VersionStats.parse(_grpc_form(AFTER))
    assert grpc.fail == 0 and grpc.success == 23
    assert VersionStats.parse({"name": "m", "version": "1"}) == VersionStats("m", "1", stage_count={
        s: 0 for s in ("queue", "compute_input", "compute_infer", "compute_output")},
        stage_ns={s: 0 for s in ("queue", "compute_input", "compute_infer", "compute_output")})


def test_rates_means_quantiles_batch_and_instance_use_over_an_interval() -> None:
    row = activity(VersionStats.parse(BEFORE), VersionStats.parse(AFTER), 2.0, parse(METRICS), instances=2)
    assert (row.success, row.fail, row.inferences, row.executions) == (5, 2, 15, 5)
    assert row.requests_per_s == 2.5 and row.failures_per_s == 1.0 and row.inferences_per_s == 7.5
    assert row.batch == 3.0
    assert row.queue.mean == pytest.approx((10818310 - 4000000) / 5 / 1e6)
    assert row.compute.mean == pytest.approx((17287657 - 12000000) / 5 / 1e6)  # compute_infer alone
    assert row.latency_source == "summary"
    assert (row.queue.p50, row.queue.p99) == (0.002, 2.16)  # µs -> ms, this model version's labels only
    assert (row.compute.p50, row.compute.p99) == (0.698, 0.868)
    assert row.busy_s == pytest.approx(BUSY_NS / 1e9)
    assert row.instance_use == pytest.approx(BUSY_NS / 1e9 / 2.0 / 2)
    record = row.as_dict()
    assert record["interval"] == {"success": 5, "fail": 2, "inference_count": 15, "execution_count": 5}
    assert record["cumulative"] == {"success": 23, "fail": 2, "inference_count": 33, "execution_count": 9,
                                    "batch_executions": {"1": 2, "3": 5, "8": 2}}
    assert record["queue_ms"] == {"p50": 0.002, "p99": 2.16, "mean": row.queue.mean}
    assert json.loads(json.dumps(record)) == record


def test_without_summaries_the_interval_mean_and_says_so() -> None:
    before, after = VersionStats.parse(BEFORE), VersionStats.parse(AFTER)
    for metrics in (None, parse('nv_inference_count{model="toy_onnx",version="1"} 33\n')):
        row = activity(before, after, 2.0, metrics, instances=2)
        assert row.latency_source == "average"
        assert row.queue.p50 is None and row.queue.p99 is None and row.compute.p99 is None
        assert row.queue.mean == pytest.approx((10818310 - 4000000) / 5 / 1e6)
        assert cells(row)[4] == f"{row.queue.mean:.3g} avg"
    # a summary with no observations in its window reads NaN: not a quantile
    nan = parse(METRICS.replace('quantile="0.99"} 868', 'quantile="0.99"} NaN'))
    assert summary_quantiles(nan, "compute_infer", "toy_onnx", "1") is None
    assert activity(before, after, 2.0, nan, instances=2).latency_source == "average"
    assert summary_quantiles(parse(METRICS), "compute_infer", "toy_onnx", "2") == {"p50": 5.0, "p99": 9.0}


def test_idle_interval_and_reloaded_model() -> None:
    after = VersionStats.parse(AFTER)
    idle = activity(after, after, 2.0, parse(METRICS), instances=2)
    assert idle.requests_per_s == idle.failures_per_s == 0 and idle.instance_use == 0
    assert idle.batch is None and idle.queue.mean is None and idle.queue.p50 is None and idle.compute.p99 is None
    assert cells(idle)[2:7] == ["0.0", "0", "- / -", "- / -", "-"]
    # reloaded: Triton's counters restart, so the interval counts from zero
    reloaded = activity(VersionStats.parse(AFTER), VersionStats.parse(BEFORE), 2.0, None, instances=2)
    assert (reloaded.success, reloaded.inferences, reloaded.executions) == (18, 18, 4)
    appeared = activity(None, VersionStats.parse(BEFORE), 2.0, None, instances=None)
    assert appeared.success == 18 and appeared.instance_use is None and cells(appeared)[7] == "-"
    with pytest.raises(ValueError, match="interval_s"):
        activity(after, after, 0.0, None, instances=2)


def test_instance_count_from_the_config() -> None:
    groups = {"instance_group": [{"kind": "KIND_CPU", "count": 2}, {"kind": "KIND_GPU", "count": 1, "gpus": [0]}]}
    assert instance_count(groups) == 3
    assert instance_count({"platform": "ensemble"}) is None


def test_every_launcher_turns_the_summaries_on(tmp_path: Path) -> None:
    assert TRITON_SUMMARY_FLAG in LocalTriton(tmp_path).command(tmp_path / "backends")
    pytest.importorskip("docker")
    from tritonize.deploy.docker import DEFAULT_IMAGE, run_kwargs

    assert TRITON_SUMMARY_FLAG in run_kwargs(tmp_path, DEFAULT_IMAGE)["command"]


@pytest.mark.parametrize(("args", "code", "says"), [
    (("--interval", "0"), 2, "--interval: got 0.0, expected seconds between 0.1 and 3600"),
    (("--output", "json"), 2, "--output: got 'json', expected table for the live view (json goes with --once)"),
    (("--timeout", "-1", "--once"), 2, "--timeout: got -1.0, expected seconds > 0"),
])
def test_bad_options_are_one_line(args: tuple[str, ...], code: int, says: str) -> None:
    result = CliRunner().invoke(main, ["monitor", *args])
    assert result.exit_code == code and result.output.strip() == f"error: {says}"


def test_no_server_is_one_line_and_exit_1() -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(main, ["monitor", "--once", "--url", url, "--timeout", "3"])
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: --url {url}: no Triton answers (")
