"""Serving arguments that need no server: the Docker run arguments, and the GPU → CPU config variant."""

from __future__ import annotations

from pathlib import Path

from tritonize.deploy.docker import DEFAULT_IMAGE, run_kwargs
from tritonize.deploy.local import LocalTriton, make_backend_dir
from tritonize.generator.build import build, cpu_variant
from tritonize.generator.config_spec import (
    InstanceGroup,
    ModelConfigSpec,
    Optimization,
    TensorConfig,
    TensorRTAccelerator,
)
from tritonize.generator.render import parse_config
from tritonize.generator.request import ModelRequest


def test_docker_run_arguments(tmp_path: Path) -> None:
    kwargs = run_kwargs(tmp_path, DEFAULT_IMAGE, http_port=9000, model_control_mode="explicit", load_models=("a",))
    assert kwargs["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert kwargs["volumes"] == {str(tmp_path.resolve()): {"bind": "/models", "mode": "ro"}}
    assert kwargs["ports"]["8000/tcp"] == ("127.0.0.1", 9000)  # loopback unless --host says otherwise (issue 10)
    assert [r["Capabilities"] for r in kwargs["device_requests"]] == [[["gpu"]]]
    assert kwargs["device_requests"][0]["Count"] == -1
    assert kwargs["command"][:3] == ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit"]
    assert "--load-model=a" in kwargs["command"]
    cpu = run_kwargs(tmp_path, DEFAULT_IMAGE, gpus=False, config_name="cpu")
    assert cpu["device_requests"] == [] and "--model-config-name=cpu" in cpu["command"]


def test_cpu_variant_only_changes_the_instance_kind_and_gpu_accelerators() -> None:
    spec = ModelConfigSpec("m_onnx", "onnxruntime", 8, (TensorConfig("x", "TYPE_FP32", (4,)),),
                           (TensorConfig("y", "TYPE_FP32", (3,)),),
                           instance_group=(InstanceGroup("gpu", 2, (0, 1)), InstanceGroup("cpu", 1)),
                           optimization=Optimization(tensorrt=TensorRTAccelerator("FP16"), graph_level=1))
    cpu = cpu_variant(spec)
    assert cpu is not None
    assert [(g.kind, g.count, g.gpus) for g in cpu.instance_group] == [("KIND_CPU", 2, ()), ("KIND_CPU", 1, ())]
    assert cpu.optimization == Optimization(graph_level=1)
    assert cpu.inputs == spec.inputs and cpu.outputs == spec.outputs
    assert cpu_variant(ModelConfigSpec("m", "onnxruntime", 8, spec.inputs, spec.outputs)) is None


def test_gpu_models_get_a_cpu_variant_file(tmp_path: Path) -> None:
    build([ModelRequest("g", "toy_models:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("gpu", 1),)),
           ModelRequest("c", "toy_models:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("cpu", 1),))], tmp_path)
    assert parse_config((tmp_path / "g_onnx/config.pbtxt").read_text()).instance_group[0].kind == 1  # GPU
    assert parse_config((tmp_path / "g_onnx/configs/cpu.pbtxt").read_text()).instance_group[0].kind == 2  # CPU
    assert not (tmp_path / "c_onnx/configs").exists()


def test_local_command_and_backend_directory(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    server = LocalTriton(tmp_path / "repo", http_port=1, grpc_port=2, metrics_port=3, config_name="cpu")
    cmd = server.command(tmp_path / "b")
    assert "--model-config-name=cpu" in cmd and "--http-port=1" in cmd and "--exit-on-error=true" in cmd
    backends = make_backend_dir(Path(cmd[0]).parents[1], tmp_path / "b")
    for name in ("onnxruntime", "pytorch"):
        assert {p.name for p in (backends / name).iterdir()} == {
            "model.py", "triton_python_backend_stub", "triton_python_backend_utils.py"}
    assert (backends / "python").is_symlink()
