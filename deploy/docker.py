"""Serve a repository in the NGC image (native backends, GPUs) through the Docker engine's Python SDK.

The repository is mounted read-only at /models; GPUs are requested unless ``gpus=False`` (then the
``configs/cpu.pbtxt`` variants are selected, as locally). Needs ``pip install 'tritonize[docker]'`` and a
Docker engine that answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tritonize.core import releases
from tritonize.core.errors import UsageError
from tritonize.core.observability import TRITON_SUMMARY_FLAG

DEFAULT_IMAGE = releases.get().image  # nvcr.io/nvidia/tritonserver:24.10-py3: Triton 2.51, the local server


def run_kwargs(repo: Path, image: str, *, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001,
               metrics_port: int = 8002,
               model_control_mode: str = "none", load_models: tuple[str, ...] = (), log_verbose: int = 0,
               gpus: bool = True, config_name: str | None = None) -> dict[str, Any]:
    """Arguments for ``docker.containers.run`` (one place, so they are tested without an engine).

    The ports are published on ``host`` only (loopback by default, like local serving); "0.0.0.0" opens them
    on every interface."""
    from docker.types import DeviceRequest

    command = ["tritonserver", "--model-repository=/models", f"--model-control-mode={model_control_mode}",
               f"--log-verbose={log_verbose}", "--strict-readiness=true", TRITON_SUMMARY_FLAG]
    command += [f"--load-model={m}" for m in load_models]
    if config_name:
        command.append(f"--model-config-name={config_name}")
    return {
        "image": image,
        "command": command,
        "volumes": {str(Path(repo).resolve()): {"bind": "/models", "mode": "ro"}},
        "ports": {"8000/tcp": (host, http_port), "8001/tcp": (host, grpc_port), "8002/tcp": (host, metrics_port)},
        "device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpus else [],
        "shm_size": "1g",
        "detach": True,
        "remove": True,
    }


def docker_client() -> Any:
    """A connected Docker client, or a UsageError that says why there is none."""
    try:
        import docker
    except ImportError:
        raise UsageError("--docker needs the Docker SDK: pip install 'tritonize[docker]'") from None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        root: BaseException = exc
        while root.__cause__ or root.__context__:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        raise UsageError(f"--docker: no Docker engine answers at {host} ({type(root).__name__}: "
                         f"{str(root).splitlines()[0] if str(root) else 'no answer'}); start Docker, or serve "
                         "with the local pip tritonserver by leaving out --docker") from None
    return client
