"""Asset text (deterministic YAML/JSON) and the atomic write of an asset folder: staged complete in a temporary
directory beside it, then renamed into place; an existing folder is replaced only with ``force``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tritonize.core.errors import UsageError
from tritonize.core.log import logger
from tritonize.core.staging import PREFIX

_log = logger(__name__)


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (commands, rule expressions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def to_yaml(*documents: Any) -> str:
    """The documents in insertion order (the order the code builds them in: same input, same bytes)."""
    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
                        for d in documents)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_folder(out: Path, files: Mapping[str, str], force: bool = False) -> list[Path]:
    """Write ``files`` (relative path -> text) as the folder ``out``, atomically; returns the paths written."""
    out = out.absolute()
    if out.exists() and not force:
        raise UsageError(f"{out} exists: pass --force to replace it (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=PREFIX + "deploy-", dir=out.parent))
    old = None
    try:
        for rel, text in sorted(files.items()):
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(stage, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=PREFIX + "replaced-", dir=out.parent))
            os.rename(out, old / out.name)
        os.rename(stage, out)
    except BaseException:
        if old is not None and not out.exists():
            os.rename(old / out.name, out)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _log.debug(f"wrote {len(files)} files into {out}")
    return [out / rel for rel in sorted(files)]
