"""``tritonize check`` refuses what Triton r24.10 itself refuses at load, and nothing it accepts: ragged batching,
sequence control inputs, implicit state, GPU ids, and severities that follow backend auto-complete.

Each row was served on tritonserver 2.51 (r24.10) with the native backends; the comment gives what it did. The
fixture cases under tests/check_repos cover one row per code; these cover the others.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tritonize.core.check import check_repository

REPOS = Path(__file__).resolve().parents[1] / "check_repos"
PY_IO = ('backend: "python"\nmax_batch_size: 8\ninput [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
         'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')


def _control(name: str, body: str) -> str:
    return f'{{ name: "{name}" control [ {{ {body} }} ] }}'


def _seq(*controls: str) -> str:
    return f"sequence_batching {{ control_input [ {', '.join(controls)} ] }}"


def _state(initial: str) -> str:
    return ('sequence_batching { state [ { input_name: "SIN" output_name: "SOUT" data_type: TYPE_FP32 dims: [ 2 ] '
            f"{initial} }} ] }}")


START = "kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ]"
CORRID = "kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_{}"
ZEROS = 'initial_state { name: "z" data_type: TYPE_FP32 dims: [ 2 ] zero_data: true }'

# (what a python-backend config adds, the code check reports or None, a fragment of its message)
PYTHON_ROWS = [
    # batch_input (model_config_utils.cc ValidateBatchIO)
    ('batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" data_type: TYPE_INT32 source_input: "INPUT0" } ]',
     None, ""),  # loads
    ('batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" data_type: TYPE_FP32 '
     'source_input: [ "INPUT0", "INPUT0" ] } ]', "batch-input", "has 2 source_input"),  # "expects 1 source input"
    ('batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" source_input: "INPUT0" } ]',
     "batch-input", "data_type TYPE_INVALID"),  # "unexpected batch input data type 'TYPE_INVALID'"
    ('batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "INPUT0" data_type: TYPE_INT32 source_input: "INPUT0" } ]',
     None, ""),  # a target named like an input: the python backend loads it
    # batch_output
    ('batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUTPUT0" source_input: "INPUT0" } ]',
     None, ""),  # loads
    ('batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: [ "OUTPUT0", "OUTPUT0" ] '
     'source_input: "INPUT0" } ]', "batch-output", "given twice"),  # "can only be specified once"
    # control inputs (ValidateModelConfig, GetBooleanSequenceControlProperties / GetTypedSequenceControlProperties)
    (_seq(_control("S", "kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ]"), _control("C", CORRID.format(
        "STRING"))), None, ""),  # loads
    (_seq('{ name: "S" control [ { ' + START + ' }, { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] }'),
     None, ""),  # one tensor, two kinds: loads
    (_seq(_control("S1", START), _control("S2", START)), "sequence-control", "already given"),  # "multiple"
    (_seq(_control("S", START), _control("S", START.replace("START", "END"))), "sequence-control", "listed twice"),
    (_seq('{ control [ { ' + START + ' } ] }'), "sequence-control", "has no name"),
    (_seq(_control("S", "kind: CONTROL_SEQUENCE_START")), "sequence-control", "sets none"),
    (_seq(_control("S", "kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1, 2 ]")), "sequence-control",
     "has 3 entries"),
    (_seq(_control("S", START + " fp32_false_true: [ 0, 1 ]")), "sequence-control",
     "sets int32_false_true and fp32_false_true"),
    (_seq(_control("C", CORRID.format("INT64") + " int32_false_true: [ 0, 1 ]")), "sequence-control",
     "takes data_type only"),
    (_seq(_control("C", "kind: CONTROL_SEQUENCE_CORRID")), "sequence-control", "data_type TYPE_INVALID"),
    ("sequence_batching { direct { minimum_slot_utilization: 0.0 } }", None, ""),  # loads
    # implicit state (sequence_batch_scheduler.cc SequenceBatchScheduler::Create, GenerateInitialStateData)
    (_state(ZEROS), None, ""),  # loads
    ('sequence_batching { state [ { input_name: "SIN" output_name: "SOUT" data_type: TYPE_FP32 dims: [ 2 ] }, '
     '{ input_name: "SIN" output_name: "SOUT2" data_type: TYPE_FP32 dims: [ 2 ] } ] }', None, ""),  # loads
    (_state(ZEROS.replace("TYPE_FP32", "TYPE_INT32")), "sequence-state", "data_type TYPE_INT32 differs"),
    (_state(ZEROS.replace('name: "z" ', "")), "sequence-state", "has no name"),
    (_state(ZEROS.replace("dims: [ 2 ]", "dims: [ 2, 1 ]")), "sequence-state", "have 2 dimensions"),
    (_state(ZEROS.replace("dims: [ 2 ]", "dims: [ -1 ]")), "sequence-state", "no -1"),
    (_state(ZEROS.replace(" zero_data: true", "")), "sequence-state", "neither zero_data nor data_file"),
    (_state(f"{ZEROS} {ZEROS}"), "sequence-state", "2 initial_state entries"),
    (_state(ZEROS.replace("zero_data: true", 'data_file: "nope"')), "sequence-state", "is not in 'm/initial_state/'"),
    (_state(ZEROS.replace("zero_data: true", 'data_file: "short"')), "sequence-state", "has 4 bytes"),
    # instance groups (NormalizeInstanceGroup, ValidateInstanceGroup)
    ("instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0 ] } ]", None, ""),  # needs a GPU 0: not static
]


@pytest.mark.parametrize(("config", "code", "fragment"), PYTHON_ROWS)
def test_core_rules_refuse_what_triton_refuses(tmp_path: Path, config: str, code: str | None, fragment: str) -> None:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text("")
    (model / "initial_state").mkdir()
    (model / "initial_state" / "short").write_bytes(b"1234")  # 4 of the 8 bytes FP32 [2] needs
    (model / "config.pbtxt").write_text(PY_IO + config + "\n")
    found = [(f.code, f.message) for f in check_repository(tmp_path)]
    if code is None:
        assert found == []
    else:
        assert [c for c, _ in found] == [code] and fragment in found[0][1], found
        assert all(f.severity == "error" for f in check_repository(tmp_path))


def _onnx_with_start(tmp_path: Path, start_type: int) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    io_ = [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, [-1, 4]),
           helper.make_tensor_value_info("START", start_type, [-1, 1])]
    graph = helper.make_graph([helper.make_node("Identity", ["INPUT"], ["OUTPUT"])], "g", io_,
                              [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, [-1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (tmp_path / "m" / "1").mkdir(parents=True)
    onnx.save(model, str(tmp_path / "m" / "1" / "model.onnx"))
    return tmp_path / "m" / "config.pbtxt"


ORT_SEQ = ('backend: "onnxruntime"\nmax_batch_size: 8\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
           'output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')


@pytest.mark.parametrize(("control", "code"), [
    ("int32_false_true: [ 0, 1 ]", None),  # loads
    ("fp32_false_true: [ 0, 1 ]", "onnx-control-input"),  # "the model expects data-type INT32 but ... TYPE_FP32"
])
def test_onnx_control_input_type(tmp_path: Path, control: str, code: str | None) -> None:
    from onnx import TensorProto

    config = _onnx_with_start(tmp_path, TensorProto.INT32)
    config.write_text(ORT_SEQ + _seq(_control("START", f"kind: CONTROL_SEQUENCE_START {control}")) + "\n")
    assert [f.code for f in check_repository(tmp_path)] == ([code] if code else [])


@pytest.mark.parametrize(("name", "control", "code"), [
    ("START", START, "torch-sequence-naming"),  # "input 'START' does not follow <name>__<index>"
    ("CORRID__1", CORRID.format("STRING"), "torch-control-dtype"),  # "'TYPE_STRING' is not supported by PyTorch"
    ("CORRID__1", CORRID.format("INT64"), None),
])
def test_torchscript_control_inputs(tmp_path: Path, name: str, control: str, code: str | None) -> None:
    pytest.importorskip("torch")
    shutil.copytree(REPOS / "torch_control_dtype" / "m", tmp_path / "m")  # forward(a, b), INPUT__0
    config = tmp_path / "m" / "config.pbtxt"
    text = config.read_text()
    config.write_text(text[:text.index("sequence_batching")] + _seq(_control(name, control)) + "\n")
    assert [f.code for f in check_repository(tmp_path)] == ([code] if code else [])


def test_disabling_auto_complete_changes_only_severities_it_decides(tmp_path: Path) -> None:
    """An ONNX config that lists inputs but no outputs loads either way (without outputs when auto-complete is
    off); one without inputs loads only with auto-complete (observed on r24.10)."""
    shutil.copytree(REPOS / "config_autocomplete" / "m", tmp_path / "m")
    config = tmp_path / "m" / "config.pbtxt"
    config.write_text('backend: "onnxruntime"\nmax_batch_size: 8\n'
                      'output [ { name: "logits" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    on = [(f.severity, f.code) for f in check_repository(tmp_path)]
    off = [(f.severity, f.code) for f in check_repository(tmp_path, autocomplete=False)]
    assert on == [("warning", "config-autocomplete")] and off == [("error", "config-autocomplete")]
    config.write_text('backend: "onnxruntime"\nmax_batch_size: 8\n'
                      'input [ { name: "input" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
    assert [(f.severity, f.code) for f in check_repository(tmp_path, autocomplete=False)] == [
        ("warning", "outputs-missing")]


def test_listed_tensor_fields_are_never_filled_by_onnx_auto_complete(tmp_path: Path) -> None:
    """AutoCompleteIO replaces an empty list only: a listed input without data_type is refused either way."""
    shutil.copytree(REPOS / "config_autocomplete" / "m", tmp_path / "m")
    (tmp_path / "m" / "config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 8\ninput [ { name: "input" dims: [ 4 ] } ]\n'
        'output [ { name: "logits" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    for autocomplete in (True, False):
        found = check_repository(tmp_path, autocomplete=autocomplete)
        assert [(f.severity, f.code) for f in found] == [("error", "tensor-field-missing")]


def test_cli_flag_mirrors_tritonservers() -> None:
    from click.testing import CliRunner

    from tritonize.cli import main

    case = str(REPOS / "config_autocomplete")
    assert CliRunner().invoke(main, ["check", case]).exit_code == 0  # a warning
    result = CliRunner().invoke(main, ["check", case, "--disable-auto-complete-config"])
    assert result.exit_code == 1 and "error" in result.output and "config-autocomplete" in result.output
