"""``run_benchmark``: one served model, several load levels, one engine, one result format, Triton's metrics."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from tritonize.core.loader import summary
from tritonize.core.log import logger

from ..client import TritonClient
from ..errors import UsageError
from ..transport import Endpoint
from . import metrics as prometheus
from .loadgen import Target
from .measure import Settings, make_inputs, measure_level
from .results import LevelResult


@dataclass(frozen=True)
class BenchRequest:
    model: str
    url: str = "localhost:8001"
    protocol: str | None = None
    version: str = ""
    mode: str = "concurrency"  # concurrency | request_rate
    levels: tuple[float, ...] = (1.0,)
    distribution: str = "constant"  # request_rate: constant | poisson
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    input_data: str = "random"  # random | zero | an .npz of arrays by input name
    settings: Settings = field(default_factory=Settings)
    engine: str = "auto"  # auto (perf_analyzer when on PATH) | builtin | perf_analyzer
    shared_memory: str = "none"  # perf_analyzer only
    metrics_url: str | None = None  # default: the server's host, port 8002
    ready_timeout_s: float = 60.0  # how long to wait for the server and model to be ready

    def __post_init__(self) -> None:
        if self.mode not in ("concurrency", "request_rate"):
            raise UsageError(f"mode: got {self.mode!r}, expected concurrency or request_rate")
        if not self.levels or any(level <= 0 for level in self.levels):
            raise UsageError(f"levels: got {list(self.levels)}, expected positive numbers")
        if self.mode == "concurrency" and any(level != int(level) for level in self.levels):
            raise UsageError(f"--concurrency: got {list(self.levels)}, expected whole numbers")
        if self.distribution not in ("constant", "poisson"):
            raise UsageError(f"--distribution: got {self.distribution!r}, expected constant or poisson")
        if self.engine not in ("auto", "builtin", "perf_analyzer"):
            raise UsageError(f"--engine: got {self.engine!r}, expected auto, builtin or perf_analyzer")
        if not self.ready_timeout_s > 0:
            raise UsageError(f"--ready-timeout: got {self.ready_timeout_s}, expected seconds > 0")
        if self.input_data not in ("random", "zero"):
            _check_input_data(self.input_data, self.engine)


def _check_input_data(path: str, engine: str) -> None:
    """``--input-data`` other than random/zero: an existing file (or perf_analyzer's directory); an .npz must
    hold plain arrays (nothing is unpickled). Checked before connecting, so a typo does not wait for a server."""
    expected = "random, zero, an existing .npz of arrays by input name"
    if engine != "builtin":
        expected += " (or, for perf_analyzer, a directory or .json file)"
    if not Path(path).exists():
        raise UsageError(f"--input-data: got {path!r}, expected {expected}")
    if not path.endswith(".npz"):
        if engine == "builtin":
            raise UsageError(f"--input-data: got {path!r}, expected {expected}")
        return  # perf_analyzer's own formats, checked by PerfAnalyzerOptions
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise UsageError(f"--input-data: got {path!r}, expected {expected} (not a zip of .npy arrays)")
        with data:
            for name in data.files:
                data[name]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"--input-data: got {path!r}, expected {expected}, without pickled objects "
                         f"({summary(exc)})") from None


@dataclass
class BenchResult:
    engine: str
    rows: list[LevelResult]
    metrics: dict[str, Any]
    config: dict[str, Any]
    server: dict[str, Any]
    unmeasured: dict[float, str] = field(default_factory=dict)  # level -> why it has no row (perf_analyzer)


def default_metrics_url(url: str, protocol: str | None) -> str:
    host = urlparse(f"//{Endpoint.parse(url, protocol).address}").hostname or "localhost"
    return f"http://{host}:8002/metrics"


def _engine(request: BenchRequest) -> str:
    if request.engine != "auto":
        return request.engine
    from .perf_analyzer import find_perf_analyzer

    return "perf_analyzer" if find_perf_analyzer() else "builtin"


def run_benchmark(request: BenchRequest) -> BenchResult:
    engine = _engine(request)
    if engine == "builtin" and request.shared_memory != "none":
        raise UsageError("--shared-memory: only with --engine perf_analyzer (the built-in generator sends tensors "
                         "in the request)")
    metrics_url = request.metrics_url or default_metrics_url(request.url, request.protocol)
    with TritonClient(request.url, protocol=request.protocol) as client:
        client.wait_until_ready(request.model, request.version, timeout_s=request.ready_timeout_s)
        info = client.model(request.model, request.version).info
        config = client.model_config(request.model, request.version)
        server = client.server_metadata()
        before = prometheus.scrape(metrics_url)
        unmeasured: dict[float, str] = {}
        if engine == "builtin":
            rows = _builtin(request, client, info)
        else:
            rows, unmeasured = _perf_analyzer(request)
        after = prometheus.scrape(metrics_url)
    return BenchResult(engine, rows, prometheus.summarize(before, after, request.model), config, server,
                       unmeasured)


_log = logger(__name__)


def _builtin(request: BenchRequest, client: TritonClient, info: Any) -> list[LevelResult]:
    inputs = make_inputs(info, request.settings.batch_size, request.shapes, request.input_data)
    endpoint = client.endpoint
    target = Target(f"{endpoint.protocol}://{endpoint.address}", endpoint.protocol, request.model, request.version,
                    inputs, request.mode, request.distribution)
    return [measure_level(target, level, request.settings, client) for level in request.levels]


def _perf_analyzer(request: BenchRequest) -> tuple[list[LevelResult], dict[float, str]]:
    """perf_analyzer writes no row for a level that does not stabilise and stops the sweep there: those
    levels come back as ``unmeasured`` with the reason."""
    from .perf_analyzer import PerfAnalyzerOptions, run

    s = request.settings
    endpoint = Endpoint.parse(request.url, request.protocol)
    options = PerfAnalyzerOptions(
        model=request.model, url=endpoint.address, protocol=endpoint.protocol, mode=request.mode,
        levels=tuple(request.levels), measurement_interval_ms=int(s.interval_s * 1000),
        stability_percentage=round(s.stability * 100), max_trials=s.max_trials, percentile=s.percentile,
        batch_size=s.batch_size, shapes=dict(request.shapes), input_data=request.input_data,
        shared_memory=request.shared_memory, request_distribution=request.distribution,
        model_version=request.version)
    workdir = Path(tempfile.mkdtemp(prefix="tritonize-pa-"))
    try:
        _log.info(f"perf_analyzer: {request.mode} {', '.join(f'{x:g}' for x in request.levels)}")
        result = run(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    unmeasured = {level: "did not stabilise" for level in result.unstable_levels}
    unmeasured.update({level: "over the latency threshold" for level in result.over_latency_levels})
    unmeasured.update({level: "not measured (the sweep stopped)" for level in result.unmeasured_levels
                       if level not in unmeasured})
    return list(result.rows), unmeasured
