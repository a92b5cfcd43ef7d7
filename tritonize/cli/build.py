"""Build-side commands: ``export`` (one model, from flags) and ``build`` (a tritonize.toml, or manifests).

Both produce ``ModelRequest``s through the same reader as the spec file: ``export``'s flags become a
``[models.<name>]`` table in the spec's vocabulary, so a flag and its TOML key cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from tritonize.core import formats, releases
from tritonize.core.errors import SpecError

from .options import echo_tables, generator, output_option, target_release, triton_version_option


def _key_values(pairs: tuple[str, ...], option: str, parse_json: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(option, pair, "KEY=VALUE")
        if parse_json:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out


_OVERWRITE = ("Replace the version built (--version, else the latest one) and the model-level files; without "
              "it a new version is added.")
_ALL_OR_NOTHING = ("Write nothing when any format fails (by default the formats that passed are written and the "
                   "command exits 1).")


def _build(requests: Any, repo: Path, output: str, **options: Any) -> None:
    """Build, print the tables (failed formats included), then fail with the first failure's error."""
    build, tables = generator("build"), generator("tables")
    results = build.build(requests, repo, raise_on_failure=False, **options)
    failures = tables.failure_table(results)
    pipelines = tables.pipeline_table(results)
    echo_tables({"verification": tables.verification_table(results),
                 "optimization": tables.optimization_table(results),
                 **({"preprocessing": pipelines} if pipelines.rows else {}),
                 **({"failures": failures} if failures.rows else {})}, output)
    build.raise_failures(results)


def _instance_group(instances: int | None, kind: str | None, gpus: str | None) -> list[dict[str, Any]]:
    try:
        gpu_ids = [int(g) for g in gpus.split(",")] if gpus else []
    except ValueError:
        raise SpecError("--gpus", gpus, "comma-separated integers") from None
    if instances is None and kind is None and not gpu_ids:
        return []
    # built here, so that a bad value is reported as instance_group.count (the flag's field), not as a list item
    group = generator("config_spec").InstanceGroup(kind or "auto", 1 if instances is None else instances, gpu_ids)
    return [{"kind": group.kind, "count": group.count, "gpus": list(group.gpus)}]


def _format_table(fmt: str, a: dict[str, Any]) -> dict[str, Any]:
    """The ``[models.<name>.<fmt>]`` table the flags ask for."""
    record, table = formats.FORMATS[fmt], {}
    params = a["onnx_param"] if record.backend.name == "onnxruntime" else a["torchscript_param"]
    if params:
        table["parameters"] = _key_values(params, f"--{record.fp32}-param")
    tolerance = {k: a[k] for k in ("atol", "rtol") if a[k] is not None}
    if tolerance:
        table["tolerance"] = tolerance
    if a["opset"] is not None and "opset" in record.options:
        table["opset"] = a["opset"]
    if a["exporter"] is not None and "exporter" in record.options:
        table["exporter"] = a["exporter"]
    if "quantization" in record.options:
        table["quantization"] = {k: v for k, v in {
            "method": a["quantization"] if fmt == "onnx-int8" else "dynamic", "per_channel": a["per_channel"],
            "calibration": a["calibration"], "calibration_data": a["calibration_data"]}.items() if v is not None}
    if record.optimized or a["prune"]:
        table["accuracy_budget"] = a["accuracy_budget"]
    return table


def _unset(key: str, value: Any) -> bool:
    """A flag left at nothing (``warmup_batch_sizes = []`` is --no-warmup, not nothing)."""
    return value is None or value is False or (value in ({}, []) and key != "warmup_batch_sizes")


@click.command("export")
@click.argument("source")
@click.option("--name", required=True, help="Model name; each format becomes <name>_<format>.")
@click.option("--format", "formats_", multiple=True, type=click.Choice(list(formats.FORMATS)),
              help="Formats to export (default: onnx and torchscript).")
@click.option("--repo", type=click.Path(path_type=Path), default=Path("model_repository"), show_default=True)
@click.option("--max-batch-size", type=int, default=32, show_default=True, help="0: the model does not batch.")
@click.option("--dynamic-batching/--no-dynamic-batching", default=False)
@click.option("--max-queue-delay-us", type=int, default=None, help="dynamic_batching.max_queue_delay_microseconds")
@click.option("--preferred-batch-size", type=int, multiple=True)
@click.option("--instances", type=int, default=None, help="Instances per GPU (KIND_GPU) or in total (KIND_CPU).")
@click.option("--kind", type=click.Choice(["gpu", "cpu", "auto"]), default=None)
@click.option("--gpus", default=None, help="Comma-separated GPU ids for KIND_GPU, e.g. 0,1.")
@click.option("--version", "version", type=int, default=None, help="Version number (default: next free).")
@click.option("--overwrite", is_flag=True, help=_OVERWRITE)
@click.option("--all-or-nothing", is_flag=True, help=_ALL_OR_NOTHING)
@click.option("--input", "inputs", multiple=True, metavar="NAME[:DTYPE[:DIMS]]",
              help="Declare an input, e.g. ids:int64:-1 (dims exclude the batch dim; -1 = variable).")
@click.option("--output-name", "outputs", multiple=True, metavar="NAME", help="Output names, in order (ONNX).")
@click.option("--example-inputs", type=click.Path(exists=True, dir_okay=False), default=None,
              help=".npz of example inputs (for a .pt source).")
@click.option("--kwarg", "kwargs", multiple=True, metavar="KEY=VALUE", help="Argument for the callable.")
@click.option("--script", is_flag=True, help="torch.jit.script instead of trace (data-dependent control flow).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default=None,
              help="ONNX exporter: torch.onnx's TorchScript-based one (default) or torch.export-based (dynamo).")
@click.option("--atol", type=float, default=None, help="Parity tolerance (absolute), all formats.")
@click.option("--rtol", type=float, default=None, help="Parity tolerance (relative), all formats.")
@click.option("--onnx-param", multiple=True, metavar="KEY=VALUE", help="onnxruntime backend parameter.")
@click.option("--torchscript-param", multiple=True, metavar="KEY=VALUE", help="pytorch backend parameter.")
@click.option("--warmup-batch-size", type=int, multiple=True, help="Warmup batch sizes (default 1 and max).")
@click.option("--no-warmup", is_flag=True, help="warmup_batch_sizes = []")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--response-cache", is_flag=True)
@click.option("--template-dir", type=click.Path(path_type=Path), default=None,
              help="Directory whose Jinja2 templates override the built-in ones.")
@click.option("--prune", type=float, default=None, help="Zero this fraction of Linear/Conv weights (L1).")
@click.option("--quantization", type=click.Choice(["dynamic", "static"]), default="dynamic", show_default=True,
              help="onnx-int8: dynamic (INT8 weights) or static (QDQ, calibrated activations).")
@click.option("--calibration", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax",
              show_default=True)
@click.option("--calibration-data", default=None, help=".npz of inputs, or module:function yielding input dicts.")
@click.option("--per-channel/--per-tensor", default=None,
              help="INT8 weight scales (default: build both, keep the one the accuracy gate judges better).")
@click.option("--accuracy-budget", type=float, default=1.0, show_default=True,
              help="Points of accuracy an INT8/pruned artifact may lose against FP32.")
@click.option("--task", type=click.Choice(["classification", "embedding", "regression"]), default=None,
              help="What judges INT8/pruning: accuracy, cosine + nearest neighbours, relative error (default: "
              "inferred from the outputs).")
@click.option("--evaluation", default=None,
              help="Labeled evaluation set: .npz (inputs + 'labels') or module:function -> (inputs, labels).")
@triton_version_option(releases.LOCAL, "The NGC release that will serve it: nothing is written that its ONNX "
                       "Runtime or PyTorch cannot load.")
@output_option
def export_command(source: str, name: str, repo: Path, overwrite: bool, all_or_nothing: bool,
                   template_dir: Path | None, output: str, **a: Any) -> None:
    """Export one model (a module:function callable, a .pt or an .onnx file) into a repository.

    The flags are the common fields of a [models.<name>] table of tritonize.toml; everything else
    through a spec file and `tritonize build`. A format that fails is reported and the command exits 1;
    the formats that passed are written (none with --all-or-nothing).

    \b
    Example:
      tritonize export mypkg.models:build_classifier --name digits --format onnx --format torchscript \\
          --max-batch-size 64 --dynamic-batching --max-queue-delay-us 500 --instances 2 --kind gpu \\
          --repo model_repository/
    """
    if (a["max_queue_delay_us"] is not None or a["preferred_batch_size"]) and not a["dynamic_batching"]:
        raise SpecError("--max-queue-delay-us/--preferred-batch-size", "without --dynamic-batching",
                        "--dynamic-batching as well")
    chosen = list(a["formats_"]) or list(formats.default_formats())
    declared = generator("io_spec").DeclaredTensor
    table: dict[str, Any] = {
        "source": source, "formats": chosen, "kwargs": _key_values(a["kwargs"], "--kwarg", parse_json=True),
        "inputs": {d.name: {k: v for k, v in (("dtype", d.dtype), ("dims", d.dims and list(d.dims))) if v is not None}
                   for d in map(declared.parse, a["inputs"])},
        "outputs": list(a["outputs"]) or None, "example_inputs": a["example_inputs"],
        "max_batch_size": a["max_batch_size"], "instance_group": _instance_group(a["instances"], a["kind"], a["gpus"]),
        "version": a["version"], "warmup_batch_sizes": [] if a["no_warmup"] else list(a["warmup_batch_size"]) or None,
        "response_cache": a["response_cache"], "labels": a["labels"], "script": a["script"], "prune": a["prune"],
        "evaluation": a["evaluation"], "task": a["task"], "triton_version": target_release(a["triton_version"]),
        **{fmt: _format_table(fmt, a) for fmt in chosen},
    }
    if a["dynamic_batching"]:
        table["dynamic_batching"] = {"preferred_batch_size": list(a["preferred_batch_size"]),
                                     "max_queue_delay_microseconds": a["max_queue_delay_us"] or 0}
    table = {k: v for k, v in table.items() if not _unset(k, v)}
    request = generator("project").request_from_table(name, table, Path("."), "")
    _build([request], repo, output, overwrite=overwrite, all_or_nothing=all_or_nothing, template_dir=template_dir)


@click.command("build")
@click.argument("spec_file", metavar="[SPEC]", required=False, type=click.Path(path_type=Path))
@click.option("--from-manifest", type=click.Path(exists=True, path_type=Path), default=None,
              help="Rebuild what a tritonize-manifest.json (or every manifest of a repository) records.")
@click.option("--repo", type=click.Path(path_type=Path), default=None,
              help="Build here instead of the spec's `repository` (or the manifests' repository).")
@click.option("--model", "only", multiple=True, help="Build only these [models.<name>] entries.")
@click.option("--overwrite", is_flag=True, help=_OVERWRITE)
@click.option("--all-or-nothing", is_flag=True, help=_ALL_OR_NOTHING)
@triton_version_option(None, "The NGC release that will serve every model (default: the triton_version the spec "
                       "or manifest gives each model, else 24.10).")
@output_option
def build_command(spec_file: Path | None, from_manifest: Path | None, repo: Path | None, only: tuple[str, ...],
                  overwrite: bool, all_or_nothing: bool, triton_version: str | None, output: str) -> None:
    """Build a whole repository from a declarative spec (tritonize.toml), or rebuild from manifests.

    A format that fails is reported and the command exits 1; the formats that passed are written (none with
    --all-or-nothing).

    \b
    Example:
      tritonize build model_repository/tritonize.toml
      tritonize build --from-manifest model_repository/ --repo /tmp/rebuilt
      tritonize build model_repository/tritonize.toml --triton-version 23.10 --repo /tmp/for-23.10
    """
    project = generator("project")
    if (spec_file is None) == (from_manifest is None):
        raise SpecError("SPEC/--from-manifest", "both" if spec_file else "neither", "exactly one of them")
    template_dir = None
    if from_manifest is not None:
        models = tuple(project.requests_from_manifests(from_manifest))
        target = repo or (from_manifest.parent.parent if from_manifest.is_file() else from_manifest)
    else:
        spec = project.load_project(spec_file)
        models, target, template_dir = spec.models, repo or spec.repository, spec.template_dir
    if only:
        unknown = sorted(set(only) - {m.name for m in models})
        if unknown:
            raise SpecError("--model", unknown[0], "one of " + ", ".join(m.name for m in models))
        models = tuple(m for m in models if m.name in only)
    if triton_version is not None:
        models = tuple(dataclasses.replace(m, triton_version=target_release(triton_version)) for m in models)
    _build(models, target, output, overwrite=overwrite, all_or_nothing=all_or_nothing, template_dir=template_dir)
