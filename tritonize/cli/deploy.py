"""``tritonize deploy``: deployment assets for a repository (Docker Compose, Kubernetes, KServe)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import triton_version_option


@click.command("deploy")
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", required=True, metavar="compose|kubernetes|kserve",
              help="What to write: compose.yaml (+ Prometheus, Grafana, gateway), Kubernetes objects, or a KServe "
                   "InferenceService.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Asset folder (default: deploy/<target> of the current directory).")
@click.option("--force", is_flag=True, help="Replace an existing asset folder.")
@click.option("--repository-uri", default=None,
              help="Where Triton reads the repository: a path (compose: REPO), pvc://CLAIM[/PATH] (default "
                   "pvc://NAME-models), s3://, gs:// or as:// (Triton reads these directly).")
@click.option("--replicas", type=int, default=1, show_default=True)
@click.option("--max-replicas", type=int, default=None, help="Autoscaling ceiling (default 4 x --replicas).")
@click.option("--gpus", type=int, default=None, help="GPUs per replica (default: what the KIND_GPU groups need).")
@click.option("--cpu", default=None, help="CPU per replica, a Kubernetes quantity (4, 500m).")
@click.option("--memory", default=None, help="Memory per replica, a Kubernetes quantity (16Gi).")
@click.option("--name", default="triton", show_default=True, help="Name of the service and its objects.")
@click.option("--model-control-mode", default="none", show_default=True, metavar="none|poll|explicit")
@click.option("--target-queue-us", type=int, default=20_000, show_default=True,
              help="Autoscaling target: mean queue time per request per pod (microseconds).")
@click.option("--image", default=None,
              help="The server's image (default: the release's NGC image; with python-backend models that need "
                   "packages, the image built from the written Dockerfile: push it and name it here for Kubernetes).")
@triton_version_option(None, "The NGC release to run (default: the one the manifests record).")
def deploy_command(repo: Path, target: str, out: Path | None, force: bool, repository_uri: str | None,
                   replicas: int, max_replicas: int | None, gpus: int | None, cpu: str | None, memory: str | None,
                   name: str, model_control_mode: str, target_queue_us: int, image: str | None,
                   triton_version: str | None) -> None:
    """Write deployment assets for REPO, derived from its configs and the options.

    \b
    Example:
      tritonize deploy model_repository --target compose
      docker compose -f deploy/compose/compose.yaml up
    """
    from tritonize.deploy.targets.plan import Options, read_plan
    from tritonize.deploy.targets.write import deploy, next_steps

    options = Options(target=target, repository_uri=repository_uri, replicas=replicas, max_replicas=max_replicas,
                      gpus=gpus, cpu=cpu, memory=memory, name=name, model_control_mode=model_control_mode,
                      triton_version=triton_version, target_queue_us=target_queue_us, image=image)
    plan = read_plan(repo, options)
    folder = Path("deploy") / target if out is None else out
    written = deploy(plan, options, folder, force)
    click.echo(f"wrote {len(written)} file{'' if len(written) == 1 else 's'} into {folder}:")
    for path in written:
        click.echo(f"  {folder / path.relative_to(folder.absolute())}")
    for line in next_steps(plan, options, folder):
        click.echo(line)
