"""``tritonize monitor``: what a running Triton is doing, per model and version, from its statistics and metrics
(``tritonize.client.monitor``): a live table, or one measurement with ``--once``.

``--once --output json`` prints one object::

    {"url": "localhost:8001", "metrics_url": "http://localhost:8002/metrics",
     "metrics": true,                      # the metrics endpoint answered
     "at": "2026-12-02T13:30:00Z",         # end of the interval (UTC)
     "interval_s": 2.0,                    # measured between the two statistics reads
     "models": [{
        "model": "digits_onnx", "version": "1",
        "requests_per_s": 120.5, "inferences_per_s": 964.0,
        "failures": 0, "failures_per_s": 0.0,                  # requests the model failed, in the interval
        "queue_ms": {"p50": 0.01, "p99": 1.9, "mean": 0.4},    # per request
        "compute_ms": {"p50": 0.7, "p99": 1.1, "mean": 0.72},  # the model's inference time per request
        "latency_source": "summary",   # p50/p99 from Triton's summaries; "average": not exported, p50/p99 null
        "batch": 8.0,                  # inferences per execution (null: nothing executed)
        "instances": 2, "instance_use": 0.35,   # busy share of the config's instances (null: no instances)
        "interval": {"success": 241, "fail": 0, "inference_count": 1928, "execution_count": 241},
        "cumulative": {"success": 5018, "fail": 0, "inference_count": 40144, "execution_count": 5018,
                       "batch_executions": {"8": 5018}}}]}   # as the server reports them (warmup included)

Rates and interval counts are over ``--interval`` seconds; ``mean`` (and p50/p99) are null when no request ran.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from tritonize.core.errors import SpecError
from tritonize.core.text import Table

from .options import output_option, url_option

COLUMNS = ("model", "version", "req/s", "failures", "queue ms p50/p99", "compute ms p50/p99", "batch",
           "instance use", "total ok/failed")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 10 else f"{value:.0f}"


def _latency(latency: Any, source: str) -> str:
    if source == "summary":
        return f"{_ms(latency.p50)} / {_ms(latency.p99)}"
    return "-" if latency.mean is None else f"{_ms(latency.mean)} avg"


def cells(row: Any) -> list[str]:
    """A measurement (``ModelActivity``) as the table's cells."""
    failures = f"{row.fail} ({row.failures_per_s:.1f}/s)" if row.fail else "0"
    use = "-" if row.instance_use is None else f"{row.instance_use:.0%} of {row.instances}"
    return [row.model, row.version, f"{row.requests_per_s:.1f}", failures, _latency(row.queue, row.latency_source),
            _latency(row.compute, row.latency_source), "-" if row.batch is None else f"{row.batch:.2f}", use,
            f"{row.cumulative.success} / {row.cumulative.fail}"]


def _note(rows: list[Any], metrics: bool) -> str:
    if not rows or all(r.latency_source == "summary" for r in rows):
        return "p50/p99 from Triton's summaries (sliding window)"
    why = "no summaries exported (--metrics-config=summary_latencies=true)" if metrics else \
        "the metrics endpoint does not answer"
    return f"queue/compute: the interval's mean per request ({why})"


def live_table(rows: list[Any], title: str, caption: str, empty: str = "(no model versions loaded)") -> Any:
    from rich.table import Table as RichTable

    table = RichTable(*COLUMNS, title=title, caption=caption, title_justify="left", caption_justify="left")
    for row in rows:
        table.add_row(*cells(row))
    if not rows:
        table.add_row(empty, *[""] * (len(COLUMNS) - 1))
    return table


@click.command("monitor")
@url_option()
@click.option("--metrics-url", default=None, help="Triton's Prometheus endpoint (default: the --url host, port 8002).")
@click.option("--interval", "interval_s", type=float, default=2.0, show_default=True,
              help="Seconds between two measurements.")
@click.option("--model", "models", multiple=True, metavar="M", help="Only this model (repeatable); default: all.")
@click.option("--once", is_flag=True, help="Measure one interval, print it and exit.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
              help="Seconds each statistics or metrics read may take.")
@output_option
def monitor_command(url: str, metrics_url: str | None, interval_s: float, models: tuple[str, ...], once: bool,
                    timeout_s: float, output: str) -> None:
    """Watch a running Triton: per model and version, requests/s, failures, p50/p99 queue and compute time,
    batch size achieved and instance use. Ctrl-C ends the live view.

    \b
    Example:
      tritonize monitor --url localhost:8001
      tritonize monitor --once --output json --model digits_onnx
    """
    from tritonize.client.bench.harness import default_metrics_url
    from tritonize.client.client import TritonClient
    from tritonize.client.errors import ServerUnavailableError
    from tritonize.client.monitor import Monitor

    if not 0.1 <= interval_s <= 3600:
        raise SpecError("--interval", interval_s, "seconds between 0.1 and 3600")
    if not timeout_s > 0:
        raise SpecError("--timeout", timeout_s, "seconds > 0")
    if output == "json" and not once:
        raise SpecError("--output", output, "table for the live view (json goes with --once)")
    metrics_url = metrics_url or default_metrics_url(url, None)
    with TritonClient(url, retry=None, timeout_s=timeout_s) as client:
        monitor = Monitor(client, metrics_url, models, timeout_s)
        try:
            before = monitor.snapshot()
        except ServerUnavailableError as exc:
            raise ServerUnavailableError(f"--url {url}: no Triton answers ({exc})") from None
        if once:
            time.sleep(interval_s)
            after = monitor.snapshot()
            _print_once(url, metrics_url, after, monitor.measure(before, after), output)
            return
        _live(url, monitor, before, interval_s)


def _print_once(url: str, metrics_url: str, after: Any, rows: list[Any], output: str) -> None:
    interval = rows[0].interval_s if rows else None
    if output == "json":
        click.echo(json.dumps({"url": url, "metrics_url": metrics_url, "metrics": after.metrics is not None,
                               "at": after.at, "interval_s": interval, "models": [r.as_dict() for r in rows]},
                              indent=2))
        return
    table = Table(COLUMNS)
    for row in rows:
        table.add(*cells(row))
    click.echo(table.text() if rows else "no model versions loaded")
    click.echo(_note(rows, after.metrics is not None), err=True)


def _live(url: str, monitor: Any, before: Any, interval_s: float) -> None:
    from rich.console import Console
    from rich.live import Live

    title = f"Triton at {url}, every {interval_s:g} s"
    try:
        with Live(live_table([], title, "", empty="measuring..."), console=Console(), auto_refresh=False,
                  transient=False) as live:
            live.refresh()
            while True:
                time.sleep(max(0.0, before.time + interval_s - time.monotonic()))
                after = monitor.snapshot()
                rows = monitor.measure(before, after)
                live.update(live_table(rows, f"{title} - {after.at}", _note(rows, after.metrics is not None)
                                       + "; Ctrl-C ends"), refresh=True)
                before = after
    except KeyboardInterrupt:
        return
