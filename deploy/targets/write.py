"""Render a target's assets for a repository and write them as one folder, atomically."""

from __future__ import annotations

from pathlib import Path

from . import compose, kserve, kubernetes
from .files import write_folder
from .plan import OBJECT_STORES, Options, Plan


def render(plan: Plan, options: Options, out: Path) -> dict[str, str]:
    """The files of ``options.target``'s asset folder ``out`` (relative path -> text); nothing is written."""
    if options.target == "compose":
        return compose.files(plan, compose.relative_repo(plan, str(out)))
    if options.target == "kubernetes":
        return kubernetes.files(plan)
    return kserve.files(plan)


def deploy(plan: Plan, options: Options, out: Path, force: bool = False) -> list[Path]:
    """Write the assets into ``out``; the paths written."""
    return write_folder(out, render(plan, options, out), force=force)


def next_steps(plan: Plan, options: Options, folder: Path) -> list[str]:
    """What the user does before or to start the assets (printed by the CLI)."""
    steps = []
    secret = f"{options.name}-storage"
    if plan.scheme and options.target == "kubernetes":
        keys = ("gcs.json",) if plan.scheme == "gs" else OBJECT_STORES[plan.scheme]
        literal = " ".join("--from-file=gcs.json=KEY.json" if k == "gcs.json" else f"--from-literal={k}=..."
                           for k in keys)
        steps.append(f"create the credentials: kubectl create secret generic {secret} {literal}")
    if plan.scheme and options.target == "kserve":
        steps.append(f"give the service account {secret} the {plan.scheme}:// credentials (KServe's storage "
                     "initializer reads storageUri with them)")
    if plan.scheme and options.target == "compose":
        steps.append("export " + " ".join(OBJECT_STORES[plan.scheme]) + " before starting it")
    if plan.uri.startswith("pvc://") and options.target != "compose":
        steps.append(f"copy {plan.repo} into the volume claim {plan.uri[len('pvc://'):]}")
    if plan.requirements and options.target == "kubernetes" and not options.image:
        steps.append(f"build and push the image of {folder}/image (python-backend models need "
                     f"{', '.join(plan.requirements)}), then rerun with --image NAME --force")
    start = {"compose": f"docker compose -f {folder}/compose.yaml up --build",
             "kubernetes": f"kubectl apply -f {folder}/", "kserve": f"kubectl apply -f {folder}/inferenceservice.yaml"}
    return [*steps, f"start it: {start[options.target]}"]
