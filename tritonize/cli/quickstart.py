"""``tritonize quickstart``: the whole job on the bundled example, in one command.

Build the example repository (digits CNN and token-sequence classifier, ONNX + TorchScript + INT8; a review
classifier behind its tokenizer and a digit-image classifier behind its image preprocessing, served as
ensembles that take strings and PNG bytes; dynamic batching; verified), serve it on a local tritonserver, send
held-out data through gRPC one request per sample (concurrently, so the dynamic batcher forms batches), compare
every prediction with the eager model (behind the training preprocessing, for raw inputs), print accuracy and
latency per artifact, stop the server.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from tritonize.core.errors import TritonizeError
from tritonize.core.log import quiet
from tritonize.core.stats import percentile
from tritonize.core.text import Table

from .options import echo_tables, output_option

EXAMPLE_SPEC = "tritonize.toml"  # in tritonize.generator.examples


@dataclass
class ArtifactResult:
    model: str
    eager_accuracy: float
    triton_accuracy: float
    agreement: float
    max_abs_diff: float
    latencies_ms: np.ndarray
    requests_per_s: float
    avg_batch: float


class Steps:
    """Stepped status lines: ``[2/4] Starting tritonserver ... done (3.1 s)``."""

    def __init__(self, total: int) -> None:
        self.total, self.index, self.started = total, 0, time.monotonic()
        self._step_start = self.started

    def start(self, text: str) -> None:
        self.index += 1
        self._step_start = time.monotonic()
        click.echo(f"[{self.index}/{self.total}] {text} ...", err=True)

    def done(self, note: str = "") -> None:
        took = time.monotonic() - self._step_start
        click.echo(f"      done in {took:.1f} s{'; ' + note if note else ''}", err=True)


RAW_INPUTS = ("reviews", "glyphs")  # examples served behind their preprocessing: their ensembles take raw inputs


def held_out_samples() -> dict[str, tuple[list[dict[str, np.ndarray]], np.ndarray]]:
    """Per example model: one input dict per held-out sample (batch of 1), and the labels. The ensembles'
    inputs are raw: a UTF-8 string, or PNG bytes."""
    from tritonize.generator.examples.digits import load_digits_split
    from tritonize.generator.examples.glyphs import load_glyphs
    from tritonize.generator.examples.reviews import make_reviews
    from tritonize.generator.examples.sequence import make_task

    digits = load_digits_split()
    ids, mask, labels = make_task(400, seed=2026)
    lengths = mask.sum(1)
    sequences = [{"ids": ids[i : i + 1, : lengths[i]], "mask": mask[i : i + 1, : lengths[i]]} for i in range(len(ids))]
    texts, sentiments = make_reviews(400, seed=2026)
    _, _, pngs, glyph_labels = load_glyphs()

    def raw(name: str, value: str | bytes) -> dict[str, np.ndarray]:
        return {name: np.array([[value.encode() if isinstance(value, str) else value]], dtype=object)}

    return {
        "digits": ([{"image": digits.test_x[i : i + 1]} for i in range(len(digits.test_x))], digits.test_y),
        "sequence": (sequences, labels),
        "reviews": ([raw("text", t) for t in texts], sentiments),
        "glyphs": ([raw("image_bytes", png) for png in pngs], glyph_labels),
    }


def evaluated(built: list[Any]) -> list[Any]:
    """The artifacts the quickstart sends held-out data to: the examples' models, and for the examples served
    behind their preprocessing their ensembles (raw inputs in)."""
    return [b for b in built if b.format != "python" and
            (b.format == "ensemble") == (b.name.split("_", 1)[0] in RAW_INPUTS)]


def _infer_all(url: str, model: str, samples: list[dict[str, np.ndarray]],
               concurrency: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(first output per sample, latencies ms, requests/s, average executed batch) with the typed client."""
    from tritonize.client import TritonClient

    with TritonClient(url) as triton:
        client = triton.model(model)
        output = client.info.outputs[0].key  # the model's own name, for every format

        def one(sample: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
            start = time.perf_counter()
            result = client.infer(sample, outputs=[output])
            return result[output][0], (time.perf_counter() - start) * 1e3

        def counts() -> tuple[int, int]:  # an ensemble's batches are formed by its model's dynamic batcher
            stats = triton.statistics(model.removesuffix("_ensemble"))[0]
            return int(stats["inference_count"]), int(stats["execution_count"])

        before = counts()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, samples))
        elapsed = time.perf_counter() - start
        after = counts()
    executions = max(after[1] - before[1], 1)
    return (np.stack([r[0] for r in results]), np.array([r[1] for r in results]), len(samples) / elapsed,
            (after[0] - before[0]) / executions)


def evaluate(url: str, built: list[Any], concurrency: int) -> list[ArtifactResult]:
    samples = held_out_samples()
    eager_cache: dict[str, np.ndarray] = {}
    results = []
    for model in evaluated(built):
        base = model.name.split("_", 1)[0]
        inputs, labels = samples[base]
        if base not in eager_cache:  # the eager model (behind the training preprocessing, for raw inputs)
            eager_cache[base] = np.stack([model.reference(sample)[0][0] for sample in inputs])
        eager = eager_cache[base]
        got, latencies, rate, avg_batch = _infer_all(url, model.name, inputs, concurrency)
        results.append(ArtifactResult(
            model.name, float(np.mean(eager.argmax(1) == labels)), float(np.mean(got.argmax(1) == labels)),
            float(np.mean(got.argmax(1) == eager.argmax(1))), float(np.abs(got - eager).max()), latencies, rate,
            avg_batch))
    return results


NOTE = ("(one request per held-out sample over gRPC, {} in flight; avg batch = inferences / executions from "
        "Triton's statistics: the dynamic batcher at work; *_int8 are compared with the FP32 eager model; "
        "*_ensemble take raw strings / PNG bytes and are compared with the training preprocessing + the eager "
        "model)")


def results_table(results: list[ArtifactResult]) -> Table:
    pct = "{:.2%}".format
    ms = "{:.2f}".format
    table = Table(("artifact", "eager acc", "triton acc", "agree", "max |Δ|", "p50 ms", "p99 ms", "req/s", "avg batch"),
                  formats={"eager acc": pct, "triton acc": pct, "agree": "{:.1%}".format, "max |Δ|": "{:.1e}".format,
                           "p50 ms": ms, "p99 ms": ms, "req/s": "{:.0f}".format, "avg batch": ms})
    for r in results:
        table.add(r.model, r.eager_accuracy, r.triton_accuracy, r.agreement, r.max_abs_diff,
                  percentile(r.latencies_ms, 50), percentile(r.latencies_ms, 99), r.requests_per_s, r.avg_batch)
    return table


@click.command("quickstart")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=Path("model_repository"),
              show_default=True, help="Where the example repository is built (and left for you).")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Requests in flight.")
@click.option("--overwrite", is_flag=True, help="Replace example models that differ from a fresh build.")
@output_option
def quickstart_command(repo: Path, concurrency: int, overwrite: bool, output: str) -> None:
    """Build the bundled example, serve it on a local Triton, classify held-out data through gRPC.

    \b
    Example:
      tritonize quickstart
    """
    from importlib.resources import files

    from tritonize.deploy.local import LocalTriton
    from tritonize.generator.build import build
    from tritonize.generator.project import load_project

    steps = Steps(4)
    steps.start(f"Building the example repository in {repo}/ (train, export ONNX + TorchScript, verify)")
    spec = Path(str(files("tritonize.generator.examples") / EXAMPLE_SPEC))
    with quiet("tritonize"):  # the steps say what happens; warnings still show
        built = build(load_project(spec).models, repo, overwrite=overwrite)
    steps.done(", ".join(f"{b.name} v{b.version} {b.action}" for b in built))

    steps.start("Starting tritonserver 2.51 (local, stand-in onnxruntime/pytorch backends)")
    with LocalTriton(repo) as server:
        variant = f"; no GPU: configs/{server.config_name}.pbtxt variants" if server.config_name else ""
        steps.done(f"gRPC {server.grpc_url}{variant}")
        steps.start("Sending held-out digits, sequences, review texts and PNG images through gRPC, comparing with "
                    "the eager models")
        results = evaluate(server.grpc_url, built, concurrency)
        steps.done()
        steps.start("Stopping tritonserver")
    steps.done()
    echo_tables({"artifacts": results_table(results)}, output)
    if output == "table":
        click.echo(NOTE.format(concurrency))
    # FP32 artifacts must agree with eager PyTorch on every sample; INT8 ones within their accuracy budget
    disagree = [r.model for r in results if r.agreement < (0.99 if "int8" in r.model else 1.0)]
    if disagree:
        raise TritonizeError(f"Triton and eager predictions disagree for {', '.join(disagree)}")
    click.echo(f"\nThe repository is in {repo}/: serve it with `tritonize serve {repo}`, "
               f"lint it with `tritonize check {repo}`. Total {time.monotonic() - steps.started:.0f} s.")
