"""Render ``ModelConfigSpec`` to ``config.pbtxt`` with Jinja2, then prove the text says what the spec says.

Templates live in ``templates/`` (``config.pbtxt.j2`` plus ``_macros.j2``); a user's template directory,
when given, is searched first, so any file can be overridden. Every template (built-in or the user's) runs in
Jinja's ``ImmutableSandboxedEnvironment``: no dunder attributes, no calling unsafe callables, no mutating the spec;
an attempt raises ``TemplateError``. Every render is parsed back with
``model_config_pb2`` and compared with ``spec.to_proto()``: a template bug raises ``TemplateError``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from .config_spec import ModelConfigSpec
from .errors import TemplateError

TEMPLATE = "config.pbtxt.j2"


def pbstr(value: object) -> str:
    """A protobuf text-format string literal."""
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 128:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def _environment(template_dir: Path | None) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("tritonize.generator", "templates")]
    if template_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(template_dir)))
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pbstr"] = pbstr
    env.filters["pbbool"] = lambda v: "true" if v else "false"
    return env


def parse_config(text: str, source: str = "config.pbtxt") -> Any:
    """Parse config.pbtxt text into a ModelConfig message."""
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise TemplateError(f"{source}: does not parse as a ModelConfig: {exc}") from exc


def render_config(spec: ModelConfigSpec, template_dir: Path | None = None) -> str:
    """The config.pbtxt text for ``spec``, verified against ``spec.to_proto()``."""
    try:
        text = _environment(template_dir).get_template(TEMPLATE).render(spec=spec).rstrip() + "\n"
    except Exception as exc:  # a template's own error (SecurityError, UndefinedError, a TypeError...): one line
        what = " ".join(str(exc).split()) or type(exc).__name__
        raise TemplateError(f"template {TEMPLATE} ({template_dir or 'built-in'}): {what}") from exc
    parsed = parse_config(text, f"rendered config of {spec.name}")
    expected = spec.to_proto()
    if parsed != expected:
        diff = difflib.unified_diff(
            text_format.MessageToString(expected).splitlines(),
            text_format.MessageToString(parsed).splitlines(),
            "spec", "rendered", lineterm="", n=0,
        )
        changes = "; ".join(line.strip() for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        raise TemplateError(f"rendered config of {spec.name} differs from its spec: {changes}")
    return text
