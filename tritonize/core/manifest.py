"""``tritonize-manifest.json``: how each version of a model directory was built (the generator's writer writes
it; ``check`` reads which versions it records, and whether the artifact each records is the one there)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

MANIFEST = "tritonize-manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gaps(model_dir: Path, versions: Iterable[int]) -> list[str]:
    """What the manifest of ``model_dir`` fails to record of ``versions`` as they are on disk (a build killed
    between a version's rename and its manifest write); nothing when the model has no manifest."""
    try:
        recorded = json.loads((model_dir / MANIFEST).read_text()).get("versions")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(recorded, dict):
        return []
    out = []
    for version in versions:
        entry = recorded.get(str(version))
        artifact = entry.get("artifact") if isinstance(entry, dict) else None
        if not isinstance(artifact, dict):
            out.append(f"version {version} is not recorded in {MANIFEST}")
            continue
        path = model_dir / str(artifact.get("file", ""))
        if path.is_file() and artifact.get("sha256") != sha256(path):
            out.append(f"{MANIFEST} records another artifact for version {version} than {artifact['file']}")
    return out
