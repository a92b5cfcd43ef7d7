"""Offline validators of ``tritonize deploy``'s assets that come from package registries, installed once into a
cache at test time (as tests/debian.py installs Debian's tools):

- prometheus-operator objects (ServiceMonitor, PrometheusRule): npm's ``@kubernetes-models/prometheus-operator``
  6.0.0, whose validators are JSON schemas (compiled by ajv) generated from prometheus-operator's API types, the
  types the operator's CRDs are generated from; run by node. Like the API server, they check types, enums and
  required fields, not unknown fields (a CRD's schema prunes those).
- KServe's InferenceService: no registry we reach ships KServe's CRD (PyPI's kserve sdist and wheel carry the
  Python SDK only; npm and Debian have no KServe package). The best honest check is the SDK's own models
  (``kserve/models/*.py`` of the ``kserve`` 0.21.0 sdist, generated from KServe's OpenAPI spec): every key must be
  a field of its model, with that field's type; Kubernetes types inside (V1ResourceRequirements, ...) are
  checked against kubernetes-validate's strict schemas. It is a check against the SDK's models, not the CRD.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from debian import require

CACHE = Path(os.environ.get("TRITONIZE_VALIDATOR_CACHE", Path.home() / ".cache" / "tritonize" / "validators"))
PROMETHEUS_OPERATOR = "@kubernetes-models/prometheus-operator@6.0.0"
KSERVE = "kserve==0.21.0"
KUBERNETES = "1.33.0"  # the Kubernetes version every core object is validated for (kubernetes-validate, strict)

_NODE_SCRIPT = """
import fs from "node:fs";
const [kind, file] = process.argv.slice(2);
const mod = await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`);
try { new mod[kind](JSON.parse(fs.readFileSync(file, "utf8"))).validate(); }
catch (e) { console.log(e.message); process.exit(1); }
"""


def _locked(name: str) -> Any:
    CACHE.mkdir(parents=True, exist_ok=True)
    lock = (CACHE / f"{name}.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


@cache
def _prometheus_operator() -> Path:
    node = require("node", "nodejs")
    npm = require("npm", "npm")
    folder = CACHE / "npm-prometheus-operator-6.0.0"
    with _locked("npm"):
        if not (folder / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                                   PROMETHEUS_OPERATOR], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"npm install {PROMETHEUS_OPERATOR} failed: {done.stderr[-500:]}")
        (folder / "validate.mjs").write_text(_NODE_SCRIPT)
    assert node
    return folder


def prometheus_operator_problems(obj: dict[str, Any], tmp: Path) -> str | None:
    """What the prometheus-operator validator says of ``obj`` (None: valid)."""
    folder = _prometheus_operator()
    data = tmp / f"{obj['kind']}.json"
    data.write_text(json.dumps(obj))
    done = subprocess.run([shutil.which("node") or "node", str(folder / "validate.mjs"), obj["kind"], str(data)],
                          capture_output=True, text=True, cwd=folder)
    if done.returncode != 0:
        return (done.stdout + done.stderr).strip() or f"node exited {done.returncode}"
    return None


@cache
def _kserve_models() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Class name -> (python attribute -> type, python attribute -> JSON key), read from the SDK's sources."""
    folder = CACHE / "pypi-kserve-0.21.0"
    with _locked("pypi"):
        if not folder.is_dir():
            download = CACHE / "download"
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                   KSERVE, "-d", str(download), "-q"], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"pip download {KSERVE} failed: {done.stderr[-500:]}")
            sdist = next(download.glob("kserve-0.21.0.tar.gz"))
            with tarfile.open(sdist) as tar:
                members = [m for m in tar.getmembers() if "/kserve/models/" in m.name and m.name.endswith(".py")]
                tar.extractall(folder.with_suffix(".tmp"), members=members, filter="data")
            os.rename(folder.with_suffix(".tmp"), folder)
    models = {}
    for source in folder.rglob("v1beta1_*.py"):
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.ClassDef):
                tables = {t.targets[0].id: ast.literal_eval(t.value) for t in node.body
                          if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)
                          and t.targets[0].id in ("openapi_types", "attribute_map")}
                models[node.name] = (tables["openapi_types"], tables["attribute_map"])
    return models


def _kubernetes_problem(kind: str, value: Any) -> str | None:
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    defs = schema_contents(f"kubernetes-json-schema/v{KUBERNETES}-local-strict/_definitions.json", KUBERNETES)
    names = [n for n in defs["$defs"] if n.endswith(f".v1.{kind}")
             and n.startswith(("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta."))]
    if len(names) != 1:
        return f"no single Kubernetes type V1{kind} (found {names})"
    schema = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{names[0]}"}
    registry = Resource.from_contents(defs) @ Registry()
    try:
        jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(value)
    except jsonschema.ValidationError as exc:
        return exc.message
    return None


def kserve_problems(value: Any, kind: str = "V1beta1InferenceService", where: str = "") -> list[str]:
    """Where ``value`` departs from the kserve SDK's model ``kind`` (and the types it names)."""
    if kind.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(value) for p in kserve_problems(item, kind[5:-1], f"{where}[{i}]")]
    if kind.startswith("dict("):
        inner = kind[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        return [p for k, v in value.items() for p in kserve_problems(v, inner, f"{where}.{k}")]
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
    if kind in simple:
        ok = isinstance(value, simple[kind]) and not (kind == "int" and isinstance(value, bool))
        return [] if ok else [f"{where}: expected {kind}, got {value!r}"]
    if kind.startswith("V1beta1"):
        types, keys = _kserve_models()[kind]
        if not isinstance(value, dict):
            return [f"{where}: expected a {kind} mapping"]
        by_key = {keys[a]: types[a] for a in types}
        problems = [f"{where}.{k}: not a field of {kind}" for k in value if k not in by_key]
        return problems + [p for k, v in value.items() if k in by_key
                           for p in kserve_problems(v, by_key[k], f"{where}.{k}")]
    if kind.startswith("V1"):  # a Kubernetes type
        problem = _kubernetes_problem(kind[2:], value)
        return [f"{where}: {problem}"] if problem else []
    return [f"{where}: the SDK names a type this check does not know: {kind}"]
