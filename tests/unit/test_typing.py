"""mypy over the tree as CI runs it, and proof that pyproject's per-package settings reach the packages.

The source folders are packages only under their import names ([tool.setuptools] package-dir: client/ is
tritonize.client, ...), and mypy cannot follow the editable install's import hook. So mypy checks them by
import name ([tool.mypy] packages) through ``build/mypy-path/tritonize/<name>``: symlinks to the folders,
made here (build/ is git-ignored). By hand, links then mypy, extra arguments passed on:

    .venv/bin/python tests/unit/test_typing.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
MYPY_PATH = ROOT / "build" / "mypy-path"  # [tool.mypy] mypy_path


def package_dirs() -> dict[str, str]:
    """Import name -> folder, from [tool.setuptools] package-dir (``tritonize.client`` -> ``client``)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["tool"]["setuptools"]["package-dir"])


def make_links() -> None:
    """build/mypy-path/tritonize/<name> -> the folder of tritonize.<name> (relative links; replaced atomically,
    so concurrent runs do not trip over each other)."""
    for name, folder in package_dirs().items():
        link = MYPY_PATH.joinpath(*name.split("."))
        target = os.path.relpath(ROOT / folder, link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)


def _real_paths(text: str) -> str:
    """mypy names files by their path through the links: name the folders instead."""
    for name, folder in package_dirs().items():
        linked = MYPY_PATH.joinpath(*name.split("."))
        for prefix in (str(linked), os.path.relpath(linked, ROOT)):
            text = text.replace(prefix + os.sep, folder + "/")
    return text


def run_mypy(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The project's mypy command: ``mypy`` from the repository root, configured by pyproject.toml alone."""
    make_links()
    done = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    done.stdout, done.stderr = _real_paths(done.stdout), _real_paths(done.stderr)
    return done


@pytest.fixture(scope="module")
def whole_tree() -> subprocess.CompletedProcess[str]:
    return run_mypy()


@pytest.mark.slow
def test_mypy_passes_on_the_tree(whole_tree: subprocess.CompletedProcess[str]) -> None:
    assert whole_tree.returncode == 0, whole_tree.stdout + whole_tree.stderr
    assert "Success: no issues found" in whole_tree.stdout
    # every package was checked (a package mypy could not find is an error, but say so plainly)
    assert "Can't find package" not in whole_tree.stdout + whole_tree.stderr


PROBE = '''
def untyped(x):
    return x


def bare_generic(x: list) -> list:
    return x
'''
UNTYPED = "Function is missing a type annotation"
GENERIC = 'Missing type arguments for generic type "list"'


@pytest.fixture()
def probe(request: pytest.FixtureRequest) -> Iterator[str]:
    """A module with an untyped function and a bare generic, written into a package folder for one mypy run
    (``_typing_probe_<random>.py``, always removed); yields its import name."""
    package: str = request.param
    stem = f"_typing_probe_{uuid.uuid4().hex[:12]}"
    path = ROOT / package_dirs()[package] / f"{stem}.py"
    try:
        path.write_text(PROBE)
        yield f"{package}.{stem}"
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probes' mypy cache: theirs, not the repository's .mypy_cache."""
    return tmp_path_factory.mktemp("mypy-cache")


# strict: the strict per-module flags apply (a bare generic fails); checked: untyped definitions fail, the
# strict flags stay off (``strict = true`` in an override would have turned strict on for every module)
PACKAGES = [("tritonize.client", True), ("tritonize.core", True), ("tritonize.generator", False),
            ("tritonize.deploy", False), ("tritonize.cli", False)]


@pytest.mark.slow
@pytest.mark.parametrize(("probe", "strict"), PACKAGES, indirect=["probe"], ids=[p for p, _ in PACKAGES])
def test_package_settings_apply(probe: str, strict: bool, probe_cache: Path) -> None:
    done = run_mypy("--cache-dir", str(probe_cache), "-m", probe, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert UNTYPED in out, out
    assert (GENERIC in out) is strict, out
    # the errors are reported for the probe under its folder, not under some other module name
    assert f"{package_dirs()[probe.rsplit('.', 1)[0]]}/{probe.rsplit('.', 1)[1]}.py:" in out, out


if __name__ == "__main__":
    result = run_mypy(*sys.argv[1:])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
