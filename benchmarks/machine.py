"""The machine and library versions the server benchmarks record beside their numbers."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from typing import Any

from tritonize.client.bench.report import machine


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(server_version: str, dists: tuple[str, ...]) -> dict[str, Any]:
    """Date, CPU model, usable cores, OS, and the versions of Python, tritonize, tritonclient, the server, ``dists``."""
    this = machine()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {key: this[key] for key in ("cpu", "cores", "os", "arch")},
        "versions": {"python": this["versions"]["python"], "tritonize": version("tritonize"),
                     "tritonclient": version("tritonclient"), "tritonserver": server_version,
                     **{d: version(d) for d in dists}},
    }
