"""Every planted mistake of `tritonize check`'s test set, served: what Triton rejects fails at load here too
(the stand-ins refuse what the native backends refuse, with the same message), and what Triton accepts serves.

The cases are copied into one repository under unique names and served by one tritonserver that keeps
going past failed models. Python-backend cases get a working identity model.py so that only the planted
mistake can fail them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tritonize.core.check import BACKEND_LOAD_CODES
from tritonize.deploy.local import LocalTriton, ServerStartError

from .conftest import STUB_PREAMBLE

CASES = Path(__file__).parents[1] / "check_repos"

# Not served here, and why.
NOT_HERE = {
    "repo_missing": "not a repository",
    "backend_unknown": "a custom backend that exists nowhere",
    "trt_int8_no_calibration": "TensorRT execution provider settings act on GPU instances only",
    "trt_int8_qdq_with_table": "as trt_int8_no_calibration",
    "trt_precision_mode": "as trt_int8_no_calibration",
    "warmup_batch_size": "crashes tritonserver 2.51 (segfault in warmup): served alone below",
    "sequence_state_invalid": "a python-backend model refused after its instances started (core's initial_state "
                              "check) crashes tritonserver 2.51 about one run in three beside other failing models "
                              "(segfault): served alone below",
    "staging_leftover": "a repository-level leftover, not a model: a served repository has it removed first "
                        "(tests/integration/test_build_kills.py)",
    "model_file_missing": "a python-backend model without model.py hangs the 2.51 python backend; the same "
                          "mistake for a stand-in is the extra case onnx_model_file_missing",
}
# Triton accepts these (check reports warnings, or an error Triton itself does not raise).
SERVES = {
    "valid", "duplicate_tensor", "version_policy_missing", "cuda_graphs_ignored", "dynamic_batching_unbatched", "instance_count", "torch_mixed_naming",
    "version_dir_ignored", "manifest_incomplete",
    "tensor_autocomplete",  # its model.py's auto_complete_config fills in the data_type the config leaves out
    "torch_output_name",  # the native pytorch backend maps other output names by position, silently
    "torch_input_name",  # ... and such input names by config order
    "torch_batched_strings",  # loads; the warning is about what a batch of requests gets back
    "config_autocomplete",  # no config.pbtxt: onnxruntime's auto-complete (the stand-in's too) writes one
    "tensor_names_parameter",  # the backends ignore tritonize's parameters; only the typed client reads them
}

IDENTITY_MODEL = STUB_PREAMBLE + '''

class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.pairs = list(zip([i["name"] for i in config["input"]], [o["name"] for o in config["output"]]))

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(out, pb_utils.get_input_tensor_by_name(r, inp)
                .as_numpy()) for inp, out in self.pairs]) for r in requests]
'''


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in NOT_HERE)


def _copy_case(case: str, repo: Path) -> dict[str, str]:
    """Copy a case's models as <case>__<model>; return {served name: original name}."""
    models = [p for p in (CASES / case).iterdir() if p.is_dir()]
    names = {m.name: f"{case}__{m.name}" for m in models}
    for model in models:
        target = repo / names[model.name]
        shutil.copytree(model, target, symlinks=False)
        for config in [target / "config.pbtxt", *(target / "configs").glob("*.pbtxt")]:
            if config.is_file():
                text = config.read_text()
                for old, new in names.items():  # own name and ensemble step references
                    text = re.sub(rf'(name|model_name): "{old}"', rf'\1: "{new}"', text)
                config.write_text(text)
        for script in target.glob("*/model.py"):
            if "TritonPythonModel" not in script.read_text():
                script.write_text(IDENTITY_MODEL)
    return {v: k for k, v in names.items()}


@pytest.fixture(scope="module")
def served_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[str, str]]]:
    repo = tmp_path_factory.mktemp("cases")
    owners = {case: _copy_case(case, repo) for case in _cases()}
    # the model-file-missing mistake for a stand-in: the valid ONNX model without its file
    missing = repo / "onnx_model_file_missing"
    shutil.copytree(CASES / "valid" / "classifier_onnx", missing)
    for config in (missing / "config.pbtxt", missing / "configs" / "cpu.pbtxt"):
        config.write_text(config.read_text().replace('"classifier_onnx"', '"onnx_model_file_missing"'))
    shutil.rmtree(missing / "1" / "model.onnx")
    owners["onnx_model_file_missing"] = {"onnx_model_file_missing": "onnx_model_file_missing"}
    with LocalTriton(repo, strict=False, ready_timeout=180) as server:
        states = {}
        for s in server.models():
            states.setdefault(s.name, (s.state, s.reason))
        for line in server.log_text().splitlines():  # models Triton skipped before indexing them
            match = re.search(r"failed to load (?:model )?'([^']+)'.*?: (.*)", line)
            if match and match.group(1) not in states:
                states[match.group(1)] = ("UNAVAILABLE", match.group(2))
    return {case: {served: states.get(served, ("MISSING", "")) for served in models} for case, models in owners.items()}


def test_warmup_beyond_max_batch_size_kills_the_server() -> None:
    with pytest.raises(ServerStartError, match="exited with code"):
        LocalTriton(CASES / "warmup_batch_size", ready_timeout=60).start()


def test_initial_state_that_core_refuses_is_refused(tmp_path: Path) -> None:
    _copy_case("sequence_state_invalid", tmp_path)
    with LocalTriton(tmp_path, strict=False, ready_timeout=120) as server:
        [model] = server.models()
    assert model.state != "READY" and "'initial_state' dim for input name 'STATE_IN'" in model.reason, model


def _expected(case: str) -> list[tuple[str, str, str]]:
    if case in EXPECTED_EXTRA:
        return EXPECTED_EXTRA[case]
    lines = (CASES / case / "expected.txt").read_text().splitlines()
    return [tuple(line.split(" ", 2)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


EXPECTED_EXTRA = {"onnx_model_file_missing": [("error", "model-file-missing", "'model.onnx'")]}


@pytest.mark.parametrize("case", [*_cases(), *EXPECTED_EXTRA])
def test_case_is_served_exactly_when_triton_accepts_it(served_cases: dict, case: str) -> None:
    states = served_cases[case]
    if case in SERVES:
        assert all(state == "READY" for state, _ in states.values()), states
        return
    assert any(state != "READY" for state, _ in states.values()), f"{case} loaded: {states}"
    # Refused by a stand-in: with check's message for the first such mistake (as the native backends stop
    # at the first one).
    texts = [text.strip() for severity, code, text in _expected(case)
             if severity == "error" and code in BACKEND_LOAD_CODES]
    reasons = " ".join(reason for _, reason in states.values())
    assert not texts or any(text in reasons for text in texts), (texts, reasons)
