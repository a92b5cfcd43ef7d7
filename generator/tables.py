"""The build's tables: parity per artifact output, optimized artifacts against FP32, formats not built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tritonize.core.text import Table

if TYPE_CHECKING:
    from .build import BuiltModel


def _e(x: float) -> str:
    return f"{x:.1e}"


def verification_table(results: Sequence[BuiltModel]) -> Table:
    """One row per artifact output: the parity metrics and the gates."""
    table = Table(("model", "v", "output", "max abs", "max rel", "cosine", "argmax", "determ.", "batch-inv",
                   "action"),
                  formats={"max abs": _e, "max rel": _e, "cosine": "{:.6f}".format, "argmax": "{:.3f}".format,
                           "determ.": lambda d: "yes" if d else "NO", "batch-inv": _e})
    for r in results:
        report = r.report
        if report is None:  # failed or skipped: failure_table
            continue
        for o in report.outputs:
            table.add(r.name, r.version, o.output, o.max_abs, o.max_rel, o.cosine, o.argmax_agreement,
                      report.deterministic, report.batch_invariance_max_abs, r.action)
    return table


def optimization_table(results: Sequence[BuiltModel]) -> Table:
    """INT8 / pruned artifacts against FP32: what judged them (the task's metric) and its numbers, speed, size."""
    pct = "{:.2%}".format
    table = Table(("model", "technique", "judged by", "acc FP32", "acc", "drop", "agree", "speedup b1",
                   "speedup bmax", "size"),
                  formats={"acc FP32": pct, "acc": pct, "drop": "{:+.2f} pt".format, "agree": "{:.1%}".format,
                           "speedup b1": "{:.2f}x".format, "speedup bmax": "{:.2f}x".format,
                           "size": lambda s: f"{s[0]:.2f}x" + ("" if s[1] is None else f" (gzip {s[1]:.2f}x)")})
    for r in results:
        o = r.optimization
        if o is None:
            continue
        speed = [o.speedup[k] for k in sorted(o.speedup, key=int)]
        judged = o.judged_by if o.task == "classification" else f"{o.judged_by}: {o.summary}"
        table.add(r.name, o.technique, judged, o.accuracy_fp32, o.accuracy, o.accuracy_drop_points, o.agreement,
                  speed[0], speed[-1], (o.size_ratio, o.gzip_size_ratio))
    return table


def pipeline_table(results: Sequence[BuiltModel]) -> Table:
    """Preprocessing steps (what proved them equal to the training preprocessing) and the ensembles in front."""
    table = Table(("model", "v", "kind", "action", "proof / steps"), free_last=True)
    for r in results:
        if r.pipeline and "proof" in r.pipeline:
            p = r.pipeline["proof"]
            table.add(r.name, r.version, "step", r.action,
                      f"{p['detail']['compared']} with {p['reference']} on {p['samples']} raw samples")
        elif r.pipeline:
            table.add(r.name, r.version, "ensemble", r.action, " -> ".join(r.pipeline["steps"]))
    return table


def failure_table(results: Sequence[BuiltModel]) -> Table:
    """The formats a build did not write: failed, skipped (their FP32 base failed), or discarded (all or
    nothing), with the error line."""
    table = Table(("model", "format", "v", "action", "error"), free_last=True)
    for r in results:
        if r.error is not None or r.action == "discarded":
            table.add(r.name, r.format, r.version, r.action, str(r.error or "another format failed"))
    return table
