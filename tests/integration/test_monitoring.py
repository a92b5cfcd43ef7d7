"""The monitoring assets at work (issue 13, item 2): a real Prometheus (Debian's binary) scrapes the local Triton
with the generated rules (short settings: a 10 s window, ``for`` 5 s, scraped and evaluated every second) while
``tritonize bench`` drives three models: a generated ONNX model and two python-backend models whose fault the
test switches on and off through a control file (one sleeps, one raises). Checked through Prometheus's HTTP API:
no alert under normal load; the compute-time alert fires for the slow model alone and clears; the failures alert
for the failing model alone and clears; Triton down fires when it stops. Every dashboard panel's query runs
against that Prometheus: Triton's panels return data, the GPU, gateway and drift ones parse."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from debian import require

from tritonize.deploy.local import LocalTriton, free_port
from tritonize.deploy.monitoring import (
    PANELS,
    TRITON_JOB,
    AlertSettings,
    alert_rules,
    dashboard,
    prometheus_config,
)
from tritonize.generator.build import build
from tritonize.generator.config_spec import DynamicBatching
from tritonize.generator.request import ModelRequest

from .conftest import STUB_PREAMBLE

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")
WINDOW_S, FOR_S = 10, 5
SETTINGS = AlertSettings(window=f"{WINDOW_S}s", for_duration=f"{FOR_S}s", compute_ms=100, queue_ms=100,
                         failure_ratio=0.05)
SLEEP_MS = 300  # the slow fault: three times the compute threshold
FAIL_EVERY = 2  # the error fault: every other request raises

# Reads its control file (the path is a config parameter) on every execution: {"sleep_ms": N} sleeps N ms per
# request, {"fail_every": K} raises on every K-th execution; no file, no fault.
FAULTY_MODEL = STUB_PREAMBLE + '''

class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.control = params["control_file"]["string_value"]
        self.count = 0

    def execute(self, requests):
        try:
            with open(self.control) as f:
                fault = json.load(f)
        except (OSError, ValueError):
            fault = {}
        self.count += 1
        if fault.get("sleep_ms"):
            time.sleep(fault["sleep_ms"] / 1000 * len(requests))
        if fault.get("fail_every") and self.count % fault["fail_every"] == 0:
            raise RuntimeError("injected fault")
        return [pb_utils.InferenceResponse([pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy())])
                for r in requests]
'''


def faulty_model(repo: Path, name: str, control: Path) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(FAULTY_MODEL)
    # two instances for the two requests bench keeps in flight: a slow model computes slowly, it does not queue
    (repo / name / "config.pbtxt").write_text(f'''name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 2 }} ]
parameters {{ key: "control_file" value: {{ string_value: "{control}" }} }}
''')


class Prometheus:
    """Debian's prometheus on a free loopback port, its TSDB in ``workdir``."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        binary = require("prometheus", "prometheus")
        self.log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "prometheus.log").read_text()[-2000:]
            with contextlib.suppress(urllib.error.URLError, ConnectionError), \
                    urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return self
            time.sleep(0.2)
        raise AssertionError("prometheus not ready after 30 s: " + (self.workdir / "prometheus.log").read_text())

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """The API's JSON answer, errors included (a query that does not parse answers 400 with an error)."""
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            return dict(json.load(exc))

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["data"]["alerts"] if state is None or a["state"] == state]

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])


def active(prometheus: Prometheus, state: str | None = None) -> set[tuple[str, str]]:
    """(alert, model or instance) of the alerts now pending or firing (or only those in ``state``)."""
    return {(a["labels"]["alertname"], a["labels"].get("model", a["labels"].get("instance", "")))
            for a in prometheus.alerts(state)}


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, prometheus: Prometheus) -> float:
    """Seconds until ``condition`` holds (polled every 0.25 s); fails with the alerts seen after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s; alerts: {prometheus.alerts()}")
        time.sleep(0.25)
    return time.monotonic() - start


@contextlib.contextmanager
def bench_load(triton: LocalTriton, models: list[str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``tritonize bench`` per model, closed loop at concurrency 2, running until the block ends (stability
    0.001 % is never reached: bench keeps measuring 1 s windows)."""
    processes = []
    try:
        for model in models:
            log = (logs / f"bench-{model}.log").open("wb")
            processes.append(subprocess.Popen(
                [sys.executable, "-c", "from tritonize.cli import main; main()", "bench", model,
                 "--url", triton.grpc_url, "--metrics-url", triton.metrics_url, "--engine", "builtin",
                 "--concurrency", "2", "--measurement-interval-ms", "1000", "--warmup-s", "0.5",
                 "--stability", "0.001", "--max-trials", "600"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        yield processes
    finally:
        for process in processes:  # SIGINT: bench stops its worker processes; then whatever is left of its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def substituted(expr: str, models: list[str]) -> str:
    """A panel's query as Grafana sends it with every model selected."""
    out = expr.replace("$__rate_interval", f"{WINDOW_S}s").replace("$model", "|".join(models))
    assert "$" not in out, out
    return out


@pytest.mark.timeout(240)
def test_alerts_fire_on_injected_faults_and_clear_and_every_panel_query_runs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    built = build([ModelRequest("normal", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                                dynamic_batching=DynamicBatching(max_queue_delay_microseconds=2000))], repo)
    normal = built[0].name
    slow_control, flaky_control = tmp_path / "slow.json", tmp_path / "flaky.json"
    faulty_model(repo, "slow", slow_control)
    faulty_model(repo, "flaky", flaky_control)
    models = [normal, "slow", "flaky"]
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "rules.yml").write_text(yaml.safe_dump(alert_rules(SETTINGS)))
    timings: dict[str, float] = {}

    with LocalTriton(repo, log_file=tmp_path / "tritonserver.log") as triton:
        config = prometheus_config({TRITON_JOB: [f"{triton.host}:{triton.metrics_port}"]}, ["rules.yml"],
                                   scrape_interval="1s")
        with Prometheus(tmp_path / "prometheus", config) as prometheus:
            with bench_load(triton, models, tmp_path) as benches:
                # every model under load, seen by Prometheus
                wait_for(lambda: {s["metric"]["model"] for s in prometheus.query(
                    f'rate(nv_inference_request_success[{WINDOW_S}s]) > 0')} >= set(models), 60,
                    "load on every model", prometheus)
                # every rule loaded and evaluated without error
                assert [r["health"] for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]] == \
                    ["ok"] * sum(len(g["rules"]) for g in alert_rules(SETTINGS)["groups"])
                # normal load: nothing pending or firing over window + for + margin
                quiet_until = time.monotonic() + WINDOW_S + FOR_S + 3
                while time.monotonic() < quiet_until:
                    assert active(prometheus) == set(), "an alert under normal load"
                    time.sleep(0.5)

                # the slow fault: the compute-time alert, for that model only
                slow_control.write_text(json.dumps({"sleep_ms": SLEEP_MS}))
                timings["compute alert fired after"] = wait_for(
                    lambda: ("TritonComputeTimeHigh", "slow") in active(prometheus, "firing"), 60,
                    "the compute-time alert for the slow model", prometheus)
                assert active(prometheus, "firing") == {("TritonComputeTimeHigh", "slow")}
                fired = next(a for a in prometheus.alerts("firing"))
                assert float(fired["value"]) > SETTINGS.compute_ms
                assert fired["labels"]["severity"] == "warning" and "model slow" in fired["annotations"]["summary"]
                slow_control.unlink()
                timings["compute alert cleared after"] = wait_for(
                    lambda: not active(prometheus), 60, "the compute-time alert to clear", prometheus)

                # the error fault: the failures alert, for that model only
                flaky_control.write_text(json.dumps({"fail_every": FAIL_EVERY}))
                timings["failures alert fired after"] = wait_for(
                    lambda: ("TritonModelFailures", "flaky") in active(prometheus, "firing"), 60,
                    "the failures alert for the failing model", prometheus)
                assert active(prometheus, "firing") == {("TritonModelFailures", "flaky")}
                fired = next(a for a in prometheus.alerts("firing"))
                assert float(fired["value"]) > SETTINGS.failure_ratio
                assert fired["labels"]["severity"] == "critical"
                flaky_control.unlink()
                timings["failures alert cleared after"] = wait_for(
                    lambda: not active(prometheus), 60, "the failures alert to clear", prometheus)

                # every panel's query, with the load still on
                assert all(b.poll() is None for b in benches), "a bench process ended early"
                for panel in dashboard()["panels"]:
                    source = next((p.source for p in PANELS if p.title == panel["title"]), None)
                    for target in panel.get("targets", []):
                        result = prometheus.query(substituted(target["expr"], models))
                        if source == "triton":
                            assert {s["metric"].get("model") for s in result} == set(models), panel["title"]
                bad = prometheus.api("query", query="sum by (model (rate(nv_inference_count[10s]))")
                assert bad["status"] == "error" and bad["errorType"] == "bad_data"

                # what the panels show for this load
                batch = {s["metric"]["model"]: float(s["value"][1]) for s in prometheus.query(
                    substituted(next(p for p in PANELS if p.title == "Batch size achieved").targets[0][0],
                                models))}
                # the dynamic batcher batches the two requests in flight; the python models have none (the
                # ratio of two counters' rates is 1 only to within a request per scrape: 1.0002 seen in CI)
                assert batch[normal] > 1.2 and batch["slow"] == pytest.approx(1, abs=0.02), batch

            # Triton stops: the down alert, and nothing else (its series go stale)
            triton.stop()
            timings["down alert fired after"] = wait_for(
                lambda: ("TritonDown", f"{triton.host}:{triton.metrics_port}") in active(prometheus, "firing"), 60,
                "the Triton-down alert", prometheus)
            assert active(prometheus) == {("TritonDown", f"{triton.host}:{triton.metrics_port}")}
    print("\n" + "\n".join(f"{what}: {seconds:.1f} s" for what, seconds in timings.items()))
