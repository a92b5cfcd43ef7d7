"""Issue 11: ``backend: "python"`` models under the local server run with this environment's packages, as in
the NGC image's single environment. Before, the stub imported the base interpreter's numpy 2, which the 2.51 stub
cannot serve: a BYTES echo crashed the stub ("unpack_from requires a buffer of at least 84215049 bytes") and an
FP32 output came back empty. The models import numpy before anything of Triton's, as users write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tritonize.client import TritonClient
from tritonize.deploy.local import LocalTriton

MODEL = '''import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text").as_numpy()
            pair = np.array([[np.__version__.startswith("1."), 2.5]] * len(text), np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("echo", text),
                                                         pb_utils.Tensor("pair", pair)]))
        return responses
'''

CONFIG = '''backend: "python"
max_batch_size: 4
input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "echo" data_type: TYPE_STRING dims: [ 1 ] }, { name: "pair" data_type: TYPE_FP32 dims: [ 2 ] } ]
'''


def test_a_python_model_serves_bytes_and_floats_with_this_environments_numpy(tmp_path: Path) -> None:
    (tmp_path / "repo" / "echo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "echo" / "config.pbtxt").write_text(CONFIG)
    (tmp_path / "repo" / "echo" / "1" / "model.py").write_text(MODEL)
    assert np.__version__.startswith("1.")  # this environment (the server extra pins numpy<2)
    text = np.array([[b"hello"], ["wörld".encode()], [b""]], dtype=object)
    with LocalTriton(tmp_path / "repo") as server, TritonClient(server.grpc_url) as client:
        out = client.model("echo").infer(text=text)
    assert out["echo"].tolist() == text.tolist()
    assert out["pair"].tolist() == [[1.0, 2.5]] * 3  # numpy 1 in the stub too
