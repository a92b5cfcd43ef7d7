"""What a repository says about its deployment (GPUs, python-backend requirements, size, target release) and the
options of ``tritonize deploy``, validated into one ``Plan`` every target renders."""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tritonize.core import releases
from tritonize.core.check.model import read_configs
from tritonize.core.errors import SpecError
from tritonize.core.manifest import MANIFEST
from tritonize.core.observability import TRITON_SUMMARY_FLAG

TARGETS = ("compose", "kubernetes", "kserve")
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
GATEWAY_PORT = 8080
MOUNT = "/models"  # where the repository is inside the containers
OBJECT_STORES = {  # URI scheme Triton reads directly -> the environment variables holding its credentials
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"),
    "gs": ("GOOGLE_APPLICATION_CREDENTIALS",),  # a path to a service-account key file
    "as": ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"),
}
GCS_KEY = "/var/run/secrets/tritonize/gcs.json"  # where a gs:// key file is mounted
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")  # a DNS-1123 label (short: objects add suffixes)
_QUANTITY = re.compile(r"(\d+(\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?")
# startup budget: 60 s plus 1 s per 50 MiB of repository (download from an object store + load), checked every 10 s
STARTUP_BASE_S, STARTUP_BYTES_PER_S, PROBE_PERIOD_S = 60, 50 << 20, 10


@dataclass(frozen=True)
class Options:
    target: str
    repository_uri: str | None = None  # None: the target's default (compose: REPO; kubernetes/kserve: pvc://NAME-models)
    replicas: int = 1
    max_replicas: int | None = None  # None: 4 x replicas
    gpus: int | None = None  # None: what the configs need
    cpu: str | None = None
    memory: str | None = None
    name: str = "triton"
    model_control_mode: str = "none"
    triton_version: str | None = None  # None: what the manifests record (else the local server's)
    target_queue_us: int = 20_000  # HPA: average queue time per request per pod
    image: str | None = None  # the server's image (default: the release's NGC image, or the derived one)


@dataclass(frozen=True)
class Plan:
    repo: Path
    options: Options
    release: releases.Release
    gpus: int  # devices each replica reserves (0: none)
    gpu_models: tuple[str, ...]
    python_models: tuple[str, ...]
    requirements: tuple[str, ...]  # what the python-backend models' requirements.txt list, sorted, unique
    repo_bytes: int
    models: tuple[str, ...] = field(default=())

    @property
    def image(self) -> str:
        return self.release.image

    @property
    def scheme(self) -> str | None:
        """The object store Triton reads the repository from (s3, gs, as), None for a volume."""
        uri = self.uri
        scheme = uri.split("://", 1)[0] if "://" in uri else None
        return scheme if scheme in OBJECT_STORES else None

    @property
    def uri(self) -> str:
        if self.options.repository_uri:
            return self.options.repository_uri
        return str(self.repo) if self.options.target == "compose" else f"pvc://{self.options.name}-models"

    @property
    def model_repository(self) -> str:
        """What tritonserver's --model-repository gets."""
        return self.uri if self.scheme else MOUNT

    def server_args(self, repository: str | None = None) -> list[str]:
        """tritonserver's flags (every target passes these; the command itself is the target's)."""
        return [f"--model-repository={repository or self.model_repository}",
                f"--model-control-mode={self.options.model_control_mode}", "--strict-readiness=true",
                TRITON_SUMMARY_FLAG, *(["--load-model=*"] if self.options.model_control_mode == "explicit" else [])]

    @property
    def startup_failures(self) -> int:
        """Failed startup probes (every ``PROBE_PERIOD_S``) before the container is restarted."""
        budget = STARTUP_BASE_S + self.repo_bytes / STARTUP_BYTES_PER_S
        return max(6, math.ceil(budget / PROBE_PERIOD_S))

    @property
    def startup_seconds(self) -> int:
        return self.startup_failures * PROBE_PERIOD_S

    @property
    def max_replicas(self) -> int:
        return self.options.max_replicas or 4 * self.options.replicas

    @property
    def version(self) -> str:
        return importlib.metadata.version("tritonize")


def _release(repo: Path, chosen: str | None) -> releases.Release:
    if chosen is not None:
        return releases.get(chosen, "--triton-version")
    recorded: dict[str, str] = {}
    for manifest in sorted(repo.glob(f"*/{MANIFEST}")):
        try:
            versions = json.loads(manifest.read_text()).get("versions", {})
        except (OSError, ValueError, AttributeError):
            continue
        for entry in versions.values() if isinstance(versions, dict) else ():
            name = (entry.get("target") or {}).get("triton_version") if isinstance(entry, dict) else None
            if isinstance(name, str):
                recorded.setdefault(name, manifest.parent.name)
    if len(recorded) > 1:
        raise SpecError("--triton-version", None, "one release: the manifests record "
                        + ", ".join(f"{r} ({m})" for r, m in sorted(recorded.items())))
    return releases.get(next(iter(recorded), None), "triton_version")


def _check_options(o: Options) -> None:
    if o.target not in TARGETS:
        raise SpecError("--target", o.target, "one of " + ", ".join(TARGETS))
    if not _NAME.fullmatch(o.name):
        raise SpecError("--name", o.name, "a DNS-1123 label of at most 40 characters (a-z, 0-9, '-')")
    if o.replicas < 1:
        raise SpecError("--replicas", o.replicas, "an integer >= 1")
    if o.max_replicas is not None and o.max_replicas < o.replicas:
        raise SpecError("--max-replicas", o.max_replicas, f"an integer >= --replicas ({o.replicas})")
    if o.gpus is not None and o.gpus < 0:
        raise SpecError("--gpus", o.gpus, "an integer >= 0")
    if o.image is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", o.image):
        raise SpecError("--image", o.image, "an image reference such as registry.example.com/triton:24.10-py3")
    if o.image is not None and o.target == "kserve":
        raise SpecError("--image", o.image, "no --image with --target kserve (its runtime kserve-tritonserver "
                        "names the image; --triton-version picks runtimeVersion)")
    if o.target_queue_us < 1:
        raise SpecError("--target-queue-us", o.target_queue_us, "an integer >= 1 (microseconds)")
    for flag, value in (("--cpu", o.cpu), ("--memory", o.memory)):
        if value is not None and not _QUANTITY.fullmatch(value):
            raise SpecError(flag, value, "a Kubernetes quantity such as 4, 500m, 16Gi")
    if o.memory is not None and o.memory.endswith("m"):
        raise SpecError("--memory", o.memory, "bytes with a unit such as 512Mi or 16Gi")
    if o.model_control_mode not in ("none", "poll", "explicit"):
        raise SpecError("--model-control-mode", o.model_control_mode, "none, poll or explicit")
    uri = o.repository_uri
    if uri is None:
        return
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in OBJECT_STORES:
        if not rest.strip("/") or " " in uri:
            raise SpecError("--repository-uri", uri, f"{scheme}://<bucket>/<path>")
        return
    if sep and scheme == "pvc" and o.target != "compose":
        if not _NAME.fullmatch(rest.split("/", 1)[0]):
            raise SpecError("--repository-uri", uri, "pvc://<claim>[/<path>] with a DNS-1123 claim name")
        return
    if sep or not uri.startswith("/"):
        where = "an absolute path" + ("" if o.target == "compose" else ", pvc://<claim>[/<path>]")
        raise SpecError("--repository-uri", uri, f"{where}, s3://, gs:// or as://<account>/<container>/<path>")


def read_plan(repo: Path, options: Options) -> Plan:
    """The plan for ``repo`` under ``options``; a bad option or a repository without models is a SpecError."""
    _check_options(options)
    repo = repo.resolve()
    gpu_models: list[str] = []
    python_models: list[str] = []
    models: list[str] = []
    requirements: set[str] = set()
    needed = 0
    for model_dir in sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sources = read_configs(model_dir)
        config = next((s.config for s in sources if s.rel == "config.pbtxt"), None)
        if config is None:
            continue
        models.append(model_dir.name)
        for group in config.instance_group:
            if group.kind == group.KIND_GPU:
                needed = max(needed, max(group.gpus) + 1 if group.gpus else 1)
                if model_dir.name not in gpu_models:
                    gpu_models.append(model_dir.name)
        if config.backend == "python":
            python_models.append(model_dir.name)
            req = model_dir / "requirements.txt"
            if req.is_file():
                requirements.update(line.strip() for line in req.read_text().splitlines()
                                    if line.strip() and not line.lstrip().startswith("#"))
    if not models:
        raise SpecError("REPO", str(repo), "a model repository (model directories with config.pbtxt)")
    gpus = needed if options.gpus is None else options.gpus
    if gpus < needed:
        raise SpecError("--gpus", options.gpus, f"at least {needed}: the KIND_GPU instance groups of "
                        f"{', '.join(gpu_models)} need {needed} device{'s' * (needed > 1)}")
    size = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file() and not f.is_symlink())
    return Plan(repo, options, _release(repo, options.triton_version), gpus, tuple(gpu_models),
                tuple(python_models), tuple(sorted(requirements)), size, tuple(models))
