"""Logging belongs to the host: the library logs to ``tritonize.*`` loggers and only the CLI decides what is shown.

* a build with static INT8 quantization (onnxruntime's quantizer logs through the root logger's functions)
  leaves the host's root logger as it was: its level, its handlers (none added, e.g. by ``basicConfig``) and
  its filters;
* used from Python, the build prints nothing of its own: no progress lines, and with a host that configured
  no logging, no warnings through Python's last-resort handler either;
* ``install_cli_output()`` shows the lines on stderr (``warning:`` before warnings);
* ``progress()`` renders a bar once ``install_cli_output(bars=True)`` is on, and is silent otherwise.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritonize.core import log
from tritonize.generator.build import build
from tritonize.generator.config_spec import InstanceGroup
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parent / "toy_models.py")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
OWN_LINES = ("exporting", "verifying", "loading", "version 1: new")  # tritonize's INFO lines of a build


@pytest.fixture
def pristine_logging() -> Iterator[logging.Logger]:
    """The ``tritonize`` logger as a fresh import leaves it (other tests run the CLI, which configures it);
    everything restored afterwards."""
    root = logging.getLogger(log.ROOT)
    saved = (list(root.handlers), root.level, root.propagate, log._console,
             {name: logging.getLogger(name).level for name in log.NOISY})
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.NOTSET)
    root.propagate = True
    log._console = None
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handlers, level, propagate, console, noisy = saved
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        root.propagate = propagate
        log._console = console
        for name, noisy_level in noisy.items():
            logging.getLogger(name).setLevel(noisy_level)


def _toy_onnx(repo: Path) -> None:
    build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=4, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("cpu"),))], repo)


# A host that set its root level and nothing else, then quantizes (static INT8: calibration, QDQ).
HOST = """
import logging, sys
root = logging.getLogger()
root.setLevel(logging.INFO)
before = (root.level, list(root.handlers), list(root.filters))
tritonize_before = logging.getLogger("tritonize").handlers[:], logging.getLogger("tritonize").propagate

from tritonize.generator.build import build
from tritonize.generator.quantization import Quantization
from tritonize.generator.request import FormatOptions, ModelRequest

static = FormatOptions(quantization=Quantization("static", calibration="minmax"))
[built] = build([ModelRequest("toy", {toy!r} + ":mlp", max_batch_size=8, version=1, formats=("onnx-int8",),
                              format_options={{"onnx-int8": static}})], {repo!r})
assert "static INT8" in built.optimization.technique, built.optimization.technique
after = (root.level, list(root.handlers), list(root.filters))
print("LEVEL", logging.getLevelName(root.level), "HANDLERS", root.handlers, "FILTERS", root.filters)
assert after == before, (before, after)
ours = logging.getLogger("tritonize")  # the library adds only a NullHandler (no output of its own)
assert [type(h) for h in ours.handlers] == [logging.NullHandler] and ours.propagate == tritonize_before[1]
print("OK")
"""


@pytest.fixture(scope="module")
def quantizing_host(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    repo = tmp_path_factory.mktemp("int8") / "repo"
    code = textwrap.dedent(HOST).format(toy=TOY, repo=str(repo))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)


def test_quantization_leaves_the_hosts_root_logger_alone(quantizing_host: subprocess.CompletedProcess[str]) -> None:
    proc = quantizing_host
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LEVEL INFO HANDLERS [] FILTERS []" in proc.stdout and proc.stdout.strip().endswith("OK"), proc.stdout


def test_quantization_in_process_leaves_root_alone(tmp_path: Path, pristine_logging: logging.Logger) -> None:
    """The same in this process (where pytest's capture handlers sit on root): level, handlers, filters."""
    from tritonize.generator.quantization import Quantization
    from tritonize.generator.request import FormatOptions

    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        before = (list(root.handlers), list(root.filters))
        static = FormatOptions(quantization=Quantization("static", calibration="minmax"))
        build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx-int8",),
                            format_options={"onnx-int8": static})], tmp_path / "repo")
        assert root.level == logging.INFO
        assert (list(root.handlers), list(root.filters)) == before
    finally:
        root.setLevel(previous)


def test_a_host_without_logging_sees_no_tritonize_lines(quantizing_host: subprocess.CompletedProcess[str]) -> None:
    """Nothing of tritonize's reaches stderr when the host configured no handler: not its INFO lines, and not
    its warnings through Python's last-resort handler (a library's logger needs a NullHandler for that)."""
    assert quantizing_host.returncode == 0, quantizing_host.stderr
    ours = [line for line in quantizing_host.stderr.splitlines() if line.startswith("[toy_")]
    assert not any(word in line for line in ours for word in OWN_LINES), ours
    assert ours == [], f"tritonize printed through Python's last-resort handler: {ours}"


def test_library_use_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    pristine_logging: logging.Logger) -> None:
    _toy_onnx(tmp_path / "repo")
    captured = capsys.readouterr()
    assert (tmp_path / "repo" / "toy_onnx" / "1" / "model.onnx").is_file()
    assert captured.out == ""
    assert not any(word in captured.err for word in (*OWN_LINES, "[toy_onnx]")), captured.err


def test_cli_output_shows_the_lines_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              pristine_logging: logging.Logger) -> None:
    log.install_cli_output(bars=False)
    _toy_onnx(tmp_path / "repo")
    captured = capsys.readouterr()
    assert captured.out == ""
    for line in ("[toy] loading", "[toy_onnx] exporting onnx", "[toy_onnx] verifying against the callable reference",
                 "[toy_onnx] version 1: new in"):
        assert line in captured.err, captured.err
    # warnings carry their prefix; a second install replaces the handler instead of adding one
    log.install_cli_output(bars=False)
    assert len([h for h in pristine_logging.handlers if getattr(h, "_tritonize_cli", False)]) == 1
    log.logger("tritonize.generator.build").warning("careful")
    assert capsys.readouterr().err.splitlines() == ["warning: careful"]


def test_progress_renders_only_with_bars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         pristine_logging: logging.Logger) -> None:
    from rich.console import Console

    log.install_cli_output(bars=False)
    assert log._console is None
    with log.progress("silent", total=2) as bar:  # no bar: a no-op
        bar.describe("still silent")
        bar.advance()
        assert bar._bar is None

    log.install_cli_output(bars=True)
    assert isinstance(log._console, Console)
    screen = io.StringIO()
    monkeypatch.setattr(log, "_console", Console(file=screen, force_terminal=True, width=120))
    with log.progress("counting", total=4) as bar:
        bar.describe("halfway")
        bar.advance(2)
    shown = ANSI.sub("", screen.getvalue())
    assert "halfway" in shown and "2/4" in shown, shown

    screen = io.StringIO()
    monkeypatch.setattr(log, "_console", Console(file=screen, force_terminal=True, width=120))
    _toy_onnx(tmp_path / "repo")  # the build reports through progress(): its last step and count
    shown = ANSI.sub("", screen.getvalue()).replace("\r", "\n")
    assert "export, verify" in shown and "1/1" in shown, shown
    # the step names its model, "[toy_onnx]" (text, not rich markup)
    last = [line.strip() for line in shown.splitlines() if "export, verify" in line][-1]
    assert "[toy_onnx] export, verify" in shown, f"the bar shows {last!r}"
