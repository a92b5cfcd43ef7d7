"""Backend and platform as core's AutoCompleteBackendFields resolves them, and what is wrong with them.

The tables here hold Triton's facts about the backends tritonize does not generate (tensorrt, tensorflow,
python, ...); the backends in the format registry (``tritonize.core.formats.BACKENDS``) are added when a
table is read, so a newly registered backend is known to ``check`` without an edit here.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as pb

from .. import formats
from .codes import Hit

_TRITON_PLATFORM_BACKEND = {
    "torch_aoti": "pytorch", "tensorrt_plan": "tensorrt", "tensorflow_savedmodel": "tensorflow",
    "tensorflow_graphdef": "tensorflow",
}
_TRITON_BACKEND_PLATFORM = {"tensorrt": "tensorrt_plan"}
_TRITON_BACKENDS = ("tensorrt", "tensorflow", "python", "openvino", "dali", "fil", "vllm", "tensorrtllm",
                    "identity")
_BACKEND_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "torch": "pytorch", "libtorch": "pytorch",
                    "torchscript": "pytorch", "trt": "tensorrt", "tf": "tensorflow"}
# default model file per platform (or backend, when it has no platform)
_TRITON_DEFAULT_FILE = {
    "torch_aoti": "model.pt2", "tensorrt_plan": "model.plan", "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef", "python": "model.py", "openvino": "model.xml",
}
# (backend, platform) in the order core probes the first version directory when neither is configured
_AUTODETECT = (("tensorflow", "tensorflow_savedmodel"), ("tensorflow", "tensorflow_graphdef"),
               ("tensorrt", "tensorrt_plan"), ("onnxruntime", "onnxruntime_onnx"), ("openvino", ""),
               ("pytorch", "pytorch_libtorch"), ("pytorch", "torch_aoti"), ("python", ""))


def platform_backends() -> dict[str, str]:
    """The backend each platform means (Triton's own platforms and the registry's)."""
    return {**{b.platform: b.name for b in formats.BACKENDS.values()}, **_TRITON_PLATFORM_BACKEND}


def _backend_platform() -> dict[str, str]:
    return {**{b.name: b.platform for b in formats.BACKENDS.values()}, **_TRITON_BACKEND_PLATFORM}


def _known_backends() -> list[str]:
    return [*formats.BACKENDS, *_TRITON_BACKENDS]


def default_file(platform_or_backend: str) -> str:
    """The model file Triton looks for in a version directory ("" when it has no default)."""
    registered = {b.platform: b.default_filename for b in formats.BACKENDS.values()}
    return {**registered, **_TRITON_DEFAULT_FILE}.get(platform_or_backend, "")


def resolve_backend(cfg: pb.ModelConfig, path: Path) -> tuple[str, str, list[Hit]]:
    """(backend, platform) as core's AutoCompleteBackendFields fills them in, and what is wrong with them."""
    backend, platform = cfg.backend, cfg.platform
    if platform == "ensemble":
        return backend, platform, []  # a backend on an ensemble is an ensemble-structure finding
    if not backend and not platform:
        return _autodetect_backend(cfg, path)
    platform_backend, backend_platform = platform_backends(), _backend_platform()
    hits = [hit for hit in [_unknown_backend(backend)] if hit]
    expected = platform_backend.get(platform)
    if platform and backend in platform_backend.values() and expected != backend:
        # core accepts any platform beside a custom backend, but not beside a built-in one
        hits.append(("backend-platform-mismatch", (
            f"backend '{backend}' and platform '{platform}' disagree; backend '{backend}' takes platform "
            f"'{backend_platform.get(backend, backend)}' (or leave platform out)")))
        platform = backend_platform.get(backend, "")  # check the rest as the backend's own platform
    elif platform and not backend and expected is None:
        close = difflib.get_close_matches(platform, [*platform_backend, "ensemble"], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        hits.append(("platform-unknown", f"platform '{platform}' is not a Triton platform and no backend "
                                         f"is set{hint}"))
    backend = backend or expected or ""
    return backend, platform or backend_platform.get(backend, ""), hits


def _unknown_backend(backend: str) -> Hit | None:
    known = _known_backends()
    if not backend or backend in known:
        return None
    matches = difflib.get_close_matches(backend.lower(), known, n=1, cutoff=0.7)
    close = _BACKEND_ALIASES.get(backend.lower()) or (matches[0] if matches else None)
    if close:
        return "backend-typo", (f"backend '{backend}' is not a Triton backend name (names are "
                                f"case-sensitive); did you mean '{close}'?")
    return "backend-unknown", (f"backend '{backend}' is not a backend Triton ships: it loads only if the "
                               f"backend directory has {backend}/libtriton_{backend}.so or "
                               f"{backend}/model.py")


def _autodetect_backend(cfg: pb.ModelConfig, path: Path) -> tuple[str, str, list[Hit]]:
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())  # core looks into the first one only
    named = cfg.default_model_filename
    for backend, platform in _AUTODETECT:
        filename = default_file(platform or backend)
        if named == filename or (not named and subdirs and (subdirs[0] / filename).exists()):
            return backend, platform, []
    where = f"'{subdirs[0].name}/'" if subdirs else "any version directory"
    return "", "", [("backend-missing", f"neither 'backend' nor 'platform' is set and {where} holds no "
                     "known model file (model.onnx, model.pt, model.plan, model.py, ...); set 'backend'")]
