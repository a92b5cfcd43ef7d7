"""Local serving of an ONNX repository needs neither torch nor the generator package.

The repository is built here (the build side needs torch). A fresh interpreter then blocks ``torch`` and
``tritonize.generator`` (and their submodules) with a meta-path finder, runs ``tritonize serve`` on it (stopped
by Ctrl-C once it has answered), sends one inference through ``tritonize.client.TritonClient`` and compares it
with the eager model's outputs,
computed here and passed as .npy files. The stand-in runs in Triton's python-backend stub, a process the
block cannot reach: there the proof is the server's own answer (the model is READY and answers correctly)
and that no torch library is mapped into the stub processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tritonize.generator.build import build
from tritonize.generator.config_spec import InstanceGroup
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")

CHILD = """
import importlib.abc, json, os, signal, sys, threading
from pathlib import Path

BLOCKED = ("torch", "tritonize.generator")
ATTEMPTS = []

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())

import numpy as np
from tritonize.cli import main
from tritonize.client import TritonClient
from tritonize.deploy.local import free_port

work = Path(sys.argv[1])
spec = json.loads((work / "spec.json").read_text())

def stub_maps_torch(server_pid):
    '''True when a descendant of the server (the python-backend stubs) has a torch library mapped.'''
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo, found = [server_pid], []
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    stubs = []
    for pid in found:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        if b"triton_python_backend_stub" in cmdline:
            stubs.append((pid, "libtorch" in maps or "/torch/" in maps))
    return stubs

# `tritonize serve` itself, in this (main) thread; a second thread calls it once it answers, then presses Ctrl-C
http, grpc, metrics = (str(free_port()) for _ in range(3))
seen = {}

def call_then_interrupt():
    try:
        with TritonClient(f"127.0.0.1:{grpc}", timeout_s=60) as triton:
            triton.wait_until_ready(spec["model"], timeout_s=60)
            seen["states"] = {m["name"]: m.get("state", "") for m in triton.list_models()}
            seen["stubs"] = stub_maps_torch(os.getpid())
            seen["got"] = triton.model(spec["model"]).infer({spec["input"]: np.load(work / "input.npy")})
    finally:
        os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=call_then_interrupt, daemon=True).start()
try:
    main(["serve", str(work / "repo"), "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics,
          "--log-file", str(work / "tritonserver.log")], standalone_mode=False)
except SystemExit as exit:
    assert not exit.code, exit.code
states, stubs, got = seen["states"], seen["stubs"], seen["got"]

result = {
    "states": states,
    "stubs": stubs,
    "outputs": sorted(got),
    "max_abs": {name: float(np.max(np.abs(got[name] - np.load(work / f"expected_{name}.npy")))) for name in got},
    "torch_imported": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
    "generator_imported": sorted(m for m in sys.modules if m.startswith("tritonize.generator")),
    "attempts": ATTEMPTS,
}
print("RESULT " + json.dumps(result))
"""


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_local_serving_of_onnx_needs_no_torch_nor_generator(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    [built] = build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                                  instance_group=(InstanceGroup("cpu", 1),))], repo)
    assert built.name == "toy_onnx" and built.reference is not None
    config = json.loads((repo / "toy_onnx" / "tritonize-manifest.json").read_text())["versions"]["1"]["export"]
    [input_name] = config["config_inputs"]
    output_names = list(config["config_outputs"])
    batch = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "input.npy", batch)
    expected = built.reference({input_name: batch})  # the eager model, in this process
    assert len(expected) == len(output_names)
    for name, array in zip(output_names, expected):
        np.save(tmp_path / f"expected_{name}.npy", array)
    (tmp_path / "spec.json").write_text(json.dumps({"model": "toy_onnx", "input": input_name}))

    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path)], capture_output=True,
                          text=True, timeout=200)
    log = tmp_path / "tritonserver.log"
    assert proc.returncode == 0, proc.stderr + (log.read_text()[-3000:] if log.is_file() else "")
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))

    assert result["torch_imported"] == [] and result["generator_imported"] == [], result
    assert result["attempts"] == [], f"serving tried to import {result['attempts']}"
    assert result["states"] == {"toy_onnx": "READY"}, result
    assert result["outputs"] == sorted(output_names)
    for name, diff in result["max_abs"].items():
        assert diff <= 1e-4, (name, diff)  # the onnx tolerance against the eager model
    assert result["stubs"], "no python-backend stub process found under the server"
    assert not any(maps_torch for _, maps_torch in result["stubs"]), result["stubs"]
