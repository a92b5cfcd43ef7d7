"""Format-independent tensor names (issue 12, scope 5): a TorchScript config must name its outputs OUTPUT__<i>,
so the build records the model's own names in the config's parameters; the typed client and the stubs take and
return those names, so one piece of client code works against the ONNX and the TorchScript build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tritonize.client import ModelInfo
from tritonize.client.errors import InvalidInputError, TritonClientError
from tritonize.client.stubs import model_infos_from_repository, render_stubs
from tritonize.core.check import check_repository
from tritonize.generator.build import build
from tritonize.generator.errors import SpecError
from tritonize.generator.render import parse_config
from tritonize.generator.request import FormatOptions, ModelRequest

TOY = str(Path(__file__).parent / "toy_models.py")


def test_torchscript_config_records_the_models_own_output_names(tmp_path: Path) -> None:
    build([ModelRequest("d", f"{TOY}:dict_out", max_batch_size=8, version=1)], tmp_path)  # outputs scores, probs
    ts = parse_config((tmp_path / "d_torchscript/config.pbtxt").read_text())
    assert [o.name for o in ts.output] == ["OUTPUT__0", "OUTPUT__1"]  # what the pytorch backend maps by position
    assert dict(ts.parameters)["tritonize.output_names"].string_value == "scores,probs"
    assert "tritonize.input_names" not in ts.parameters  # forward(x) kept its argument name
    assert not parse_config((tmp_path / "d_onnx/config.pbtxt").read_text()).parameters
    assert check_repository(tmp_path) == []

    onnx_info, ts_info = model_infos_from_repository(tmp_path)
    for info in (onnx_info, ts_info):
        assert [t.key for t in info.outputs] == ["scores", "probs"]
        assert info.output_names(["probs"]) == [info.outputs[1].name]
    assert ts_info.output_names(["probs"]) == ["OUTPUT__1"] == ts_info.output_names(["OUTPUT__1"])
    # the stubs of both builds have the same outputs class
    fields = [[line for line in render_stubs([i], "x").splitlines() if line.startswith("    scores:")
               or line.startswith("    probs:")] for i in (onnx_info, ts_info)]
    assert fields[0] == fields[1] == ["    scores: NDArray[np.float32]", "    probs: NDArray[np.float32]"]
    assert "scores (OUTPUT__0 in the config): TYPE_FP32 [-1, 2]" in render_stubs([ts_info], "x")


def test_unnamed_outputs_record_nothing(tmp_path: Path) -> None:
    build([ModelRequest("m", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("torchscript",))], tmp_path)
    assert not parse_config((tmp_path / "m_torchscript/config.pbtxt").read_text()).parameters


def _config(**parameters: str) -> dict[str, object]:
    return {"name": "m", "backend": "pytorch", "max_batch_size": 4,
            "input": [{"name": "INPUT__0", "data_type": "TYPE_FP32", "dims": ["3"]},
                      {"name": "INPUT__1", "data_type": "TYPE_INT64", "dims": ["-1"]}],
            "output": [{"name": "OUTPUT__0", "data_type": "TYPE_FP32", "dims": ["2"]},
                       {"name": "OUTPUT__1", "data_type": "TYPE_FP32", "dims": ["2"]}],
            "parameters": {k.replace("_", ".", 1): {"string_value": v} for k, v in parameters.items()}}


def test_inputs_and_outputs_by_the_models_own_names() -> None:
    info = ModelInfo.from_config(_config(tritonize_input_names="features,ids", tritonize_output_names="a,b"))
    features, ids = np.zeros((2, 3), np.float32), np.zeros((2, 5), np.int64)
    for given in ({"features": features, "ids": ids}, {"INPUT__0": features, "INPUT__1": ids},
                  {"features": features, "INPUT__1": ids}):
        sent = info.check_inputs(given)
        assert list(sent) == ["INPUT__0", "INPUT__1"] and sent["INPUT__0"] is features and sent["INPUT__1"] is ids
    with pytest.raises(InvalidInputError, match=r"input 'ids' of model 'm': missing; expected ids \(INPUT__1\)"):
        info.check_inputs({"features": features})
    with pytest.raises(InvalidInputError, match="input 'ids' of model 'm': given twice"):
        info.check_inputs({"features": features, "ids": ids, "INPUT__1": ids})
    with pytest.raises(InvalidInputError, match=r"input 'ids' of model 'm': dtype int32"):
        info.check_inputs({"features": features, "ids": ids.astype(np.int32)})
    out = {"OUTPUT__0": features[:, :2], "OUTPUT__1": features[:, 1:]}
    assert list(info.keyed(out)) == ["a", "b"]
    assert info.output_names(["b"]) == ["OUTPUT__1"] and info.output("a").name == "OUTPUT__0"
    plain = ModelInfo.from_config(_config())
    assert plain.keyed(out) is out and [t.key for t in plain.inputs] == ["INPUT__0", "INPUT__1"]


@pytest.mark.parametrize("names", ["a", "a,a", "a,,b", "a,b,c"])
def test_a_recorded_name_list_that_does_not_fit_is_one_clear_error(names: str) -> None:
    with pytest.raises(TritonClientError, match=r"parameter tritonize.output_names is .*expected 2 distinct"):
        ModelInfo.from_config(_config(tritonize_output_names=names))


def test_the_keys_are_tritonizes_not_a_backend_parameter() -> None:
    with pytest.raises(SpecError, match=r"parameters\.tritonize\.output_names"):
        ModelRequest("m", f"{TOY}:mlp", formats=("torchscript",), format_options={
            "torchscript": FormatOptions(parameters={"tritonize.output_names": "x"})})
