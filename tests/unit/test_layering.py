"""The layering holds: each side imports and runs without the packages of the sides above it.

Every test runs a fresh interpreter (``sys.executable -c``) that first installs a meta-path finder at
``sys.meta_path[0]`` refusing the blocked packages and all their submodules, as an install without them would:

* the client and the CLI's ``--help`` need no torch, onnx, onnxruntime, jinja2 and never import the generator;
* ``tritonize check`` on an ONNX repository without onnx warns "needs onnx" (exit 0), never "model-unreadable";
* the format registry, the linter and local serving import without torch, onnx, onnxruntime, jinja2 or the
  generator package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]
VALID = ROOT / "tests" / "check_repos" / "valid"  # classifier_onnx: an ONNX model; classifier_ts: TorchScript
HEAVY = ("torch", "onnx", "onnxruntime", "jinja2")

# What every child runs first: refuse the blocked names (and their submodules) and record each attempt.
BLOCKER = """
import importlib.abc, sys

BLOCKED = {blocked!r}
ATTEMPTS = []

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        for blocked in BLOCKED:
            if name == blocked or name.startswith(blocked + "."):
                ATTEMPTS.append(name)
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

for _name in list(sys.modules):  # nothing blocked may be there already (e.g. from a .pth file)
    assert not any(_name == b or _name.startswith(b + ".") for b in BLOCKED), _name
sys.meta_path.insert(0, _Blocker())
"""


def run_blocked(blocked: tuple[str, ...], body: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=blocked) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_blocker_blocks_packages_and_their_submodules() -> None:
    """The harness itself: a blocked package and its submodules raise, with ImportError.name set."""
    proc = run_blocked(("xml",), """
        for name in ("xml", "xml.dom", "xml.dom.minidom"):
            try:
                __import__(name)
            except ModuleNotFoundError:
                pass
            else:
                raise AssertionError(name + " imported")
        try:  # a submodule is refused on its own name too (for a parent imported before the block)
            _Blocker().find_spec("xml.dom.minidom")
        except ModuleNotFoundError as exc:
            assert exc.name == "xml.dom.minidom", exc.name
        else:
            raise AssertionError("xml.dom.minidom not refused")
        assert "xml" in ATTEMPTS and "xml" not in sys.modules, ATTEMPTS
    """)
    assert proc.returncode == 0, proc.stderr


def test_client_and_cli_help_without_build_packages() -> None:
    proc = run_blocked(HEAVY, """
        import tritonize.client
        import tritonize.cli
        from tritonize.cli import main

        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, f"--help exited with {exc.code!r}"
        else:
            raise AssertionError("click's standalone mode did not exit")
        loaded = sorted(m for m in sys.modules if m == "tritonize.generator" or m.startswith("tritonize.generator."))
        assert not loaded, f"the generator was imported: {loaded}"
        assert not ATTEMPTS, f"tried to import blocked modules: {ATTEMPTS}"
    """)
    assert proc.returncode == 0, proc.stderr
    # the help is click's, with the commands of the workflow
    assert "Usage:" in proc.stdout
    for command in ("export", "build", "check", "serve", "infer", "bench"):
        assert command in proc.stdout, proc.stdout


def test_check_an_onnx_repository_without_onnx_is_a_warning() -> None:
    assert (VALID / "classifier_onnx" / "config.pbtxt").is_file()
    proc = run_blocked(("onnx",), f"""
        from tritonize.cli import main

        try:
            main(["check", {str(VALID)!r}])
        except SystemExit as exc:
            print("EXIT", exc.code)
    """)
    out = proc.stdout + proc.stderr
    assert "EXIT 0" in proc.stdout, out  # a warning, not an error
    assert "needs onnx" in out and "reader-missing" in out, out
    assert "classifier_onnx" in out, out
    assert "model-unreadable" not in out, out
    assert "0 error(s), 1 warning(s)" in proc.stderr, out


def test_registry_check_and_local_serving_import_without_generator() -> None:
    proc = run_blocked((*HEAVY, "tritonize.generator"), f"""
        import tritonize.core.formats
        import tritonize.core.check
        import tritonize.deploy.local
        from tritonize.core import formats
        from tritonize.core.check import check_repository

        assert {{"onnx", "torchscript", "onnx-int8", "torchscript-int8"}} <= set(formats.FORMATS)
        assert {{"onnxruntime", "pytorch"}} <= set(formats.BACKENDS)
        # the linter runs too: the model files it cannot open are warnings naming the missing reader
        findings = check_repository({str(VALID)!r})
        assert findings and all(f.code == "reader-missing" for f in findings), findings
        assert {{f.model for f in findings}} == {{"classifier_onnx", "classifier_ts"}}, findings
        assert "tritonize.generator" not in sys.modules
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("OK")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK")
