"""One loader for every ``package.module:function`` / ``path/to/file.py:function`` reference (model sources,
evaluation and calibration sets, the registry's exporters and runners)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, SourceError

FORM = "'package.module:function' or 'path/to/file.py:function'"


def load_callable(ref: str, field: str) -> Callable[..., Any]:
    """The callable ``ref`` names: a bad reference is a ``SourceError`` on ``field``; an import that raises,
    a ``ModelLoadError``."""
    module_name, _, attr = ref.rpartition(":")
    if not module_name or not attr:
        raise SourceError(field, ref, FORM)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise SourceError(field, ref, f"an existing Python file ({path} not found)")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except SourceError:
        raise
    except ModuleNotFoundError as exc:
        raise SourceError(field, ref, f"an importable module ({exc})") from None
    except Exception as exc:
        raise ModelLoadError(f"{field} {ref!r}: importing {module_name} raised {summary(exc)}") from exc
    fn: Callable[..., Any] | None = getattr(module, attr, None)
    if not callable(fn):
        raise SourceError(field, ref, f"a callable named {attr!r} in {module_name}")
    return fn


def summary(exc: BaseException) -> str:
    """``Type: first line of the message`` — how every caught exception is reported in one line."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
