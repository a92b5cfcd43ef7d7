"""The machine and library versions the server benchmarks record beside their numbers."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(server_version: str, dists: tuple[str, ...]) -> dict[str, Any]:
    """Date, CPU model, usable cores, OS, and the versions of Python, tritonize, tritonclient, the server, ``dists``."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu, "cores": cores, "os": os_name, "arch": platform.machine()},
        "versions": {"python": platform.python_version(), "tritonize": version("tritonize"),
                     "tritonclient": version("tritonclient"), "tritonserver": server_version,
                     **{d: version(d) for d in dists}},
    }
