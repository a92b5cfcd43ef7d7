"""Debian packages the tests run for real (prometheus/promtool, docker-compose, chromium): installed once with
apt-get when missing, as the native-backend build is. A test that needs one fails when it cannot be had."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

_LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "tritonize-apt.lock"


def require(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first when it is not on PATH."""
    found = shutil.which(binary)
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.fail(f"{binary} is not installed and there is no apt-get to install Debian's {package}")
    with _LOCK.open("w") as lock:  # pytest-xdist workers or two sessions: one apt-get at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shutil.which(binary):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                                  capture_output=True, text=True, env=env)
            if done.returncode != 0:  # a stale package index: refresh once
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
                done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                                      capture_output=True, text=True, env=env)
            if done.returncode != 0:
                pytest.fail(f"apt-get install {package} failed: {done.stderr.strip()[-500:]}")
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"Debian's {package} installed no {binary}")
    return found
