"""``tritonize serve``: a real Triton on a repository, locally (pip tritonserver + stand-ins) or in Docker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import click

from tritonize.core.errors import TritonizeError
from tritonize.core.log import logger
from tritonize.core.text import Table

from .options import echo_tables, output_option

_log = logger(__name__)


def models_table(states: list[Any]) -> Table:
    table = Table(("model", "version", "state", "reason"), free_last=True)
    for s in states:
        table.add(s.name, s.version, s.state, s.reason)
    return table


def python_models_line(models: list[str], euid: int | None) -> str | None:
    """The line ``serve`` prints at start when the repository has python-backend models (None without).

    ``euid``: the user tritonserver runs as; None when it runs in a container.
    """
    if not models:
        return None
    kind = "model" if len(models) == 1 else "models"
    if euid is None:
        rights = "with the container user's rights"
    elif euid == 0:
        rights = "with the serving user's rights, and this server runs as root"
    else:
        rights = f"with the serving user's rights (uid {euid})"
    return (f"warning: python-backend {kind} {', '.join(models)} run{'s' if len(models) == 1 else ''} "
            f"{'its' if len(models) == 1 else 'their'} model.py {rights}: review it before serving")


def _block(alive: Any) -> None:
    """Wait for Ctrl-C / SIGTERM, or until the server dies.

    Both signals get a handler here: a process started in the background of a non-interactive shell inherits
    SIGINT as ignored, and would otherwise never stop on it.
    """
    stop = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda *_: stop.append(1)) for s in signals]
    try:
        while not stop and alive():
            time.sleep(0.5)
    finally:
        for s, handler in zip(signals, previous):
            signal.signal(s, handler)


@click.command("serve")
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (with --docker: the host address the ports are published on).")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True)
@click.option("--model-control-mode", type=click.Choice(["none", "poll", "explicit"]), default="none",
              show_default=True)
@click.option("--load-model", multiple=True, help="With --model-control-mode explicit: models to load.")
@click.option("--config-name", default="auto", show_default=True,
              help="Custom configuration (configs/<name>.pbtxt); auto: 'cpu' when there is no GPU; none.")
@click.option("--log-verbose", type=int, default=0, show_default=True)
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--keep-going", is_flag=True, help="Serve the models that loaded even if others failed.")
@click.option("--docker", "image", default=None, metavar="IMAGE",
              help="Run the NGC image instead, e.g. nvcr.io/nvidia/tritonserver:24.10-py3.")
@click.option("--gpus/--no-gpus", default=True, help="With --docker: request all GPUs.")
@click.option("--native", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Locally, with Triton's native onnxruntime/pytorch backends built by shared/native/build.sh DIR.")
@output_option
def serve_command(repo: Path, host: str, http_port: int, grpc_port: int, metrics_port: int,
                  model_control_mode: str, load_model: tuple[str, ...], config_name: str, log_verbose: int,
                  log_file: Path | None, timeout: float, keep_going: bool, image: str | None,
                  gpus: bool, native: Path | None, output: str) -> None:
    """Serve a model repository on Triton until Ctrl-C.

    Locally (default) this is the pip tritonserver 2.51 with stand-ins for the onnxruntime and pytorch
    backends, running the repository unmodified; GPU models use their configs/cpu.pbtxt variant when
    there is no GPU. With --native DIR, the same server with Triton's native backends (built from r24.10
    sources by shared/native/build.sh DIR). With --docker, the NGC image with its native backends.

    \b
    Example:
      tritonize serve model_repository/
      tritonize serve model_repository/ --docker nvcr.io/nvidia/tritonserver:24.10-py3
    """
    from tritonize.core.check.rules import python_backend_models

    line = python_models_line(python_backend_models(repo), None if image else os.geteuid())
    if line:
        click.echo(line, err=True)
    name = None if config_name == "none" else config_name
    if image:
        _serve_docker(repo, image, host, http_port, grpc_port, metrics_port, model_control_mode, load_model,
                      log_verbose, gpus, name, timeout, output)
        return
    from tritonize.deploy.local import LocalTriton

    server = LocalTriton(repo, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                         model_control_mode=model_control_mode, load_models=load_model, config_name=name,
                         log_verbose=log_verbose, log_file=log_file, ready_timeout=timeout,
                         strict=not keep_going, native=native)
    if server.config_name:
        _log.info(f"using configs/{server.config_name}.pbtxt variants where present "
                   f"(--model-config-name={server.config_name}); config.pbtxt files are unchanged")
    with server:
        click.echo(f"serving {repo}: HTTP {server.http_url}  gRPC {server.grpc_url}  "
                   f"metrics {server.metrics_url}  (log: {server.log_path})")
        echo_tables({"models": models_table(server.models())}, output)
        click.echo("Ctrl-C to stop", err=True)
        _block(lambda: server.process is not None and server.process.poll() is None)
        code = server.process.poll() if server.process is not None else None
        tail = server.log_tail(5) if code is not None else ""
    if code is not None:  # a failure (exit 1), not a usage error
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        raise TritonizeError(f"tritonserver died ({how}); log tail: {tail}")
    click.echo("stopped", err=True)


def _serve_docker(repo: Path, image: str, host: str, http_port: int, grpc_port: int, metrics_port: int, mode: str,
                  load_models: tuple[str, ...], log_verbose: int, gpus: bool, config_name: str | None,
                  timeout: float, output: str) -> None:
    from tritonize.deploy.docker import docker_client, run_kwargs
    from tritonize.deploy.local import CPU_CONFIG, http_json, repository_index

    client = docker_client()
    if config_name == "auto":
        config_name = None if gpus else CPU_CONFIG
    container = client.containers.run(**run_kwargs(
        repo, image, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
        model_control_mode=mode, load_models=load_models, log_verbose=log_verbose, gpus=gpus, config_name=config_name))
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # where this process reaches it
    url = f"http://{local}:{http_port}"
    try:
        deadline = time.monotonic() + timeout
        while http_json(url, "/v2/health/live") is None:
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                logs = " | ".join(container.logs(tail=10).decode(errors="replace").split())
                raise TritonizeError(f"{image} did not start: {logs}")
            time.sleep(1)
        click.echo(f"serving {repo} in {image}: HTTP {url}  gRPC {local}:{grpc_port}  "
                   f"metrics http://{local}:{metrics_port}/metrics")
        echo_tables({"models": models_table(repository_index(url))}, output)

        def alive() -> bool:
            container.reload()
            return bool(container.status == "running")

        _block(alive)
    finally:
        container.stop(timeout=30)
