"""Build-side commands: ``export`` (one model), ``build`` (a tritonize.toml), ``check`` (lint a repository)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from ..errors import SpecError, UsageError


def _generator(module: str) -> ModuleType:
    """Import a generator module, or say which extras are missing."""
    import importlib

    try:
        return importlib.import_module(f"tritonize.generator.{module}")
    except ImportError as exc:
        raise UsageError(f"this command needs the build extras ({exc.name} is missing): "
                         "pip install 'tritonize[generator]' torch==2.13.0") from None


def _log(line: str) -> None:
    click.echo(line, err=True)


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


def _print_results(results: list[Any]) -> None:
    build = _generator("build")
    click.echo(build.report_table(results))
    optimized = build.optimization_table(results)
    if optimized:
        click.echo("\n" + optimized)


def add_export_command(group: click.Group) -> None:
    @group.command("export")
    @click.argument("source")
    @click.option("--name", required=True, help="Model name; each format becomes <name>_<format>.")
    @click.option("--format", "formats", multiple=True,
                  type=click.Choice(["onnx", "torchscript", "onnx-int8", "torchscript-int8"]),
                  help="Formats to export (default: onnx and torchscript).")
    @click.option("--repo", type=click.Path(path_type=Path), default=Path("model_repository"), show_default=True)
    @click.option("--max-batch-size", type=int, default=32, show_default=True, help="0: the model does not batch.")
    @click.option("--dynamic-batching/--no-dynamic-batching", default=False)
    @click.option("--max-queue-delay-us", type=int, default=None)
    @click.option("--preferred-batch-size", type=int, multiple=True)
    @click.option("--instances", type=int, default=None, help="Instances per GPU (KIND_GPU) or in total (KIND_CPU).")
    @click.option("--kind", type=click.Choice(["gpu", "cpu", "auto"]), default=None)
    @click.option("--gpus", default=None, help="Comma-separated GPU ids for KIND_GPU, e.g. 0,1.")
    @click.option("--version", "version", type=int, default=None, help="Version number (default: next free).")
    @click.option("--overwrite", is_flag=True, help="Replace this version and the model-level files.")
    @click.option("--input", "inputs", multiple=True, metavar="NAME[:DTYPE[:DIMS]]",
                  help="Declare an input, e.g. ids:int64:-1 (dims exclude the batch dim; -1 = variable).")
    @click.option("--output", "outputs", multiple=True, metavar="NAME", help="Output names, in order (ONNX).")
    @click.option("--example-inputs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help=".npz of example inputs (for a .pt source).")
    @click.option("--kwarg", "kwargs", multiple=True, metavar="KEY=VALUE", help="Argument for the callable.")
    @click.option("--script", is_flag=True, help="torch.jit.script instead of trace (data-dependent control flow).")
    @click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
    @click.option("--atol", type=float, default=None, help="Parity tolerance (absolute), all formats.")
    @click.option("--rtol", type=float, default=None, help="Parity tolerance (relative), all formats.")
    @click.option("--onnx-param", multiple=True, metavar="KEY=VALUE", help="onnxruntime backend parameter.")
    @click.option("--torchscript-param", multiple=True, metavar="KEY=VALUE", help="pytorch backend parameter.")
    @click.option("--warmup-batch-size", type=int, multiple=True, help="Warmup batch sizes (default 1 and max).")
    @click.option("--no-warmup", is_flag=True)
    @click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
    @click.option("--response-cache", is_flag=True)
    @click.option("--template-dir", type=click.Path(path_type=Path), default=None,
                  help="Directory whose Jinja2 templates override the built-in ones.")
    @click.option("--prune", type=float, default=None, help="Zero this fraction of Linear/Conv weights (L1).")
    @click.option("--quantization", type=click.Choice(["dynamic", "static"]), default="dynamic", show_default=True,
                  help="onnx-int8: dynamic (INT8 weights) or static (QDQ, calibrated activations).")
    @click.option("--calibration", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax",
                  show_default=True)
    @click.option("--calibration-data", default=None, help=".npz of inputs, or module:function yielding input dicts.")
    @click.option("--per-channel", is_flag=True, help="onnx-int8: per-channel weight scales.")
    @click.option("--accuracy-budget", type=float, default=1.0, show_default=True,
                  help="Points of accuracy an INT8/pruned artifact may lose against FP32.")
    @click.option("--evaluation", default=None,
                  help="Labeled evaluation set: .npz (inputs + 'labels') or module:function -> (inputs, labels).")
    def export_command(source: str, name: str, formats: tuple[str, ...], repo: Path, max_batch_size: int,
                       dynamic_batching: bool, max_queue_delay_us: int | None, preferred_batch_size: tuple[int, ...],
                       instances: int | None, kind: str | None, gpus: str | None, version: int | None,
                       overwrite: bool, inputs: tuple[str, ...], outputs: tuple[str, ...],
                       example_inputs: Path | None, kwargs: tuple[str, ...], script: bool, opset: int | None,
                       atol: float | None, rtol: float | None, onnx_param: tuple[str, ...],
                       torchscript_param: tuple[str, ...], warmup_batch_size: tuple[int, ...], no_warmup: bool,
                       labels: Path | None, response_cache: bool, template_dir: Path | None, prune: float | None,
                       quantization: str, calibration: str, calibration_data: str | None, per_channel: bool,
                       accuracy_budget: float, evaluation: str | None) -> None:
        """Export one model (a module:function callable, a .pt or an .onnx file) into a repository.

        \b
        Example:
          tritonize export mypkg.models:build_classifier --name digits --format onnx --format torchscript \\
              --max-batch-size 64 --dynamic-batching --max-queue-delay-us 500 --instances 2 --kind gpu \\
              --repo model_repository/
        """
        build = _generator("build")
        spec = _generator("config_spec")
        io_spec = _generator("io_spec")
        verify = _generator("verify")
        if (max_queue_delay_us is not None or preferred_batch_size) and not dynamic_batching:
            raise SpecError("--max-queue-delay-us/--preferred-batch-size", "without --dynamic-batching",
                            "--dynamic-batching as well")
        try:
            gpu_ids = tuple(int(g) for g in gpus.split(",")) if gpus else ()
        except ValueError:
            raise SpecError("--gpus", gpus, "comma-separated integers") from None
        groups: tuple[Any, ...] = ()
        if instances is not None or kind is not None or gpu_ids:
            groups = (spec.InstanceGroup(kind or "auto", 1 if instances is None else instances, gpu_ids),)
        chosen = formats or ("onnx", "torchscript")
        options = {}
        optimize = _generator("optimize")
        for fmt in chosen:
            base_fmt = build.INT8_FORMATS.get(fmt, fmt)
            tol = None
            if atol is not None or rtol is not None:
                base = verify.DEFAULT_TOLERANCES[base_fmt]
                tol = verify.Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol,
                                       base.min_cosine, base.min_argmax_agreement)
            params = onnx_param if base_fmt == "onnx" else torchscript_param
            q = None
            if fmt in build.INT8_FORMATS:
                q = optimize.Quantization(method=quantization if fmt == "onnx-int8" else "dynamic",
                                          per_channel=per_channel, calibration=calibration,
                                          calibration_data=calibration_data)
            options[fmt] = build.FormatOptions(tolerance=tol, parameters=_key_values(params, f"--{base_fmt}-param"),
                                               opset=opset or build.DEFAULT_OPSET, quantization=q,
                                               accuracy_budget=accuracy_budget)
        request = build.ModelRequest(
            name=name, source=source, formats=chosen, kwargs=_key_values(kwargs, "--kwarg", parse_json=True),
            inputs=tuple(io_spec.DeclaredTensor.parse(i) for i in inputs),
            output_names=outputs or None, example_inputs=example_inputs, max_batch_size=max_batch_size,
            dynamic_batching=spec.DynamicBatching(preferred_batch_size=preferred_batch_size,
                                                  max_queue_delay_microseconds=max_queue_delay_us or 0)
            if dynamic_batching else None,
            instance_groups=groups, version=version,
            warmup_batch_sizes=() if no_warmup else (warmup_batch_size or None),
            response_cache=response_cache, labels=labels, script=script, prune=prune, evaluation=evaluation,
            format_options=options,
        )
        _print_results(build.build([request], repo, overwrite=overwrite, template_dir=template_dir, log=_log))


def add_build_command(group: click.Group) -> None:
    @group.command("build")
    @click.argument("spec_file", metavar="SPEC", type=click.Path(path_type=Path))
    @click.option("--repo", type=click.Path(path_type=Path), default=None,
                  help="Build here instead of the spec's `repository`.")
    @click.option("--model", "only", multiple=True, help="Build only these [models.<name>] entries.")
    @click.option("--overwrite", is_flag=True, help="Replace existing versions and model-level files.")
    def build_command(spec_file: Path, repo: Path | None, only: tuple[str, ...], overwrite: bool) -> None:
        """Build a whole repository from a declarative spec (tritonize.toml).

        \b
        Example:
          tritonize build model_repository/tritonize.toml
        """
        project = _generator("project").load_project(spec_file)
        models = project.models
        if only:
            unknown = sorted(set(only) - {m.name for m in models})
            if unknown:
                raise SpecError("--model", unknown[0], "one of " + ", ".join(m.name for m in models))
            models = tuple(m for m in models if m.name in only)
        results = _generator("build").build(models, repo or project.repository, overwrite=overwrite,
                                            template_dir=project.template_dir, log=_log)
        _print_results(results)


def add_check_command(group: click.Group) -> None:
    @group.command("check")
    @click.argument("repo", type=click.Path(path_type=Path))
    @click.option("--strict", is_flag=True, help="Fail on warnings too.")
    @click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
    def check_command(repo: Path, strict: bool, as_json: bool) -> None:
        """Lint any Triton model repository (ours or not): configs, files, IO against the model files.

        \b
        Example:
          tritonize check model_repository/
        """
        findings = _generator("check").check_repository(repo)
        if as_json:
            click.echo(json.dumps([f.__dict__ for f in findings], indent=2))
        else:
            for f in findings:
                click.echo(f"{f.severity:<7}  {f.model or '-':<24}  {f.code:<28}  {f.message}")
        errors = sum(f.severity == "error" for f in findings)
        warnings = len(findings) - errors
        click.echo(f"{repo}: {errors} error(s), {warnings} warning(s)", err=True)
        if errors or (strict and warnings):
            raise click.exceptions.Exit(1)
