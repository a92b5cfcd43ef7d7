"""``tritonize infer``: one request from the command line, inputs from .npy files, outputs and latency printed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from tritonize.core.errors import SpecError
from tritonize.core.loader import summary

from .options import url_option


def _load_inputs(pairs: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SpecError("--input", pair, "NAME=FILE.npy")
        if name in arrays:
            raise SpecError(f"--input {name}", path, "each input once (it was given twice)")
        if not Path(path).is_file():
            raise SpecError(f"--input {name}", path, "an existing .npy file")
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # pickled objects are never loaded
            raise SpecError(f"--input {name}", path, f"a .npy file of numbers or bytes, no pickled objects "
                            f"({summary(exc)})") from None
        if not isinstance(arrays[name], np.ndarray):
            raise SpecError(f"--input {name}", path, "a .npy file of one array (not an .npz)")
    return arrays


def _summary(array: np.ndarray) -> str:
    flat = array.ravel()
    head = ", ".join(f"{v:.4g}" if array.dtype.kind == "f" else str(v) for v in flat[:6])
    more = ", ..." if flat.size > 6 else ""
    return f"{array.dtype.name}{list(array.shape)} [{head}{more}]"


@click.command("infer")
@click.argument("model")
@url_option()
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default=None)
@click.option("--version", "version", default="", help="Model version (default: Triton's policy).")
@click.option("--input", "inputs", multiple=True, required=True, metavar="NAME=FILE.npy")
@click.option("--output", "outputs", multiple=True, metavar="NAME", help="Outputs to request (default: all).")
@click.option("--sample", is_flag=True, help="Inputs are one sample: add the batch dimension.")
@click.option("--cast", is_flag=True, help="Convert input dtypes within the same kind (float64 → float32).")
@click.option("--shared-memory", type=click.Choice(["none", "system", "cuda"]), default="none",
              show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True)
@click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write each output to DIR/<name>.npy.")
def infer_command(model: str, url: str, protocol: str | None, version: str, inputs: tuple[str, ...],
                  outputs: tuple[str, ...], sample: bool, cast: bool, shared_memory: str, timeout_s: float,
                  save: Path | None) -> None:
    """Send one inference request and print the outputs and the latency.

    \b
    Example:
      python -c "import numpy as np; np.save('x.npy', np.zeros((1, 1, 8, 8), np.float32))"
      tritonize infer digits_onnx --input image=x.npy --url localhost:8001
    """
    from tritonize.client import TritonClient

    arrays = _load_inputs(inputs)
    with TritonClient(url, protocol=protocol, timeout_s=timeout_s, shared_memory=shared_memory) as triton:
        client = triton.model(model, version)
        options: dict[str, Any] = {"outputs": outputs or None, "cast": cast}
        start = time.perf_counter()
        result = client.infer_sample(arrays, **options) if sample else client.infer(arrays, **options)
        latency_ms = (time.perf_counter() - start) * 1e3
    for name, array in result.items():
        click.echo(f"{name}: {_summary(array)}")
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            np.save(save / f"{name}.npy", array)
    click.echo(f"latency {latency_ms:.2f} ms ({triton.endpoint.protocol} {triton.endpoint.address})", err=True)
