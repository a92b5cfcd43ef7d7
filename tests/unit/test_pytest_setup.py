"""The test run's own guards: a per-test timeout that really stops a test, the 300 s default from pyproject, and
the ``integration`` marker on every test under tests/integration (tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_default_timeout_is_300_s(request: pytest.FixtureRequest) -> None:
    assert request.config.getini("timeout") == "300"


@pytest.mark.slow
def test_a_timeout_marker_stops_a_test(tmp_path: Path) -> None:
    (tmp_path / "test_sleeps.py").write_text(
        "import time\n\nimport pytest\n\n\n@pytest.mark.timeout(1)\ndef test_sleeps():\n    time.sleep(5)\n")
    done = _pytest("-q", "test_sleeps.py", cwd=tmp_path)  # outside the repository: no conftest, no pyproject
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Timeout" in out, out
    session = re.search(r"1 failed in ([0-9.]+)s", out)
    assert session and float(session.group(1)) < 4, out  # stopped, not slept out


def _collected(*args: str) -> list[str]:
    done = _pytest("--collect-only", "-q", *args, "tests", cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


@pytest.mark.slow
def test_integration_marker_splits_the_suite() -> None:
    unit, integration = _collected("-m", "not integration"), _collected("-m", "integration")
    assert unit and all(n.startswith("tests/unit/") for n in unit), unit
    assert integration and all(n.startswith("tests/integration/") for n in integration), integration
