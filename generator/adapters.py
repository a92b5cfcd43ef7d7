"""Library models as modules with one tensor argument per input: a ``forward`` taking one dict (a
sentence-transformers model), or keyword inputs that are not forward's leading arguments.

A dict forward is detected by duck typing, so neither transformers nor sentence-transformers is a dependency:
a forward with one argument, and either a class from ``sentence_transformers`` or an argument annotated as a
dict/Mapping. The wrapper's arguments are the example's tensor keys (non-tensor entries, such as
sentence-transformers' ``modality``, are passed through as constants); it returns the tensors the model added
to the dict, the sentence embedding first.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import torch

from .errors import SpecError

# sentence-transformers' own examples when the model comes without any: two sentences of different lengths
SENTENCES = ["A short sentence.", "A somewhat longer sentence, so the example batch is padded."]
_PRIMARY = "sentence_embedding"  # what SentenceTransformer.encode() returns
_DICT_ANNOTATION = re.compile(r"^(typing\.|collections\.abc\.)?(dict|Dict|Mapping)\b")


def takes_one_dict(module: torch.nn.Module) -> bool:
    if isinstance(module, torch.jit.ScriptModule):
        return False
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) != 1:
        return False
    if type(module).__module__.split(".")[0] == "sentence_transformers":
        return True
    annotation = params[0].annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return bool(_DICT_ANNOTATION.match(text))


def dict_input_adapter(module: torch.nn.Module, example: Any) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The wrapper and its example tensors by argument name; ``example`` None: the model's own preprocessing."""
    if example is None:
        preprocess = getattr(module, "preprocess", None) or getattr(module, "tokenize", None)
        if preprocess is None:
            raise SpecError("example_inputs", None, f"a dict of tensors for {type(module).__name__}.forward(dict)")
        example = preprocess(SENTENCES)
    if not isinstance(example, Mapping):
        raise SpecError("example_inputs", type(example).__name__,
                        f"a dict of tensors, the one argument of {type(module).__name__}.forward()")
    tensors = {k: v for k, v in example.items() if isinstance(v, torch.Tensor)}
    constants = {k: v for k, v in example.items() if k not in tensors}
    bad = [k for k in tensors if not str(k).isidentifier()]
    if bad or not tensors:
        raise SpecError("example_inputs", bad or sorted(example), "tensors keyed by Python identifiers")
    items = "".join(f"{k!r}: {k}, " for k in tensors)
    adapter = with_forward(f"{type(module).__name__}Tensors", module, list(tensors),
                           f"self.added(self.inner({{**self.constants, {items}}}))",
                           added=_added, constants=constants, arguments=list(tensors))
    return adapter, tensors


def keyword_adapter(module: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """``forward(<names>)`` calling ``module(name=name, ...)``: inputs that are not forward's leading arguments
    (a Hugging Face model given input_ids and token_type_ids, without attention_mask)."""
    call = ", ".join(f"{n}={n}" for n in names)
    return with_forward(f"{type(module).__name__}Keywords", module, names, f"self.inner({call})")


def with_forward(cls_name: str, module: torch.nn.Module, args: list[str], expression: str,
                  **attributes: Any) -> torch.nn.Module:
    """A module whose forward(self, <args>) returns ``expression`` (the argument names are the config's);
    ``attributes`` (methods, constants) go on its class, made for this one module."""
    namespace: dict[str, Any] = {}
    exec(f"def forward(self, {', '.join(args)}):\n    return {expression}\n", namespace)
    adapter = type(cls_name, (torch.nn.Module,), {"forward": namespace["forward"], **attributes})()
    adapter.inner = module
    return adapter.train(module.training)


def _added(self: Any, out: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    keys = [k for k, v in out.items() if isinstance(v, torch.Tensor) and k not in self.arguments]
    return {k: out[k] for k in sorted(keys, key=lambda k: k != _PRIMARY)}
