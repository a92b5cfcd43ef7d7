"""``tritonize bench``: measure a served model under load and gate an SLA (exit 0 met, 1 missed, 2 usage)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from tritonize.core.errors import SpecError

from .options import echo_tables, output_option, url_option


def _levels(text: str, option: str) -> tuple[float, ...]:
    whole = option == "--concurrency"
    expected = "comma-separated whole numbers >= 1, e.g. 1,4,16,64" if whole else \
        "comma-separated requests/s > 0, e.g. 100,200,400"
    try:
        levels = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SpecError(option, text, expected) from None
    if any(not math.isfinite(v) or v <= 0 or (whole and v != int(v)) for v in levels):
        raise SpecError(option, text, expected)
    return levels


def _shapes(pairs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for pair in pairs:
        name, sep, dims = pair.partition(":")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise SpecError("--shape", pair, "NAME:D1,D2,... (the dims without the batch)") from None
        if not sep or not name:
            raise SpecError("--shape", pair, "NAME:D1,D2,...")
    return shapes


@click.command("bench")
@click.argument("model")
@url_option()
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default=None)
@click.option("--version", "version", default="")
@click.option("--concurrency", default=None, help="Closed loop at these concurrencies, e.g. 1,4,16,64.")
@click.option("--request-rate", default=None, help="Open loop at these requests/s, e.g. 100,200,400.")
@click.option("--distribution", type=click.Choice(["constant", "poisson"]), default="constant", show_default=True)
@click.option("--measurement-interval-ms", type=int, default=2000, show_default=True)
@click.option("--warmup-s", type=float, default=1.0, show_default=True)
@click.option("--stability", type=float, default=10.0, show_default=True,
              help="Percent: the last three windows within ±this of their mean.")
@click.option("--max-trials", type=int, default=10, show_default=True)
@click.option("--percentile", type=int, default=None, help="Stabilise on (and report) this percentile.")
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--shape", "shapes", multiple=True, metavar="NAME:D1,D2", help="Sizes for -1 dims.")
@click.option("--input-data", default="random", show_default=True, help="random, zero, or an .npz by input name.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Built-in generator processes (raise when one cannot saturate the server).")
@click.option("--engine", type=click.Choice(["auto", "builtin", "perf_analyzer"]), default="auto",
              show_default=True, help="auto: perf_analyzer when it is on PATH.")
@click.option("--shared-memory", type=click.Choice(["none", "system", "cuda"]), default="none",
              help="perf_analyzer only.")
@click.option("--sla", "slas", multiple=True, metavar="GATE",
              help="e.g. 'p99<=20ms', 'throughput>=500/s', 'errors<=1%', 'avg<5ms@16'.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write report.json, report.md, results.csv and latency_throughput.png here.")
@click.option("--metrics-url", default=None, help="Triton's Prometheus endpoint (default: host:8002/metrics).")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the server and model to be ready.")
@output_option
def bench_command(model: str, url: str, protocol: str | None, version: str, concurrency: str | None,
                  request_rate: str | None, distribution: str, measurement_interval_ms: int, warmup_s: float,
                  stability: float, max_trials: int, percentile: int | None, batch_size: int,
                  shapes: tuple[str, ...], input_data: str, workers: int, engine: str, shared_memory: str,
                  slas: tuple[str, ...], report_dir: Path | None, metrics_url: str | None, ready_timeout: float,
                  output: str) -> None:
    """Measure latency and throughput of a served model under load; exit 1 when an SLA gate fails.

    \b
    Example:
      tritonize bench digits_onnx --url localhost:8001 --concurrency 1,4,16,64 \\
          --sla "p99<=20ms" --sla "throughput>=500/s" --report reports/digits/
    """
    from tritonize.client.bench import report, sla
    from tritonize.client.bench.harness import BenchRequest, run_benchmark
    from tritonize.client.bench.measure import Settings

    if batch_size < 1:
        raise SpecError("--batch-size", batch_size, "an integer >= 1 (samples per request)")
    if (concurrency is None) == (request_rate is None):
        raise SpecError("--concurrency/--request-rate", "both" if concurrency else "neither", "exactly one")
    gates = [sla.Gate.parse(text) for text in slas]
    mode = "concurrency" if concurrency else "request_rate"
    levels = _levels(concurrency or request_rate or "", f"--{mode.replace('_', '-')}")
    for gate in gates:
        if gate.level is not None and gate.level not in levels:
            raise SpecError("--sla", gate.text, f"a level that is measured ({', '.join(f'{v:g}' for v in levels)})")
    request = BenchRequest(
        model=model, url=url, protocol=protocol, version=version, mode=mode, levels=levels,
        distribution=distribution, shapes=_shapes(shapes), input_data=input_data, engine=engine,
        shared_memory=shared_memory, metrics_url=metrics_url, ready_timeout_s=ready_timeout,
        settings=Settings(interval_s=measurement_interval_ms / 1000, warmup_s=warmup_s,
                          stability=stability / 100, max_trials=max_trials, percentile=percentile,
                          workers=workers, batch_size=batch_size),
    )
    result = run_benchmark(request)
    echo_tables({"levels": report.levels_table(result.rows)}, output)
    for level, why in sorted(result.unmeasured.items()):
        click.echo(f"level {level:g}: no result: perf_analyzer {why}", err=True)
    outcomes = sla.evaluate(gates, result.rows)
    if outcomes:
        click.echo("\n" + "\n".join(o.describe() for o in outcomes))
    if report_dir is not None:
        written = report.write_reports(report_dir, model, result.engine, result.rows, outcomes, result.metrics,
                                       result.config, result.server)
        click.echo(f"reports: {', '.join(str(p) for p in written)}", err=True)
    failed = [o for o in outcomes if not o.passed]
    if gates and result.unmeasured:
        click.echo(f"SLA not verified: {len(result.unmeasured)} level(s) have no result", err=True)
        raise click.exceptions.Exit(1)
    if failed:
        click.echo(f"SLA missed: {len(failed)} of {len(outcomes)} gate(s) failed", err=True)
        raise click.exceptions.Exit(1)
