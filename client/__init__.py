"""tritonize.client: the run-time side — a typed client for services that call Triton. No torch here.

    from tritonize.client import TritonClient
    with TritonClient("localhost:8001") as triton:
        out = triton.model("digits_onnx").infer(image=batch)
"""

from .aio import AsyncModelClient, AsyncTritonClient
from .client import ModelClient, TritonClient
from .errors import (
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    RegionInUseError,
    ServerError,
    ServerUnavailableError,
    SpecError,
    TritonClientError,
    TritonizeError,
    UsageError,
)
from .model_info import ModelInfo, TensorInfo
from .retry import RetryPolicy

__all__ = [
    "AsyncModelClient",
    "AsyncTritonClient",
    "InferenceTimeoutError",
    "InvalidInputError",
    "ModelClient",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "RegionInUseError",
    "RetryPolicy",
    "ServerError",
    "ServerUnavailableError",
    "SpecError",
    "TensorInfo",
    "TritonClient",
    "TritonClientError",
    "TritonizeError",
    "UsageError",
]
