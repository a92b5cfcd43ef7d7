"""``tritonize gateway REPO``: the seed's ``/predict`` in front of Triton (``tritonize.deploy.gateway``), served by
uvicorn: ``POST /predict/<model>`` per model of REPO, ``/health``, ``/metrics`` and the docs at ``/docs``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .options import url_option

# uvicorn's workers import the app by name: the settings travel in the environment
_ENV = ("TRITONIZE_GATEWAY_REPO", "TRITONIZE_GATEWAY_URL", "TRITONIZE_GATEWAY_PROTOCOL", "TRITONIZE_GATEWAY_TIMEOUT")


def app_from_env() -> object:
    """The app uvicorn's workers build (``tritonize.cli.gateway:app_from_env``, a factory)."""
    from tritonize.deploy.gateway import create_app

    repo, url, protocol, timeout_s = (os.environ[k] for k in _ENV)
    return create_app(Path(repo), url, protocol or None, timeout_s=float(timeout_s))


@click.command("gateway")
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@url_option(help="Triton's address (gRPC port for --protocol grpc, HTTP port for http)")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default=None,
              help="How the gateway calls Triton [default: from the URL's scheme, else grpc]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the gateway listens on")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="uvicorn worker processes (each with its own Triton client)")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds a request may wait on Triton (retries included) before the gateway answers 503/504")
def gateway_command(repo: Path, url: str, protocol: str | None, host: str, port: int, workers: int,
                    timeout_s: float) -> None:
    """Serve REPO's models over HTTP in front of the Triton at --url: uploads, text and JSON tensors in,
    class, confidence and labels out."""
    import uvicorn

    from tritonize.deploy.gateway import read_routes

    routes = read_routes(repo)  # a bad repository is one line here, before uvicorn starts
    for key, value in zip(_ENV, (str(repo.resolve()), url, protocol or "", str(timeout_s))):
        os.environ[key] = value
    click.echo(f"gateway: http://{host}:{port}/docs  ({len(routes)} models: "
               + ", ".join(r.path for r in routes) + f"; Triton at {url})", err=True)
    uvicorn.run("tritonize.cli.gateway:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)
