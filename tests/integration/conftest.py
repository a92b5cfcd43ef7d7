"""One real tritonserver for the integration tests: the pip-installed 2.51 with tritonize's stand-in backends,
on free loopback ports, serving a repository the generator builds here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import BuiltModel, build
from tritonize.generator.config_spec import DynamicBatching, InstanceGroup, VersionPolicy
from tritonize.generator.io_spec import DeclaredTensor
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")
BROKEN = "broken_onnx"  # a generated model whose config is then edited to disagree with the ONNX graph

# First lines of a test's python-backend model.py: plain imports, as in the NGC image (the local server runs the
# stub where this environment's packages come first: deploy/local.py shadow_site).
STUB_PREAMBLE = """import json, os, sys, time
import numpy as np
import triton_python_backend_utils as pb_utils
"""


@dataclass
class Served:
    server: LocalTriton
    repo: Path
    built: dict[str, BuiltModel]


def _requests() -> list[ModelRequest]:
    features = (DeclaredTensor("features", "float32", (4,)),)
    return [
        # parity over the wire: two inputs (float + int64 ids of variable length), two outputs
        ModelRequest("two_heads", f"{TOY}:two_heads", max_batch_size=8, version=1),
        # the dynamic batcher with two CPU instances
        ModelRequest("batcher", f"{TOY}:mlp", max_batch_size=32, version=1, formats=("onnx", "torchscript"),
                     dynamic_batching=DynamicBatching(max_queue_delay_microseconds=20_000),
                     instance_group=(InstanceGroup("cpu", 2),)),
        # a GPU production config: serves here through configs/cpu.pbtxt
        ModelRequest("gpu", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                     instance_group=(InstanceGroup("gpu", 1),)),
        ModelRequest("broken", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",), inputs=features),
        # a model the management tests unload and reload
        ModelRequest("spare", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",)),
    ]


def _versioned(repo: Path) -> None:
    """Three versions (different weights) under two version policies."""
    for policy, name in ((VersionPolicy("latest", 2), "latest2"),
                         (VersionPolicy("specific", versions=(1, 3)), "specific13")):
        for version in (1, 2, 3):
            build([ModelRequest(name, f"{TOY}:mlp", kwargs={"seed": version}, max_batch_size=8, version=version,
                                formats=("onnx",), version_policy=policy)], repo)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    repo = tmp_path_factory.mktemp("repo")
    built = {b.name: b for b in build(_requests(), repo)}
    _versioned(repo)
    config = repo / BROKEN / "config.pbtxt"
    config.write_text(config.read_text().replace("dims: [ 4 ]", "dims: [ 5 ]", 1))
    # explicit model control with every model loaded at start: the client tests may unload and load
    with LocalTriton(repo, strict=False, model_control_mode="explicit", load_models=("*",),
                     log_file=tmp_path_factory.mktemp("logs") / "tritonserver.log") as server:
        yield Served(server, repo, built)


@pytest.fixture(scope="session")
def toy_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small repository for tests that start servers of their own."""
    repo = tmp_path_factory.mktemp("toy")
    build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1,
                        instance_group=(InstanceGroup("cpu", 2),))], repo)
    return repo


# Triton's native onnxruntime and pytorch backends (r24.10), built once by ../shared/native/build.sh (~5 minutes).
NATIVE_BUILD = Path(__file__).resolve().parents[3] / "shared" / "native" / "build.sh"
NATIVE_CACHE = Path(os.environ.get("TRITONIZE_NATIVE_CACHE", Path.home() / ".cache" / "tritonize" / "native-r24.10"))


@pytest.fixture(scope="session")
def native() -> Path:
    """The native build's directory (``LocalTriton(repo, native=...)``), built into the cache when missing."""
    if (NATIVE_CACHE / "bin" / "tritonserver").is_file():
        return NATIVE_CACHE
    if not NATIVE_BUILD.is_file() or shutil.which("apt-get") is None:
        pytest.skip(f"the native backends cannot be built here: needs {NATIVE_BUILD} and apt-get")
    NATIVE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    log = NATIVE_CACHE.parent / "native-build.log"
    with log.open("w") as out:
        done = subprocess.run(["bash", str(NATIVE_BUILD), str(NATIVE_CACHE)], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        pytest.fail(f"building the native backends failed (exit {done.returncode}): {log.read_text()[-2000:]}")
    return NATIVE_CACHE


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example repository (model_repository/tritonize.toml), built once."""
    repo = tmp_path_factory.mktemp("example")
    shutil.copy(Path(__file__).resolve().parents[2] / "model_repository" / "tritonize.toml", repo)
    subprocess.run([sys.executable, "-c", "from tritonize.cli import main; main()", "build",
                    str(repo / "tritonize.toml")], check=True, capture_output=True)
    return repo
