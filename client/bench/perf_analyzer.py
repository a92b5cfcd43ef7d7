"""Run Triton's ``perf_analyzer`` and read its results into ``LevelResult`` rows.

perf_analyzer (C++, shipped in the NGC ``tritonserver:<yy.mm>-py3-sdk`` image) is one of ``tritonize bench``'s two
engines. What this module relies on, from triton-inference-server/perf_analyzer ``src/``:

- ``-f`` writes one CSV row per level that was *stable*, sorted by ascending Inferences/Second
  (``report_writer.cc``). ``--verbose-csv`` adds ``Avg latency`` (not with ``--percentile``), ``request/response``
  and ``response wait``; with ``--collect-metrics`` also four GPU columns valued ``<gpu uuid>:<value>;`` per GPU.
- A sweep stops at the first level that fails to stabilise or goes over ``--latency-threshold``; that level is not
  in the CSV (``inference_profiler.cc``, client PR #116) and the levels after it are never measured. Only when the
  *first* level fails does perf_analyzer exit non-zero (2, ``STABILITY_ERROR``; client PR #114), and then it writes
  no CSV at all.
- Failures go to stderr, per-level reports to stdout: both are read as one stream, so a request-rate failure
  (``Failed to obtain stable measurement.``, which names no rate) belongs to the ``Request Rate: ...`` line before it.
- Composing-model CSVs of an ensemble are written to ``<model>_v<version>.<-f value>``, which only works for a
  relative ``-f``: perf_analyzer runs inside ``workdir`` with a bare file name.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import SpecError, TritonClientError, UsageError
from .results import LevelResult, read_csv

ENV_VAR = "TRITONIZE_PERF_ANALYZER"
CSV_NAME = "perf_analyzer.csv"
HOW_TO_GET = ("perf_analyzer ships in NGC's SDK image nvcr.io/nvidia/tritonserver:<yy.mm>-py3-sdk: run there, put its "
              f"perf_analyzer on PATH or point {ENV_VAR} at it; or use the built-in load generator "
              "(tritonize bench --engine builtin)")
RANGE_FLAG = {"concurrency": "--concurrency-range", "request_rate": "--request-rate-range"}
GPU_COLUMNS = ("Avg GPU Utilization", "Avg GPU Power Usage", "Max GPU Memory Usage", "Total GPU Memory")
# Flags run() sets itself, or that change which levels are measured or where the results go.
MANAGED_FLAGS = frozenset({
    "-f", "--verbose-csv", "-m", "-u", "-i", "-x", "--concurrency-range", "--request-rate-range",
    "--request-intervals", "--periodic-concurrency-range", "--session-concurrency", "--schedule", "--binary-search",
    "-t", "-c", "-d",
})


class PerfAnalyzerError(TritonClientError):
    """perf_analyzer is missing, or failed without results; the message carries its own error line."""

    def __init__(self, message: str, returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


# ------------------------------------------------------------------------------------------------ options


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]


def _number(value: float) -> str:
    """How a level or setting is written on perf_analyzer's command line: 4, 12.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SpecError(name, value, " or ".join(repr(c) for c in choices))


def _positive_int(name: str, value: object, *, optional: bool = False, zero: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value < (0 if zero else 1):  # type: ignore[operator]
        raise SpecError(name, value, ("an integer >= 0" if zero else "a positive integer")
                        + (", or None" if optional else ""))


def _normalize_levels(mode: str, levels: object) -> tuple[float, ...]:
    values = tuple(levels) if isinstance(levels, (tuple, list)) else ()
    if not values or not all(_is_number(v) and v > 0 for v in values):
        raise SpecError("levels", levels, "a non-empty sequence of positive numbers")
    if mode == "concurrency":
        if not all(float(v).is_integer() for v in values):
            raise SpecError("levels", levels, "whole numbers of concurrent requests")
        return tuple(sorted({int(v) for v in values}))
    return tuple(sorted({float(v) for v in values}))


def _normalize_shapes(shapes: object) -> dict[str, tuple[int, ...]]:
    if not isinstance(shapes, Mapping):
        raise SpecError("shapes", shapes, "a mapping of input name to dims")
    normalized = {}
    for name, dims in shapes.items():
        dims_tuple = tuple(dims) if isinstance(dims, (tuple, list)) else ()
        if not isinstance(name, str) or not name or not dims_tuple or not all(
                _is_int(d) and d > 0 for d in dims_tuple):
            raise SpecError(f"shapes[{name!r}]", dims, "a non-empty sequence of positive integers (perf_analyzer's "
                            "--shape takes the dims without the batch, each > 0)")
        normalized[name] = dims_tuple
    return normalized


def _check_input_data(value: object) -> str:
    text = str(value) if isinstance(value, (str, os.PathLike)) else None
    if text in ("random", "zero"):
        return text
    path = Path(text) if text else None
    if path is None or not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".json")):
        raise SpecError("input_data", value, "'random', 'zero', or an existing directory or .json file "
                        "(perf_analyzer's --input-data)")
    return os.path.abspath(path)  # perf_analyzer runs inside run()'s workdir


def _check_extra_args(extra_args: object) -> tuple[str, ...]:
    args = tuple(extra_args) if isinstance(extra_args, (tuple, list)) else None
    if args is None or not all(isinstance(a, str) for a in args):
        raise SpecError("extra_args", extra_args, "a sequence of strings")
    for arg in args:
        flag = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
        if flag in MANAGED_FLAGS:
            raise SpecError("extra_args", arg, "no flag that tritonize sets itself or that changes the levels or "
                            f"the CSV ({', '.join(sorted(MANAGED_FLAGS))}); use the options instead")
    return args


@dataclass(frozen=True)
class PerfAnalyzerOptions:
    """One perf_analyzer measurement: a model, a load mode and its levels, and how to measure each level."""

    model: str
    url: str = "localhost:8001"  # host:port, no scheme
    protocol: str = "grpc"  # grpc | http
    mode: str = "concurrency"  # concurrency | request_rate
    levels: tuple[float, ...] = (1,)  # sorted and deduplicated; whole numbers for concurrency
    measurement_interval_ms: int = 5000
    measurement_mode: str = "time_windows"  # time_windows | count_windows
    measurement_request_count: int = 50  # count_windows only
    stability_percentage: float = 10
    max_trials: int = 10
    percentile: int | None = None  # stabilise on this percentile instead of the average (and report it)
    batch_size: int = 1
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict, hash=False)
    input_data: str = "random"  # random | zero | a directory or .json file
    shared_memory: str = "none"  # none | system | cuda
    output_shared_memory_size: int | None = None  # bytes; with shared memory only
    request_distribution: str = "constant"  # constant | poisson (request_rate only)
    async_mode: bool = False
    latency_threshold_ms: int | None = None  # stop the sweep at the first level over this
    collect_metrics: bool = False
    metrics_url: str | None = None  # with collect_metrics; default: the server's host, port 8002
    model_version: str = ""  # "" = the latest version
    extra_args: tuple[str, ...] = ()  # passed through last; perf_analyzer runs in workdir (mind relative paths)

    def __post_init__(self) -> None:
        self._check_target()
        _choice("mode", self.mode, tuple(RANGE_FLAG))
        object.__setattr__(self, "levels", _normalize_levels(self.mode, self.levels))
        self._check_measurement()
        self._check_inputs()
        self._check_load()
        self._check_metrics()
        object.__setattr__(self, "extra_args", _check_extra_args(self.extra_args))

    def _check_target(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise SpecError("model", self.model, "a model name")
        if not isinstance(self.url, str) or not self.url or "://" in self.url or self.url.startswith("-"):
            raise SpecError("url", self.url, "host:port without a scheme, e.g. localhost:8001")
        _choice("protocol", self.protocol, ("grpc", "http"))
        version = self.model_version
        if _is_int(version) and version >= 1:  # type: ignore[operator]
            object.__setattr__(self, "model_version", str(version))
        elif not isinstance(version, str) or not (version == "" or version.isdigit()):
            raise SpecError("model_version", version, "'' (the latest) or a version number")

    def _check_measurement(self) -> None:
        _positive_int("measurement_interval_ms", self.measurement_interval_ms)
        _choice("measurement_mode", self.measurement_mode, ("time_windows", "count_windows"))
        _positive_int("measurement_request_count", self.measurement_request_count)
        if not _is_number(self.stability_percentage) or self.stability_percentage < 0:
            raise SpecError("stability_percentage", self.stability_percentage, "a number >= 0 (percent)")
        _positive_int("max_trials", self.max_trials)
        if self.percentile is not None and (not _is_int(self.percentile) or not 1 <= self.percentile <= 99):
            raise SpecError("percentile", self.percentile, "an integer from 1 to 99, or None")

    def _check_inputs(self) -> None:
        _positive_int("batch_size", self.batch_size)
        object.__setattr__(self, "shapes", _normalize_shapes(self.shapes))
        object.__setattr__(self, "input_data", _check_input_data(self.input_data))
        _choice("shared_memory", self.shared_memory, ("none", "system", "cuda"))
        _positive_int("output_shared_memory_size", self.output_shared_memory_size, optional=True, zero=True)
        if self.output_shared_memory_size is not None and self.shared_memory == "none":
            raise SpecError("output_shared_memory_size", self.output_shared_memory_size,
                            "None when shared_memory is 'none' (it sizes the output regions)")

    def _check_load(self) -> None:
        _choice("request_distribution", self.request_distribution, ("constant", "poisson"))
        if self.mode == "concurrency" and self.request_distribution != "constant":
            raise SpecError("request_distribution", self.request_distribution,
                            "'constant' in concurrency mode (a distribution applies to request_rate only)")
        if not isinstance(self.async_mode, bool):
            raise SpecError("async_mode", self.async_mode, "True or False")
        _positive_int("latency_threshold_ms", self.latency_threshold_ms, optional=True)

    def _check_metrics(self) -> None:
        if not isinstance(self.collect_metrics, bool):
            raise SpecError("collect_metrics", self.collect_metrics, "True or False")
        if self.metrics_url is not None and (not isinstance(self.metrics_url, str) or not self.metrics_url):
            raise SpecError("metrics_url", self.metrics_url, "a URL such as localhost:8002/metrics, or None")
        if self.metrics_url is not None and not self.collect_metrics:
            raise SpecError("metrics_url", self.metrics_url, "None unless collect_metrics is True (perf_analyzer "
                            "refuses --metrics-url without --collect-metrics)")


# ------------------------------------------------------------------------------------------------ command


def find_perf_analyzer() -> str | None:
    """The perf_analyzer to run: ``$TRITONIZE_PERF_ANALYZER`` when set (it must be executable), else from PATH."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise SpecError(ENV_VAR, configured, "the path (or name on PATH) of an executable perf_analyzer")
        return found
    return shutil.which("perf_analyzer")


def _sweep(start: float, end: float, step: float, limit: int) -> list[float]:
    """The levels perf_analyzer visits for start:end:step (it adds step to a double until it passes end)."""
    value, visited = start, list[float]()
    while value <= end and len(visited) <= limit:
        visited.append(value)
        value += step
    return visited


def _progression(options: PerfAnalyzerOptions) -> str | None:
    """``start:end:step`` when one perf_analyzer sweep visits exactly ``options.levels``, else None."""
    levels = options.levels
    if len(levels) == 1:
        return f"{_number(levels[0])}:{_number(levels[0])}:1"
    step = levels[1] - levels[0] if options.mode == "concurrency" else round(levels[1] - levels[0], 9)
    text = f"{_number(levels[0])}:{_number(levels[-1])}:{_number(step)}"
    start, end, parsed_step = (float(part) for part in text.split(":"))  # what perf_analyzer's stod/stoull read
    visited = _sweep(start, end, parsed_step, len(levels))
    if len(visited) == len(levels) and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(visited, levels)):
        return text
    return None


def _level_csv(csv_path: Path, level: float) -> Path:
    return csv_path.with_name(f"{csv_path.stem}-{_number(level)}{csv_path.suffix}")


def _common_args(options: PerfAnalyzerOptions) -> list[str]:
    args = ["-m", options.model, *(["-x", options.model_version] if options.model_version else []),
            "-u", options.url, "-i", options.protocol, "-b", str(options.batch_size)]
    for name, dims in sorted(options.shapes.items()):
        args += ["--shape", f"{name}:{','.join(str(d) for d in dims)}"]
    args += ["--input-data", options.input_data, "--shared-memory", options.shared_memory]
    if options.output_shared_memory_size is not None:
        args += ["--output-shared-memory-size", str(options.output_shared_memory_size)]
    args += ["--measurement-mode", options.measurement_mode]
    if options.measurement_mode == "time_windows":
        args += ["--measurement-interval", str(options.measurement_interval_ms)]
    else:
        args += ["--measurement-request-count", str(options.measurement_request_count)]
    args += ["-s", _number(options.stability_percentage), "-r", str(options.max_trials)]
    if options.percentile is not None:
        args.append(f"--percentile={options.percentile}")
    if options.mode == "request_rate":
        args += ["--request-distribution", options.request_distribution]
    if options.async_mode:
        args.append("--async")
    if options.latency_threshold_ms is not None:
        args += ["--latency-threshold", str(options.latency_threshold_ms)]
    if options.collect_metrics:
        args.append("--collect-metrics")
    if options.metrics_url is not None:
        args += ["--metrics-url", options.metrics_url]
    return args


def _plan(options: PerfAnalyzerOptions, csv_path: Path, executable: str) -> list[tuple[list[str], Path]]:
    """(command, its CSV path) per perf_analyzer invocation."""
    common = [executable, *_common_args(options)]
    flag = RANGE_FLAG[options.mode]
    sweep = _progression(options)
    if sweep is not None:
        ranges = [(sweep, csv_path)]
    else:
        ranges = [(f"{_number(v)}:{_number(v)}:1", _level_csv(csv_path, v)) for v in options.levels]
    return [([*common, flag, text, "-f", str(path), "--verbose-csv", *options.extra_args], path)
            for text, path in ranges]


def command(options: PerfAnalyzerOptions, csv_path: Path, executable: str = "perf_analyzer") -> list[list[str]]:
    """perf_analyzer's command line(s): one sweep when the levels are an arithmetic progression, else one per level
    (each writing ``<csv stem>-<level><suffix>``)."""
    return [cmd for cmd, _ in _plan(options, Path(csv_path), executable)]


# ------------------------------------------------------------------------------------------------ stdout

_NUM = r"([0-9][0-9.eE+-]*)"
_BLOCK_CONCURRENCY = re.compile(r"^Request concurrency: (\d+)$")
# Older builds print "per seconds" (issue 10, item 12): accept both, or their levels lose their reports and
# stability failures.
_BLOCK_RATE = re.compile(rf"^Request Rate: {_NUM} inference requests per seconds?$")
_SUMMARY_HEADER = re.compile(r"^Inferences/Second vs\. Client (Average|p\d+) Batch Latency$")
# perf_client up to TRTIS 1.8 (19.11) printed no "throughput: " ("Concurrency: 1, 161.8 infer/sec, ..."; server
# PR #865 added it): accept both, or those summary lines are lost.
_SUMMARY = re.compile(rf"^(Concurrency|Request Rate): {_NUM}, (?:throughput: )?{_NUM} infer/sec, latency (\d+) usec$")
_UNSTABLE = re.compile(r"^Failed to obtain stable measurement within \d+ measurement windows for concurrency (\d+)\.")
_UNSTABLE_BARE = "Failed to obtain stable measurement."
_OVER_LATENCY = re.compile(r"^Measured latency went over the set limit of \d+ msec\.")
_REQUEST_COUNT = re.compile(r"^Request count: (\d+)$")
_THROUGHPUT = re.compile(rf"^Throughput: {_NUM} infer/sec$")
_SERVER_LATENCY = re.compile(r"^Avg request latency: (\d+) usec")
_ERROR = re.compile(r"^(error:|Failed to |Thread \[\d+\] had error|No valid requests recorded|Received exit signal|"
                    r"can ?not |Cannot |Decoupled models must|unsupported |Server side statistics|"
                    r"[A-Za-z]*Error: |Traceback |terminate called)", re.IGNORECASE)
_WARNING = re.compile(r"^(\[WARNING\]|WARNING:|Warning:)")


@dataclass(frozen=True)
class SummaryLine:
    """``Concurrency: 1, throughput: 1407.84 infer/sec, latency 708 usec`` (latency: average, or the percentile)."""

    mode: str
    level: float
    throughput: float
    latency_us: float


@dataclass(frozen=True)
class LevelReport:
    """The per-level block perf_analyzer prints for a stable level (client ``Request count``, server total)."""

    mode: str
    level: float
    requests: int | None = None
    throughput: float | None = None
    server_request_us: float | None = None


@dataclass(frozen=True)
class StdoutInfo:
    """What perf_analyzer's combined stdout/stderr says, level by level."""

    summary: tuple[SummaryLine, ...] = ()
    latency_metric: str = ""  # "average" or "pNN": what the summary's latency is
    reports: tuple[LevelReport, ...] = ()
    unstable_levels: tuple[float, ...] = ()  # reported "Failed to obtain stable measurement"
    over_latency_levels: tuple[float, ...] = ()  # reported "Measured latency went over the set limit"
    errors: tuple[str, ...] = ()  # failure lines, in order
    warnings: tuple[str, ...] = ()


class _StdoutScan:
    """Reads the output line by line, remembering which level's block and which section it is in."""

    def __init__(self) -> None:
        self.level: tuple[str, float] | None = None
        self.section = ""  # client | server | other
        self.reports: dict[tuple[str, float], LevelReport] = {}
        self.summary: list[SummaryLine] = []
        self.latency_metric = ""
        self.unstable: list[float] = []
        self.over_latency: list[float] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def feed(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        for step in (self._block, self._section, self._report, self._summary, self._failure):
            if step(text):
                return
        if _WARNING.match(text):
            self.warnings.append(text)

    def _block(self, text: str) -> bool:
        match = _BLOCK_CONCURRENCY.match(text) or _BLOCK_RATE.match(text)
        if match is None:
            return False
        mode = "concurrency" if match.re is _BLOCK_CONCURRENCY else "request_rate"
        self.level, self.section = (mode, float(match.group(1))), ""
        return True

    def _section(self, text: str) -> bool:
        names = {"Client:": "client", "Server:": "server", "Server Prometheus Metrics:": "other",
                 "Composing models:": "other"}
        if text in names:
            self.section = names[text]
            return True
        return False

    def _update(self, **values: float | int) -> None:
        if self.level is not None:
            report = self.reports.get(self.level) or LevelReport(*self.level)
            self.reports[self.level] = replace(report, **values)  # type: ignore[arg-type]

    def _report(self, text: str) -> bool:
        if self.section == "client":
            if match := _REQUEST_COUNT.match(text):
                self._update(requests=int(match.group(1)))
                return True
            if match := _THROUGHPUT.match(text):
                self._update(throughput=float(match.group(1)))
                return True
        if self.section == "server" and (match := _SERVER_LATENCY.match(text)):
            self._update(server_request_us=float(match.group(1)))
            self.section = "other"  # the first one is the model's own; composing models follow
            return True
        return False

    def _summary(self, text: str) -> bool:
        if match := _SUMMARY_HEADER.match(text):
            self.latency_metric = "average" if match.group(1) == "Average" else match.group(1)
            self.level, self.section = None, ""
            return True
        if match := _SUMMARY.match(text):
            mode = "concurrency" if match.group(1) == "Concurrency" else "request_rate"
            self.summary.append(SummaryLine(mode, float(match.group(2)), float(match.group(3)),
                                            float(match.group(4))))
            return True
        return False

    def _failure(self, text: str) -> bool:
        current = self.level[1] if self.level is not None else None
        if match := _UNSTABLE.match(text):
            _add(self.unstable, float(match.group(1)))
        elif text == _UNSTABLE_BARE and current is not None:
            _add(self.unstable, current)
        elif _OVER_LATENCY.match(text):
            if current is not None:
                _add(self.over_latency, current)
            return True
        elif not _ERROR.match(text):
            return False
        self.errors.append(text)
        return True

    def result(self) -> StdoutInfo:
        return StdoutInfo(tuple(self.summary), self.latency_metric, tuple(self.reports.values()),
                          tuple(self.unstable), tuple(self.over_latency), tuple(self.errors), tuple(self.warnings))


def _add(values: list[float], value: float) -> None:
    if value not in values:
        values.append(value)


def parse_stdout(text: str) -> StdoutInfo:
    """Summary lines, per-level reports, unstable / over-latency levels, errors and warnings of one run's output
    (stdout and stderr together, as ``run`` captures them)."""
    scan = _StdoutScan()
    for line in text.splitlines():
        scan.feed(line)
    return scan.result()


# ------------------------------------------------------------------------------------------------ CSV


def read_gpu_metrics(path: Path) -> dict[float, dict[str, dict[str, float]]]:
    """``--collect-metrics`` columns of a perf_analyzer CSV: level -> column -> GPU UUID -> value (``{}`` if none)."""
    metrics: dict[float, dict[str, dict[str, float]]] = {}
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        level_column = next((c for c in ("Concurrency", "Request Rate") if c in columns), None)
        present = [c for c in GPU_COLUMNS if c in columns]
        if level_column is None or not present:
            return metrics
        for row in reader:
            metrics[float(row[level_column])] = {c: _gpu_values(row.get(c) or "") for c in present}
    return metrics


def _gpu_values(cell: str) -> dict[str, float]:
    values = {}
    for entry in cell.split(";"):
        uuid, sep, number = entry.strip().rpartition(":")
        if sep and uuid:
            values[uuid] = float(number)
    return values


# ------------------------------------------------------------------------------------------------ run


@dataclass
class PerfAnalyzerRun:
    """The merged result of one ``run``: rows ordered by level, plus what perf_analyzer said about the rest."""

    rows: list[LevelResult]
    stdout: str  # stdout and stderr of every invocation, in order
    returncode: int  # the first non-zero exit status, else 0
    commands: list[list[str]]
    levels: tuple[float, ...] = ()  # requested
    unstable_levels: tuple[float, ...] = ()  # failed to stabilise: no row (perf_analyzer >= 22.07) or stable=False
    over_latency_levels: tuple[float, ...] = ()  # measured over latency_threshold_ms: no row
    unmeasured_levels: tuple[float, ...] = ()  # never reached: the sweep stopped at an earlier level
    errors: tuple[str, ...] = ()  # perf_analyzer's failure lines, stability failures included
    warnings: tuple[str, ...] = ()
    gpu_metrics: dict[float, dict[str, dict[str, float]]] = field(default_factory=dict)  # level -> column -> GPU
    csv_paths: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every requested level has a stable row."""
        stable = {r.level for r in self.rows if r.stable}
        return all(level in stable for level in self.levels)


@dataclass
class _Invocation:
    command: list[str]
    csv_path: Path
    returncode: int
    output: str
    info: StdoutInfo
    rows: list[LevelResult]

    @property
    def explained(self) -> bool:
        """perf_analyzer said why a level has no row (unstable, or over the latency limit)."""
        return bool(self.info.unstable_levels or self.info.over_latency_levels)


def _resolve_executable(executable: str | None) -> str:
    found = find_perf_analyzer() if executable is None else shutil.which(executable)
    if found is None:
        where = "on PATH" if executable is None else repr(executable)
        raise PerfAnalyzerError(f"perf_analyzer not found ({where} is not an executable perf_analyzer): "
                                f"{HOW_TO_GET}")
    return os.path.abspath(found)  # perf_analyzer runs inside workdir


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(info: StdoutInfo, output: str) -> str:
    """perf_analyzer's own words: its first error line (with the worker thread's error when it gave one)."""
    if info.errors:
        thread = next((e for e in info.errors[1:] if "had error" in e), "")
        return _one_line(f"{info.errors[0]} {thread}")
    lines = [line for line in output.splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else "no output"


def _failure(inv: _Invocation) -> PerfAnalyzerError:
    reason = _reason(inv.info, inv.output)
    if inv.returncode == 0:
        message = f"perf_analyzer exited 0 without writing {inv.csv_path.name}: {reason}"
    else:
        message = f"perf_analyzer failed (exit {inv.returncode}): {reason}"
    return PerfAnalyzerError(message, inv.returncode, inv.output)


def _read_rows(csv_path: Path, returncode: int, output: str) -> list[LevelResult]:
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return []
    try:
        return read_csv(csv_path)
    except (UsageError, ValueError, KeyError) as e:
        if returncode != 0:
            return []
        raise PerfAnalyzerError(f"perf_analyzer wrote an unreadable CSV {csv_path}: {_one_line(str(e))}",
                                returncode, output) from e


def _invoke(cmd: list[str], csv_path: Path, workdir: Path, deadline: float | None,
            timeout_s: float | None) -> _Invocation:
    (workdir / csv_path).unlink(missing_ok=True)  # never read a previous run's results
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    try:
        done = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", timeout=remaining, check=False)
    except OSError as e:
        raise PerfAnalyzerError(f"cannot run {cmd[0]}: {e.strerror or e}; {HOW_TO_GET}") from e
    except subprocess.TimeoutExpired as e:
        output = e.output if isinstance(e.output, str) else (e.output or b"").decode(errors="replace")
        raise PerfAnalyzerError(f"perf_analyzer did not finish within {timeout_s:g} s and was stopped: raise the "
                                "timeout, or measure fewer levels or shorter windows", None, output) from e
    rows = _read_rows(workdir / csv_path, done.returncode, done.stdout)
    return _Invocation(cmd, workdir / csv_path, done.returncode, done.stdout, parse_stdout(done.stdout), rows)


def _snap(value: float, levels: Sequence[float]) -> float:
    """The requested level a CSV or stdout value stands for (perf_analyzer prints doubles with 6 digits)."""
    return next((level for level in levels if math.isclose(value, level, rel_tol=1e-5)), value)


def _snapped(values: Iterable[float], levels: Sequence[float]) -> tuple[float, ...]:
    return tuple(dict.fromkeys(_snap(v, levels) for v in values))


def _complete_row(row: LevelResult, reports: Mapping[float, LevelReport], unstable: Sequence[float],
                  batch_size: int) -> LevelResult:
    """Add what only stdout has (request count, Triton's own request latency) and the stability verdict."""
    report = reports.get(row.level)
    requests = report.requests if report is not None and report.requests is not None else row.requests
    window_s = requests * batch_size / row.throughput if requests and row.throughput > 0 else row.window_s
    server_us = report.server_request_us if report is not None else None
    return replace(row, requests=requests, window_s=window_s,
                   server_request_us=server_us if server_us is not None else row.server_request_us,
                   stable=row.stable and row.level not in unstable)


def _merge(options: PerfAnalyzerOptions, invocations: list[_Invocation]) -> PerfAnalyzerRun:
    levels = options.levels
    for inv in invocations:
        if not inv.rows and not inv.explained:
            raise _failure(inv)
    rows = [replace(r, level=_snap(r.level, levels)) for inv in invocations for r in inv.rows]
    failed = [inv for inv in invocations if inv.returncode != 0]
    if not rows and failed:
        raise _failure(failed[0])
    unstable = _snapped((v for inv in invocations for v in inv.info.unstable_levels), levels)
    over = _snapped((v for inv in invocations for v in inv.info.over_latency_levels), levels)
    reports = {_snap(r.level, levels): r for inv in invocations for r in inv.info.reports}
    rows = sorted((_complete_row(r, reports, unstable, options.batch_size) for r in rows), key=lambda r: r.level)
    seen = {r.level for r in rows} | set(unstable) | set(over)
    gpu = {_snap(level, levels): values for inv in invocations if inv.rows
           for level, values in read_gpu_metrics(inv.csv_path).items()}
    return PerfAnalyzerRun(
        rows=rows, stdout="".join(inv.output for inv in invocations),
        returncode=failed[0].returncode if failed else 0, commands=[inv.command for inv in invocations],
        levels=levels, unstable_levels=unstable, over_latency_levels=over,
        unmeasured_levels=tuple(level for level in levels if level not in seen),
        errors=tuple(e for inv in invocations for e in inv.info.errors),
        warnings=tuple(w for inv in invocations for w in inv.info.warnings), gpu_metrics=gpu,
        csv_paths=[inv.csv_path for inv in invocations if inv.rows])


def run(options: PerfAnalyzerOptions, workdir: Path, executable: str | None = None,
        timeout_s: float | None = None) -> PerfAnalyzerRun:
    """Run perf_analyzer in ``workdir`` and read its CSV(s) and output.

    A level that fails to stabilise, or goes over the latency limit, is reported in the result (perf_analyzer
    stops its sweep there), not raised, as long as some level produced results. Raises ``PerfAnalyzerError`` when
    perf_analyzer is missing, runs past ``timeout_s`` (all invocations together) or fails without a usable CSV.
    """
    exe = _resolve_executable(executable)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    invocations: list[_Invocation] = []
    for cmd, csv_path in _plan(options, Path(CSV_NAME), exe):
        invocations.append(_invoke(cmd, csv_path, workdir, deadline, timeout_s))
        if invocations[-1].info.over_latency_levels:
            break  # as perf_analyzer's own sweep does: higher levels will not meet the limit either
    return _merge(options, invocations)
