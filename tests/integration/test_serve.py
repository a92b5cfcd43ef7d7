"""`tritonize serve`, LocalTriton's lifecycle (readiness, failures, clean shutdown) and `tritonize quickstart`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tritonize.client import TritonClient
from tritonize.deploy.local import LocalTriton, ServerStartError, free_port, http_json

CLI = [sys.executable, "-c", "from tritonize.cli import main; main()"]


def _stub_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "triton_python_backend_stub"], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def test_local_triton_stops_its_stub_processes(toy_repo: Path) -> None:
    before = _stub_pids()
    with LocalTriton(toy_repo) as server:
        assert {s.state for s in server.models()} == {"READY"}
        assert len(_stub_pids() - before) == 4  # two instances of each of two models
    time.sleep(0.5)
    assert _stub_pids() - before == set()


def test_strict_start_fails_with_tritons_reason(toy_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(toy_repo), str(repo)], check=True)
    config = repo / "toy_onnx" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "features"', 'name: "pixels"'))
    with pytest.raises(ServerStartError, match=r"toy_onnx.*input 'pixels' is not in the ONNX graph; its inputs "
                                               r"are: features"):
        LocalTriton(repo).start()


def test_serve_command_until_ctrl_c(toy_repo: Path, tmp_path: Path) -> None:
    ports = [str(free_port()) for _ in range(3)]
    proc = subprocess.Popen([*CLI, "serve", str(toy_repo), "--http-port", ports[0], "--grpc-port", ports[1],
                             "--metrics-port", ports[2], "--log-file", str(tmp_path / "server.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while http_json(f"http://127.0.0.1:{ports[0]}", "/v2/health/ready") is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"gRPC 127.0.0.1:{ports[1]}" in out
    assert "toy_onnx" in out and "READY" in out and "toy_torchscript" in out
    assert "stopped" in err
    assert http_json(f"http://127.0.0.1:{ports[0]}", "/v2/health/live") is None


def test_serve_docker_without_an_engine_says_why(toy_repo: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = subprocess.run([*CLI, "serve", str(toy_repo), "--docker", "nvcr.io/nvidia/tritonserver:24.10-py3"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in proc.stderr
    assert "leaving out --docker" in proc.stderr


def test_quickstart_from_a_clean_directory(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = subprocess.run([*CLI, "quickstart"], cwd=tmp_path, capture_output=True, text=True, timeout=420)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    for model in ("digits_onnx", "digits_torchscript", "sequence_onnx", "sequence_torchscript",
                  # strings and PNG bytes through the preprocessing ensembles
                  "reviews_onnx_ensemble", "reviews_torchscript_ensemble", "glyphs_onnx_ensemble",
                  "glyphs_torchscript_ensemble"):
        line = next(line for line in proc.stdout.splitlines() if line.startswith(model + " "))
        assert line.split()[3] == "100.0%"  # Triton and eager agree on every sample
    for model in ("digits_onnx_int8", "sequence_onnx_int8"):
        line = next(line for line in proc.stdout.splitlines() if line.startswith(model + " "))
        assert float(line.split()[3].rstrip("%")) >= 99.0  # INT8: within the accuracy budget
    assert "[4/4] Stopping tritonserver" in proc.stderr
    assert (tmp_path / "model_repository" / "digits_onnx" / "config.pbtxt").is_file()
    assert took < 300  # a hang guard, not a speed target (the README records the time)
    _example_stubs_type_check_and_serve(tmp_path)


USAGE = """
import numpy as np
from numpy.typing import NDArray
from tritonize.client import TritonClient
from triton_models import DigitsOnnx, SequenceTorchscript, SequenceTorchscriptOutputs


def classify(client: TritonClient, images: NDArray[np.float64]) -> int:
    digits = DigitsOnnx(client)
    out = digits.infer(image=images.astype(np.float32))
    return int(out["logits"].argmax())


def sequence(client: TritonClient) -> SequenceTorchscriptOutputs:
    ids = np.ones((1, 5), np.int64)
    return SequenceTorchscript(client).infer(ids=ids, mask=ids)
"""


def _example_stubs_type_check_and_serve(work: Path) -> None:
    """Typed stubs for the example repository: mypy --strict accepts them (and a service using them), and
    they call the live server."""
    stubs = work / "triton_models.py"
    subprocess.run([*CLI, "client-stubs", str(work / "model_repository"), "-o", str(stubs)], check=True,
                   capture_output=True)
    (work / "service.py").write_text(USAGE)
    site = work / "site" / "tritonize"  # tritonize.client without the editable install's import hook
    site.mkdir(parents=True)
    (site / "client").symlink_to(Path(__file__).parents[2] / "client", target_is_directory=True)
    check = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
                            "--python-executable", sys.executable, "--cache-dir", str(work / ".mypy"),
                            "triton_models.py", "service.py"], cwd=work, capture_output=True, text=True,
                           env={**os.environ, "MYPYPATH": str(work / "site")}, timeout=180)
    assert check.returncode == 0, check.stdout
    sys.path.insert(0, str(work))
    try:
        import service  # type: ignore[import-not-found]

        with LocalTriton(work / "model_repository") as server, TritonClient(server.grpc_url) as client:
            assert 0 <= service.classify(client, np.zeros((1, 1, 8, 8))) < 10
            assert service.sequence(client)["logits"].shape == (1, 3)  # the model's own name, in TorchScript too
    finally:
        sys.path.remove(str(work))
        for name in ("service", "triton_models"):
            sys.modules.pop(name, None)
