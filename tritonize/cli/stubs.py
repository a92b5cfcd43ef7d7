"""``tritonize client-stubs``: typed Python classes for the models of a repository or a live server."""

from __future__ import annotations

from pathlib import Path

import click

from tritonize.core.errors import UsageError

from .options import url_option


@click.command("client-stubs")
@click.argument("repo", required=False, type=click.Path(file_okay=False, path_type=Path))
@url_option(None, help="Read the configs of the READY models of a live server instead: "
              "host:port (gRPC), grpc://host:port or http://host:port.")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default=None, help="With --url.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="With --url.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The Python module to write.")
def client_stubs_command(repo: Path | None, url: str | None, protocol: str | None, timeout_s: float,
                         out: Path) -> None:
    """Generate a typed Python module for the models of a repository (or of a running Triton).

    Per model: a TypedDict of its outputs and classes for TritonClient and AsyncTritonClient whose
    infer / infer_sample / infer_batch take the inputs as keyword arguments typed by dtype, so mypy
    checks input names and dtypes. Regenerate when the configs change.

    \b
    Example:
      tritonize client-stubs model_repository/ -o myservice/triton_models.py
      tritonize client-stubs --url localhost:8001 -o myservice/triton_models.py
    """
    from tritonize.client import stubs

    if (repo is None) == (url is None):
        raise click.UsageError("give exactly one of REPO or --url")
    if protocol and url is None:
        raise click.UsageError("--protocol needs --url")
    if repo is not None:
        infos = stubs.model_infos_from_repository(repo)
        source = repo.as_posix()
        if not infos:
            raise UsageError(f"repository: no <model>/config.pbtxt in {source}")
    else:
        from tritonize.client import TritonClient

        assert url is not None
        with TritonClient(url, protocol=protocol, timeout_s=timeout_s) as client:
            infos = stubs.model_infos_from_server(client)
            source = f"{client.endpoint.protocol}://{client.endpoint.address}"
        if not infos:
            raise UsageError(f"--url: no READY model on {source}")
    stubs.write_stubs(infos, out, source)
    click.echo(f"wrote {out}: {len(infos)} model(s): " + ", ".join(i.name for i in infos), err=True)
