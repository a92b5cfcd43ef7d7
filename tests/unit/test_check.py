"""``tritonize check``: every planted mistake under tests/check_repos is found, and nothing else.

Each ``tests/check_repos/<case>/`` is a model repository with one mistake (``valid/`` has none). Its
``expected.txt`` lists, one line per finding, ``<severity> <code> <text the message must contain>``; an
optional ``expected-no-autocomplete.txt`` lists them for a server run with --disable-auto-complete-config
(``check_repository(autocomplete=False)``); an optional ``target.txt`` names the path to check instead of the
case directory. ``make_models.py`` writes
the model files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tritonize.core.check import CODES, Finding, check_repository
from tritonize.core.check.codes import severity

REPOS = Path(__file__).resolve().parents[1] / "check_repos"
CASES = sorted(p.name for p in REPOS.iterdir() if (p / "expected.txt").is_file())
NO_AUTOCOMPLETE = "expected-no-autocomplete.txt"
NO_AUTOCOMPLETE_CASES = [case for case in CASES if (REPOS / case / NO_AUTOCOMPLETE).is_file()]


class Expected:
    def __init__(self, line: str) -> None:
        self.severity, self.code, self.fragment = [*line.split(maxsplit=2), ""][:3]

    def matches(self, finding: Finding) -> bool:
        same = (finding.severity, finding.code) == (self.severity, self.code)
        return same and self.fragment in finding.message

    def __repr__(self) -> str:
        return f"{self.severity} {self.code} {self.fragment!r}"


def expected(case: str, autocomplete: bool = True) -> list[Expected]:
    lines = (REPOS / case / ("expected.txt" if autocomplete else NO_AUTOCOMPLETE)).read_text().splitlines()
    return [Expected(line) for line in lines if line.strip() and not line.startswith("#")]


def findings(case: str, autocomplete: bool = True) -> list[Finding]:
    target = REPOS / case / "target.txt"
    path = REPOS / case / target.read_text().strip() if target.is_file() else REPOS / case
    return check_repository(path, autocomplete=autocomplete)


@pytest.mark.parametrize("case", CASES)
def test_case_finds_exactly_the_planted_mistake(case: str) -> None:
    _assert_finds_exactly(case, autocomplete=True)


@pytest.mark.parametrize("case", NO_AUTOCOMPLETE_CASES)
def test_case_without_auto_complete_finds_exactly_its_findings(case: str) -> None:
    _assert_finds_exactly(case, autocomplete=False)


def _assert_finds_exactly(case: str, autocomplete: bool) -> None:
    found = findings(case, autocomplete)
    unmatched = list(found)
    for want in expected(case, autocomplete):
        hit = next((f for f in unmatched if want.matches(f)), None)
        assert hit is not None, f"{case}: no finding {want}; got {found}"
        unmatched.remove(hit)
    assert not unmatched, f"{case}: unexpected findings {unmatched}"
    for f in found:
        assert f.message and "\n" not in f.message, f
        assert (f.model == "") == (f.code == "repo-missing"), f


def test_valid_repository_is_clean() -> None:
    assert findings("valid") == []


# A missing package cannot be a fixture repository: test_missing_reader_is_reported_not_unreadable covers it.
NOT_A_CASE = {"reader-missing"}


def test_every_code_is_exercised_by_a_case() -> None:
    exercised = {want.code for case in CASES for want in expected(case)}
    exercised |= {want.code for case in NO_AUTOCOMPLETE_CASES for want in expected(case, autocomplete=False)}
    assert exercised == {code.id for code in CODES} - NOT_A_CASE


def test_code_registry() -> None:
    ids = [code.id for code in CODES]
    assert len(ids) == len(set(ids))
    for code in CODES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code.id), code.id
        assert code.severity in ("error", "warning") and code.rule


def test_expected_severity_follows_the_registry() -> None:
    for case in CASES:
        for want in expected(case):
            assert want.severity == severity(want.code), (case, want)
    for case in NO_AUTOCOMPLETE_CASES:
        for want in expected(case, autocomplete=False):
            assert want.severity == severity(want.code, autocomplete=False), (case, want)


def test_findings_are_sorted_by_model_then_code(tmp_path: Path) -> None:
    for name in ("b", "a"):
        (tmp_path / name / "1").mkdir(parents=True)
        config = 'name: "x"\nbackend: "python"\ninput [ { name: "i" } ]\n'
        (tmp_path / name / "config.pbtxt").write_text(config)
    found = check_repository(tmp_path)
    keys = [(f.model, f.code) for f in found]
    assert keys == sorted(keys) and {f.model for f in found} == {"a", "b"}


def test_config_variant_reports_only_its_own_mistakes(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text("")
    config = ('backend: "python"\nmax_batch_size: {mbs}\n'
              'input [ {{ name: "i" data_type: TYPE_FP32 dims: {dims} }} ]\n')
    (model / "config.pbtxt").write_text(config.format(mbs=-1, dims="[ 1 ]"))
    (model / "configs").mkdir()
    (model / "configs" / "cpu.pbtxt").write_text(config.format(mbs=-1, dims="[ ]"))
    found = [(f.code, f.message.split(":")[0]) for f in check_repository(tmp_path)]
    assert sorted(found) == [("bad-max-batch-size", "max_batch_size -1 must be >= 0 (0"),
                             ("empty-dims", "configs/cpu.pbtxt")]


def test_repository_that_is_a_file_or_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "repo").write_text("")
    [finding] = check_repository(tmp_path / "repo")
    assert (finding.code, finding.model) == ("repo-missing", "") and "not a directory" in finding.message
    [finding] = check_repository(REPOS / "valid" / "classifier_ts")
    assert finding.code == "repo-missing" and "is a model directory" in finding.message


def test_import_does_not_load_torch_or_onnx() -> None:
    code = "import sys, tritonize.core.check; print(sorted({'torch', 'onnx'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_reader_is_reported_not_unreadable(tmp_path: Path) -> None:
    shutil.copytree(REPOS / "valid", tmp_path / "repo")
    shutil.copytree(REPOS / "model_unreadable" / "m", tmp_path / "repo" / "m")  # a corrupt model.onnx
    code = ("import sys; sys.modules['onnx'] = None\n"  # blocks `import onnx`
            "from tritonize.core.check import check_repository\n"
            f"for f in check_repository({str(tmp_path / 'repo')!r}): print(f.model, f.code, f.message)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    onnx_models = [line for line in out.splitlines() if line.split()[0] in ("classifier_onnx", "m")]
    assert len(onnx_models) == 2, out  # one finding per ONNX model (config variants add none)
    for line in onnx_models:
        assert " reader-missing " in line and "needs onnx (pip install onnx)" in line, out
    assert "model-unreadable" not in out and "classifier_ts" not in out and "pipeline" not in out


def test_corrupt_onnx_file_is_unreadable() -> None:
    pytest.importorskip("onnx")
    [finding] = check_repository(REPOS / "model_unreadable")
    assert finding.code == "model-unreadable" and "not readable ONNX" in finding.message
