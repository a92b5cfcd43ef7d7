"""Typed config spec → Jinja2 → config.pbtxt: golden files, parse-back round trips, and refused specs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritonize.generator.config_spec import (
    DynamicBatching,
    InstanceGroup,
    ModelConfigSpec,
    Optimization,
    QueuePolicy,
    SequenceBatching,
    TensorConfig,
    TensorRTAccelerator,
    VersionPolicy,
    Warmup,
    WarmupInput,
)
from tritonize.generator.errors import SpecError, TemplateError
from tritonize.generator.render import parse_config, render_config

GOLDEN = Path(__file__).parent.parent / "golden"
IMAGE = TensorConfig("image", "TYPE_FP32", (1, 8, 8))
LOGITS = TensorConfig("logits", "TYPE_FP32", (10,), label_filename="labels.txt")


def onnx_spec(**overrides: object) -> ModelConfigSpec:
    fields: dict[str, object] = dict(name="digits_onnx", backend="onnxruntime", max_batch_size=64,
                                     inputs=(IMAGE,), outputs=(LOGITS,))
    fields.update(overrides)
    return ModelConfigSpec(**fields)  # type: ignore[arg-type]


GOLDEN_SPECS = {
    "onnx_basic": onnx_spec(parameters={"intra_op_thread_count": "2", "inter_op_thread_count": "1"}),
    "torchscript": ModelConfigSpec(
        name="seq_torchscript", backend="pytorch", max_batch_size=32,
        inputs=(TensorConfig("ids", "TYPE_INT64", (-1,)), TensorConfig("mask", "TYPE_INT64", (-1,))),
        outputs=(TensorConfig("OUTPUT__0", "TYPE_FP32", (3,)), TensorConfig("OUTPUT__1", "TYPE_FP32", (-1, 64))),
        parameters={"INFERENCE_MODE": "true", "DISABLE_OPTIMIZED_EXECUTION": "false"},
        version_policy=VersionPolicy("latest", num_versions=2)),
    "gpu_instances": onnx_spec(instance_group=(InstanceGroup("gpu", 2, (0, 1)), InstanceGroup("cpu", 1)),
                               version_policy=VersionPolicy("specific", versions=(1, 3))),
    "dynamic_batching_queue_policy": onnx_spec(dynamic_batching=DynamicBatching(
        preferred_batch_size=(16, 32), max_queue_delay_microseconds=500, preserve_ordering=True,
        priority_levels=2, default_priority_level=2,
        default_queue_policy=QueuePolicy("DELAY", 100_000, True, 256),
        priority_queue_policy={1: QueuePolicy("REJECT", 5_000, False, 16)})),
    "warmup": onnx_spec(warmup=(
        Warmup("batch_1", 1, (WarmupInput("image", "TYPE_FP32", (1, 8, 8), "image"),)),
        Warmup("batch_64", 64, (WarmupInput("image", "TYPE_FP32", (1, 8, 8), "image"),), count=2))),
    "tensorrt": onnx_spec(optimization=Optimization(
        tensorrt=TensorRTAccelerator("FP16", 1 << 30, True, "/models/trt_cache"), graph_level=1),
        instance_group=(InstanceGroup("gpu", 1),), response_cache=True),
    "openvino_scalar_reshape": ModelConfigSpec(
        name="scalar_onnx", backend="onnxruntime", max_batch_size=0,
        inputs=(TensorConfig("x", "TYPE_FP32", (1,), reshape=()),), outputs=(TensorConfig("y", "TYPE_FP32", (1,)),),
        optimization=Optimization(openvino=True), default_model_filename="scalar.onnx"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_golden(name: str) -> None:
    text = render_config(GOLDEN_SPECS[name])
    path = GOLDEN / f"{name}.pbtxt"
    if os.environ.get("TRITONIZE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert parse_config(text) == GOLDEN_SPECS[name].to_proto()


def test_golden_files_cover_the_required_cases() -> None:
    texts = {p.stem: p.read_text() for p in GOLDEN.glob("*.pbtxt")}
    assert 'backend: "onnxruntime"' in texts["onnx_basic"]
    assert 'backend: "pytorch"' in texts["torchscript"] and "OUTPUT__0" in texts["torchscript"]
    assert "KIND_GPU" in texts["gpu_instances"] and "gpus: [ 0, 1 ]" in texts["gpu_instances"]
    assert "default_queue_policy" in texts["dynamic_batching_queue_policy"]
    assert "model_warmup" in texts["warmup"] and "input_data_file" in texts["warmup"]
    assert 'name: "tensorrt"' in texts["tensorrt"] and 'value: "FP16"' in texts["tensorrt"]


# Any spec the dataclasses accept renders to text that parses back to exactly that spec.
_dims = st.lists(st.one_of(st.just(-1), st.integers(1, 512)), min_size=1, max_size=4).map(tuple)
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
_policy = st.builds(QueuePolicy, st.sampled_from(["REJECT", "DELAY"]), st.integers(0, 10**6), st.booleans(),
                    st.integers(0, 1000))


@st.composite
def specs(draw: st.DrawFn) -> ModelConfigSpec:
    backend = draw(st.sampled_from(["onnxruntime", "pytorch"]))
    max_batch = draw(st.integers(0, 256))
    in_names = draw(st.lists(_names, min_size=1, max_size=3, unique=True))
    types = st.sampled_from(["TYPE_FP32", "TYPE_FP16", "TYPE_INT64", "TYPE_INT32", "TYPE_BOOL", "TYPE_UINT8"])
    inputs = tuple(TensorConfig(n, draw(types), draw(_dims), optional=draw(st.booleans())) for n in in_names)
    n_out = draw(st.integers(1, 3))
    out_names = [f"OUTPUT__{i}" for i in range(n_out)] if backend == "pytorch" else [f"out_{i}" for i in range(n_out)]
    outputs = tuple(TensorConfig(n, draw(types), draw(_dims)) for n in out_names)
    batching = None
    if max_batch and draw(st.booleans()):
        levels = draw(st.integers(0, 3))
        batching = DynamicBatching(
            preferred_batch_size=tuple(draw(st.lists(st.integers(1, max_batch), max_size=3, unique=True))),
            max_queue_delay_microseconds=draw(st.integers(0, 10**5)), preserve_ordering=draw(st.booleans()),
            priority_levels=levels, default_priority_level=levels and draw(st.integers(1, levels)),
            default_queue_policy=draw(st.none() | _policy),
            priority_queue_policy=draw(st.dictionaries(st.integers(1, levels), _policy)) if levels else {},
        )
    groups = tuple(draw(st.lists(st.builds(InstanceGroup, st.sampled_from(["cpu", "auto"]), st.integers(1, 4)),
                                 max_size=2)))
    optimization = Optimization()
    if backend == "onnxruntime":
        trt = draw(st.none() | st.builds(TensorRTAccelerator, st.sampled_from(["FP32", "FP16", "BF16"]),
                                         st.none() | st.integers(1, 1 << 32), st.booleans()))
        optimization = Optimization(tensorrt=trt, openvino=draw(st.booleans()),
                                    graph_level=draw(st.none() | st.sampled_from([-1, 1])))
    return ModelConfigSpec(
        name=draw(_names), backend=backend, max_batch_size=max_batch, inputs=inputs, outputs=outputs,
        dynamic_batching=batching, instance_group=groups, response_cache=draw(st.booleans()),
        version_policy=draw(st.none() | st.sampled_from([VersionPolicy("all"), VersionPolicy("latest", 3)])),
        optimization=optimization,
    )


@settings(max_examples=150, deadline=None)
@given(specs())
def test_every_spec_round_trips(spec: ModelConfigSpec) -> None:
    assert parse_config(render_config(spec)) == spec.to_proto()


def test_user_template_override(tmp_path: Path) -> None:
    original = (Path(__file__).parents[2] / "generator/templates/config.pbtxt.j2").read_text()
    (tmp_path / "config.pbtxt.j2").write_text(original.replace("# Generated", "# Owned by the ML platform team\n# Gen"))
    assert render_config(GOLDEN_SPECS["onnx_basic"], tmp_path).startswith("# Owned by the ML platform team\n")


def test_template_bug_fails_loudly(tmp_path: Path) -> None:
    original = (Path(__file__).parents[2] / "generator/templates/config.pbtxt.j2").read_text()
    (tmp_path / "config.pbtxt.j2").write_text(original.replace("max_batch_size: {{ spec.max_batch_size }}",
                                                               "max_batch_size: 8"))
    with pytest.raises(TemplateError, match=r"differs from its spec: .*max_batch_size"):
        render_config(GOLDEN_SPECS["onnx_basic"], tmp_path)
    (tmp_path / "config.pbtxt.j2").write_text(original.replace("{{ spec.backend | pbstr }}", "{{ spec.backend }}"))
    with pytest.raises(TemplateError, match="does not parse"):
        render_config(GOLDEN_SPECS["onnx_basic"], tmp_path)


@pytest.mark.parametrize(("build", "field"), [
    (lambda: onnx_spec(dynamic_batching=DynamicBatching(), sequence_batching=SequenceBatching()), "dynamic_batching"),
    (lambda: onnx_spec(max_batch_size=0, dynamic_batching=DynamicBatching()), "dynamic_batching"),
    (lambda: onnx_spec(dynamic_batching=DynamicBatching(preferred_batch_size=(128,))), "preferred_batch_size"),
    (lambda: DynamicBatching(priority_levels=2, default_priority_level=3), "default_priority_level"),
    (lambda: DynamicBatching(priority_levels=2, default_priority_level=1, priority_queue_policy={5: QueuePolicy()}),
     "priority_queue_policy"),
    (lambda: QueuePolicy("DROP"), "timeout_action"),
    (lambda: onnx_spec(max_batch_size=-1), "max_batch_size"),
    (lambda: InstanceGroup("gpu", 0), "count"),
    (lambda: InstanceGroup("tpu"), "kind"),
    (lambda: InstanceGroup("cpu", 1, (0,)), "gpus"),
    (lambda: TensorConfig("x", "TYPE_FLOAT", (1,)), "data_type"),
    (lambda: TensorConfig("x", "TYPE_FP32", ()), "dims"),
    (lambda: TensorConfig("x", "TYPE_FP32", (0, 3)), "dims"),
    (lambda: TensorConfig("x", "TYPE_FP32", (-2,)), "dims"),
    (lambda: onnx_spec(name="a/b"), "name"),
    (lambda: onnx_spec(name=".."), "name"),
    (lambda: onnx_spec(name='dig"its'), "name"),
    (lambda: onnx_spec(name="my model"), "name"),
    (lambda: TensorConfig("in put", "TYPE_FP32", (1,)), "name"),
    (lambda: onnx_spec(backend="tensorflow"), "backend"),
    (lambda: onnx_spec(inputs=(IMAGE, IMAGE)), "inputs/outputs"),
    (lambda: ModelConfigSpec("m", "pytorch", 4, (IMAGE,), (LOGITS,)), "outputs[0].name"),
    (lambda: onnx_spec(optimization=Optimization(cuda_graphs=True)), "optimization.cuda_graphs"),
    (lambda: ModelConfigSpec("m", "pytorch", 4, (IMAGE,), (TensorConfig("OUTPUT__0", "TYPE_FP32", (1,)),),
                             optimization=Optimization(openvino=True)), "optimization"),
    (lambda: onnx_spec(parameters={"intra_op_threads": "2"}), "parameters.intra_op_threads"),
    (lambda: onnx_spec(parameters={"intra_op_thread_count": "two"}), "parameters.intra_op_thread_count"),
    (lambda: TensorRTAccelerator("INT4"), "precision_mode"),
    (lambda: TensorRTAccelerator("FP16", int8_calibration_table_name="cal.flatbuffers"), "int8_calibration"),
    (lambda: VersionPolicy("specific"), "versions"),
    (lambda: onnx_spec(warmup=(Warmup("w", 65, ()),)), "batch_size"),
])
def test_invalid_specs_are_refused_with_the_field_named(build: object, field: str) -> None:
    with pytest.raises(SpecError) as info:
        build()  # type: ignore[operator]
    assert field in info.value.field
    assert "\n" not in str(info.value) and "expected" in str(info.value)
