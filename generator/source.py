"""Load a model source: a ``module:function`` callable, a TorchScript ``.pt`` or an ONNX ``.onnx`` file.

A callable returns an ``nn.Module``, a ``(module, example_inputs)`` pair, or a ``ModelBundle`` that can
also carry dims, output names, a sample generator and class labels. The model is forced into ``eval()``;
one that stays in training mode is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from tritonize.core.datatypes import from_numpy
from tritonize.core.loader import load_callable, summary

from .errors import ModelLoadError, SourceError, SpecError
from .io_spec import DeclaredTensor, SampleFactory, TensorIO, infer_inputs, model_dims, probe_dims
from .preprocess import Preprocess
from .runners import OnnxRunner, Runner, TorchRunner


@dataclass
class ModelBundle:
    """What a model callable may return to say more than a bare ``nn.Module``."""

    model: torch.nn.Module
    example_inputs: Any = None  # Tensor, tuple of Tensors, or dict name -> Tensor; first dim = batch
    input_dims: Mapping[str, list[int]] = field(default_factory=dict)  # config dims, -1 = variable
    output_names: list[str] | None = None
    sample_inputs: Callable[[int, int], Mapping[str, Any]] | None = None  # (batch_size, seed) -> inputs
    labels: list[str] | None = None  # class labels of the first output (Triton's label_filename)
    # () -> (input batch by name, labels): the labeled set the INT8 / pruning accuracy gate evaluates on
    evaluation: Callable[[], tuple[Mapping[str, Any], Any]] | None = None
    # () -> input dicts to calibrate static INT8 quantization (representative, e.g. training data)
    calibration: Callable[[], Iterable[Mapping[str, Any]]] | None = None
    # the preprocessing training used, served in front of the model (generator/preprocess); the spec's wins
    preprocess: Preprocess | None = None


@dataclass
class LoadedModel:
    """A source ready to export and verify."""

    kind: str  # "callable" | "torchscript" | "onnx"
    description: dict[str, Any]  # for the manifest: what was loaded and its digest
    batching: bool
    inputs: list[TensorIO]
    outputs: list[TensorIO]  # named by output_names
    samples: SampleFactory
    reference: Runner
    module: torch.nn.Module | None = None  # eager or scripted module (None for ONNX files)
    onnx_path: Path | None = None
    output_keys: list[str] | None = None  # dict keys when forward returns a dict
    example_batch: dict[str, np.ndarray] = field(default_factory=dict)
    labels: list[str] | None = None
    evaluation: Callable[[], tuple[Mapping[str, Any], Any]] | None = None
    calibration: Callable[[], Iterable[Mapping[str, Any]]] | None = None
    preprocess: Preprocess | None = None


def _bundle(result: Any, ref: str) -> ModelBundle:
    if isinstance(result, ModelBundle):
        return result
    if isinstance(result, torch.nn.Module):
        return ModelBundle(result)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module):
        return ModelBundle(result[0], result[1])
    raise SourceError("source", f"{ref} returned {type(result).__name__}",
                      "an nn.Module, (nn.Module, example_inputs) or a tritonize ModelBundle")


def force_eval(module: torch.nn.Module, ref: str) -> None:
    module.eval()
    still = [f"{name or '<root>'} ({type(m).__name__})" for name, m in module.named_modules() if m.training]
    if still:
        raise ModelLoadError(
            f"source {ref!r}: modules still in training mode after .eval(): {', '.join(still[:5])}; "
            "BatchNorm/Dropout would export with training behaviour. Make train(False) reach every module."
        )


def forward_names(module: torch.nn.Module, count: int | None = None) -> list[str]:
    """Names of the tensor arguments of forward(); INPUT__i when they cannot be known (``*args``)."""
    if isinstance(module, torch.jit.ScriptModule):
        return [a.name for a in cast(Any, module.forward).schema.arguments[1:]]
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return [f"INPUT__{i}" for i in range(count or 0)]
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _examples_as_dict(example: Any, names: list[str]) -> dict[str, np.ndarray] | None:
    if example is None:
        return None
    if isinstance(example, Mapping):
        items = dict(example)
        unknown = sorted(set(items) - set(names))
        if unknown:
            raise SpecError(f"example_inputs.{unknown[0]}", unknown[0], "an argument of forward(): " + ", ".join(names))
    else:
        tensors = list(example) if isinstance(example, (tuple, list)) else [example]
        if len(tensors) > len(names):
            raise SpecError("example_inputs", f"{len(tensors)} tensors", f"at most {len(names)} ({', '.join(names)})")
        items = dict(zip(names, tensors))
    return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in items.items()}


def _infer_outputs(loaded: LoadedModel, output_names: list[str] | None) -> None:
    """Run the reference at two batch sizes and variable dims; dims that change are -1."""
    sizes = (2, 3) if loaded.batching else (1, 1)
    runs = []
    for seed, size in enumerate(sizes):
        batch = loaded.samples.batch(size, seed=1000 + seed, vary_dims=seed > 0)
        try:
            runs.append(loaded.reference(batch))
        except Exception as exc:
            shapes = ", ".join(f"{k} {v.dtype.name}{list(v.shape)}" for k, v in batch.items())
            raise ModelLoadError(f"the model raised on inputs built from its spec ({shapes}): "
                                 f"{summary(exc)}") from exc
    first, second = runs
    names = output_names or loaded.output_keys or [f"OUTPUT__{i}" for i in range(len(first))]
    if len(names) != len(first):
        raise SpecError("outputs", names, f"{len(first)} names, one per model output")
    outputs = []
    for name, a, b in zip(names, first, second):
        for arr, size in zip((a, b), sizes):
            if loaded.batching and (arr.ndim == 0 or arr.shape[0] != size):
                raise SpecError(f"outputs.{name}", f"shape {list(arr.shape)} for a batch of {size}",
                                "the batch dimension first on every output (or max_batch_size = 0)")
        if a.ndim != b.ndim:
            raise SpecError(f"outputs.{name}", f"rank {a.ndim} then {b.ndim}", "the same rank for every input")
        dims = tuple(-1 if x != y else x for x, y in zip(model_dims(a.shape, loaded.batching),
                                                         model_dims(b.shape, loaded.batching)))
        outputs.append(TensorIO(name, from_numpy(a.dtype), dims))
    loaded.outputs = outputs


def load_source(
    source: str,
    *,
    max_batch_size: int,
    declared_inputs: Mapping[str, DeclaredTensor] | None = None,
    output_names: list[str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    example_file: Path | None = None,
) -> LoadedModel:
    """Load ``source`` and work out its IO; every user error names the field and what was expected."""
    declared = dict(declared_inputs or {})
    batching = max_batch_size > 0
    examples_from_file = _load_examples(example_file) if example_file else None
    path = Path(source)
    if path.suffix in (".pt", ".onnx"):
        if not path.is_file():
            raise SourceError("source", source, "an existing .pt or .onnx file")
        digest: dict[str, Any] = {"kind": path.suffix[1:], "path": str(path),
                                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        if path.suffix == ".onnx":
            return _load_onnx(path, digest, batching, declared, examples_from_file, output_names)
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"source {source!r}: torch.jit.load failed: {exc}") from exc
        return _from_module(module, ModelBundle(module, examples_from_file), "torchscript", digest, batching,
                            declared, output_names)
    # sys.exit() in the user's import or call would otherwise end the build with its code and nothing built
    try:
        fn = load_callable(source, "source")
    except SystemExit as exc:
        raise ModelLoadError(f"source {source!r} called sys.exit({exc.code!r}) while imported") from None
    try:
        result = fn(**dict(kwargs or {}))
    except SystemExit as exc:
        raise ModelLoadError(f"source {source!r} called sys.exit({exc.code!r})") from None
    except TypeError as exc:
        raise SourceError("source kwargs", dict(kwargs or {}), f"arguments {source} accepts ({exc})") from None
    except Exception as exc:
        raise ModelLoadError(f"source {source!r} raised {summary(exc)}") from exc
    bundle = _bundle(result, source)
    if bundle.example_inputs is None and examples_from_file is not None:
        bundle.example_inputs = examples_from_file
    _adapt_dict_input(bundle)
    digest = {"kind": "callable", "ref": source, "kwargs": dict(kwargs or {})}
    return _from_module(bundle.model, bundle, "callable", digest, batching, declared, output_names)


def _adapt_dict_input(bundle: ModelBundle) -> None:
    """A model whose forward takes one dict (sentence-transformers) becomes one with tensor arguments."""
    from .adapters import dict_input_adapter, takes_one_dict

    if not takes_one_dict(bundle.model):
        return
    example = bundle.example_inputs
    if isinstance(example, Mapping) and list(example) == forward_names(bundle.model):
        return  # the user's example already is {argument name: dict}
    bundle.model, bundle.example_inputs = dict_input_adapter(bundle.model, example)


def _load_examples(path: Path) -> dict[str, np.ndarray]:
    """``example_inputs``: an .npz of plain arrays by input name (never unpickled)."""
    expected = "an existing .npz file of numeric arrays by input name (no pickled objects)"
    if not Path(path).is_file():
        raise SpecError("example_inputs", str(path), expected)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise SpecError("example_inputs", str(path), f"{expected} (an .npy holds one array, not one by name)")
        with data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SpecError("example_inputs", str(path), f"{expected} ({summary(exc)})") from None


class RememberingRunner(TorchRunner):
    """The eager reference, remembering its outputs by input digest: verification runs every format on the same
    batches and the accuracy gates run the same evaluation set, and the eager model's outputs for an input do not
    change within a build (the module is in eval mode). Copies are returned; at most ``limit`` bytes are kept."""

    def __init__(self, module: torch.nn.Module, input_names: list[str], limit: int = 512 << 20) -> None:
        super().__init__(module, input_names)
        self.memo: dict[bytes, list[np.ndarray]] = {}
        self.free = limit

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        digest = hashlib.blake2b(repr(self.output_keys).encode(), digest_size=20)
        for name in self.input_names:
            arr = np.ascontiguousarray(inputs[name])
            digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            digest.update(arr.tobytes())
        key = digest.digest()
        if key not in self.memo:
            outputs = super().__call__(inputs)
            size = sum(o.nbytes for o in outputs)
            if size > self.free:
                return outputs
            self.memo[key], self.free = outputs, self.free - size
        return [o.copy() for o in self.memo[key]]


def _from_module(module: torch.nn.Module, bundle: ModelBundle, kind: str, digest: dict[str, Any], batching: bool,
                 declared: dict[str, DeclaredTensor], output_names: list[str] | None) -> LoadedModel:
    force_eval(module, digest.get("ref") or digest.get("path", ""))
    for name, dims in bundle.input_dims.items():
        old = declared.get(name, DeclaredTensor(name))
        declared[name] = DeclaredTensor(name, old.dtype, old.dims or tuple(dims), old.range)
    count = len(bundle.example_inputs) if isinstance(bundle.example_inputs, (tuple, list, Mapping)) else 1
    names = forward_names(module, count)
    examples = _examples_as_dict(bundle.example_inputs, names)
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise SpecError(f"inputs.{unknown[0]}", unknown[0], f"an argument of forward({', '.join(names)})")
    given = set(examples or {}) | set(declared)
    used = [n for n in names if n in given] if given else names
    if used != names[: len(used)]:
        if isinstance(module, torch.jit.ScriptModule):
            raise SpecError("inputs", used, f"the leading arguments of forward({', '.join(names)})")
        from .adapters import keyword_adapter

        module = keyword_adapter(module, used)  # passed by keyword, as a Hugging Face model takes them
    if kind == "callable" and examples is not None and all(n in examples for n in used):
        declared.update(probe_dims({n: examples[n] for n in used}, declared, batching, TorchRunner(module, used)))
    inputs = infer_inputs(used, examples, declared, batching)
    samples = SampleFactory(inputs, batching, examples, bundle.sample_inputs)
    runner = RememberingRunner(module, [i.name for i in inputs])
    loaded = LoadedModel(kind, digest, batching, inputs, [], samples, runner, module=module, labels=bundle.labels,
                         evaluation=bundle.evaluation, calibration=bundle.calibration, preprocess=bundle.preprocess)
    if examples is not None:
        loaded.example_batch = {i.name: examples[i.name] for i in inputs}
    # Dict outputs: remember the keys so every runner returns them in one order.
    with torch.inference_mode():
        sample = loaded.samples.batch(2 if batching else 1, seed=999)
        try:
            result = module(*[torch.from_numpy(sample[i.name]) for i in inputs])
        except Exception as exc:
            shapes = ", ".join(f"{k} {v.dtype.name}{list(v.shape)}" for k, v in sample.items())
            raise ModelLoadError(f"the model raised on inputs built from its spec ({shapes}): "
                                 f"{summary(exc)}") from exc
    if isinstance(result, Mapping):
        loaded.output_keys = list(result)
        runner.output_keys = loaded.output_keys
    if not loaded.example_batch:
        loaded.example_batch = sample
    _infer_outputs(loaded, output_names or bundle.output_names)
    return loaded


def _load_onnx(path: Path, digest: dict[str, Any], batching: bool, declared: dict[str, DeclaredTensor],
               examples: dict[str, np.ndarray] | None, output_names: list[str] | None) -> LoadedModel:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise ModelLoadError(f"source {str(path)!r}: onnx.load failed: {exc}") from exc
    initializers = {i.name for i in graph.initializer}
    if output_names and output_names != [o.name for o in graph.output]:
        raise SpecError("outputs", output_names, f"the ONNX graph's names {[o.name for o in graph.output]}")
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
        if batching and (not shape or shape[0] != -1):
            raise SpecError("max_batch_size", "> 0",
                            f"0 for this ONNX file: input {value.name!r} has a fixed first dimension {shape[:1]}")
        dtype = from_numpy(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        decl = declared.get(value.name, DeclaredTensor(value.name))
        graph_dims = tuple(model_dims(tuple(shape), batching))
        if decl.dims is not None and (len(decl.dims) != len(graph_dims) or
                                      any(g != -1 and d != g for d, g in zip(decl.dims, graph_dims))):
            raise SpecError(f"inputs.{value.name}.dims", list(decl.dims),
                            f"dims agreeing with the graph {list(graph_dims)}")
        inputs.append(TensorIO(value.name, dtype, decl.dims or graph_dims, decl.range))
    unknown = sorted(set(declared) - {i.name for i in inputs})
    if unknown:
        names = ", ".join(i.name for i in inputs)
        raise SpecError(f"inputs.{unknown[0]}", unknown[0], f"an input of the graph: {names}")
    runner = OnnxRunner(path, [i.name for i in inputs])
    loaded = LoadedModel("onnx", digest, batching, inputs, [], SampleFactory(inputs, batching, examples), runner,
                         onnx_path=path)
    loaded.example_batch = loaded.samples.batch(2 if batching else 1, seed=999)
    _infer_outputs(loaded, [o.name for o in graph.output])
    return loaded
