"""Where a three-format transformer build spends its time, and what removing the waste saved.

    .venv/bin/python benchmarks/build_time.py --before DIR [--after DIR]  # writes benchmarks/results/build_time.*
    .venv/bin/python benchmarks/build_time.py --profile-only  # one cProfile'd build of this checkout, printed

The model: a MiniLM-sized ``transformers.BertModel`` built from a config (hidden 384, 6 layers, 12 heads,
intermediate 1536, vocabulary 30522; random weights, seed 0), wrapped to return ``last_hidden_state`` and
``pooler_output``, inputs ``input_ids``/``attention_mask``/``token_type_ids`` of variable length (dims -1). One
``tritonize.generator.build.build`` of ``onnx``, ``torchscript`` and ``onnx-int8`` (dynamic INT8, the default;
``accuracy_budget = 100`` so the gate's verdict on random weights does not stop the build), max batch 8, into
a temporary repository.

Every build runs in a fresh process. ``--before DIR`` names a copy of the tree without the changes (e.g.
``git archive <commit> | tar -x -C DIR``): the child process points tritonize's editable install at DIR's
folders, so the same interpreter, libraries and machine build both trees; runs alternate (before, after, after,
before, ...) so drift and other processes hit both alike. Each build's phases come from the build's own log
records (the time from one record to the next), and one build of each tree runs under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import itertools
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]
RESULTS = THIS.parent / "results"
FORMATS = ("onnx", "torchscript", "onnx-int8")
FOLDERS = {"tritonize.cli": "tritonize/cli", "tritonize.client": "client", "tritonize.core": "tritonize/core",
           "tritonize.deploy": "deploy", "tritonize.generator": "generator"}
WATCHED = [  # (label, file suffix, function): cumulative time of these in the profile
    ("load (source.load_source)", "source.py", "load_source"),
    ("onnx export (exporters/onnx.py)", "onnx.py", "export_onnx"),
    ("  torch.onnx.export", "onnx/__init__.py", "export"),
    ("  onnx.checker full_check", "checker.py", "check_model"),
    ("torchscript export", "torchscript.py", "export_torchscript"),
    ("onnx-int8 export (quantize)", "onnx_int8.py", "export_onnx_int8"),
    ("  quant_pre_process", "shape_inference.py", "quant_pre_process"),
    ("eager model forward (the reference)", "build_time.py", "forward"),
    ("verify (every format)", "verify.py", "verify"),
    ("judge (accuracy gate + latency)", "judge.py", "judge"),
    ("  compare_latency", "optimize.py", "compare_latency"),
    ("onnxruntime sessions created", "onnxruntime_inference_collection.py", "_create_inference_session"),
    ("tritonize check (staged)", "build.py", "_check_staged"),
    ("commit (copies, renames)", "writer.py", "commit"),
    ("sha256 of model files", "core/manifest.py", "sha256"),
    ("manifest entry", "manifest.py", "manifest_entry"),
]


def minilm() -> Any:
    """The build's source: the wrapped MiniLM-sized BertModel with example inputs of 16 tokens."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torchvision_cpu

    torchvision_cpu.apply()
    import torch
    from transformers import BertConfig, BertModel

    from tritonize.generator.source import ModelBundle

    class Encoder(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                        vocab_size=30522, attn_implementation="eager")
    ids = torch.randint(1000, 30522, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    examples = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return ModelBundle(Encoder(BertModel(config).eval()), examples, input_dims={k: [-1] for k in examples},
                       output_names=["last_hidden_state", "pooler_output"])


# --- the child process: one build ------------------------------------------------------------------------------
def child(root: Path, out: Path, profile: Path | None) -> None:
    if root.resolve() != ROOT:  # point the editable install at the other tree before tritonize is imported
        finder = next(m for n, m in sys.modules.items() if n.startswith("__editable__") and n.endswith("_finder"))
        finder.MAPPING.update({name: str(root / folder) for name, folder in FOLDERS.items()})
        finder.NAMESPACES["tritonize.core"] = [str(root / "tritonize/core")]
    import torch

    from tritonize.generator.build import build
    from tritonize.generator.request import FormatOptions, ModelRequest

    assert Path(sys.modules["tritonize.generator.build"].__file__ or "").is_relative_to(root.resolve())
    records: list[tuple[float, str]] = []

    class Phases(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((time.perf_counter(), record.getMessage()))

    logging.getLogger("tritonize").addHandler(Phases())
    logging.getLogger("tritonize").setLevel(logging.INFO)
    request = ModelRequest("minilm", f"{THIS}:minilm", formats=FORMATS, max_batch_size=8, version=1,
                           format_options={"onnx-int8": FormatOptions(accuracy_budget=100.0)})
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(prefix="tritonize-build-time-") as repo:
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        built = build([request], Path(repo))
        if profiler:
            profiler.disable()
        total = time.perf_counter() - start
        sizes = {b.name: (Path(repo) / b.name / "1").stat().st_size for b in built}
    phases: list[tuple[str, float]] = []
    marks = [(start, "start"), *records, (start + total, "end")]
    for (t0, message), (t1, _) in itertools.pairwise(marks):
        label = message.replace(repo, "<repo>")
        phases.append((label if len(label) <= 80 else label[:77] + "...", t1 - t0))
    if profiler and profile:
        profiler.dump_stats(str(profile))
    out.write_text(json.dumps({"total_s": total, "phases": phases, "torch_threads": torch.get_num_threads(),
                               "models": [b.name for b in built], "sizes": sizes}))


# --- the parent: alternate trees, profile, report --------------------------------------------------------------
def run_child(root: Path, work: Path, tag: str, profile: bool) -> dict[str, Any]:
    out = work / f"{tag}.json"
    stats = work / f"{tag}.prof"
    cmd = [sys.executable, str(THIS), "--child", str(out), "--root", str(root)]
    if profile:
        cmd += ["--profile", str(stats)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=work)
    result = json.loads(out.read_text())
    result["process_s"] = time.perf_counter() - started  # with interpreter start and imports
    if profile:
        result["profile"] = summarize(stats)
    return result


def summarize(stats_file: Path, top: int = 25) -> dict[str, Any]:
    stats = pstats.Stats(str(stats_file))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    watched = {}
    for label, suffix, function in WATCHED:
        hits = [(v[3], v[1]) for (file, _, fn), v in table.items() if file.endswith(suffix) and fn == function]
        watched[label] = {"cum_s": max((h[0] for h in hits), default=0.0), "calls": sum(h[1] for h in hits)}
    by_cum = sorted(table.items(), key=lambda kv: kv[1][3], reverse=True)
    by_tot = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)

    def row(key: tuple[str, int, str], v: Any) -> dict[str, Any]:
        file, line, fn = key
        where = "/".join(Path(file).parts[-2:]) if file != "~" else "builtin"
        return {"function": f"{where}:{line}({fn})", "calls": v[1], "tottime_s": v[2], "cumtime_s": v[3]}

    return {"watched": watched, "by_cumtime": [row(k, v) for k, v in by_cum[:top]],
            "by_tottime": [row(k, v) for k, v in by_tot[:top]]}


def environment() -> dict[str, Any]:
    sys.path.insert(0, str(THIS.parent))
    from machine import environment as env

    return env("-", ("torch", "onnx", "onnxruntime", "onnxscript", "transformers", "numpy"))


def markdown(report: dict[str, Any], notes: str) -> str:
    env = report["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if k not in ("tritonclient", "tritonserver"))
    m = env["machine"]
    lines = [
        "# Build time: a three-format MiniLM-sized BERT build", "",
        f"Generated by `benchmarks/build_time.py` on {env['date']}. {m['cpu']}, {m['cores']} cores ({m['arch']}), "
        f"{m['os']}; {versions}; torch threads in the build: {report['torch_threads']}.", "",
        "One `build()` of `onnx`, `torchscript`, `onnx-int8` (dynamic) of a MiniLM-sized `BertModel` (hidden 384, 6 "
        "layers, 12 heads, vocabulary 30522, random weights; `last_hidden_state` and `pooler_output`; "
        "`input_ids`/`attention_mask`/`token_type_ids` of variable length), max batch 8, each build in a fresh "
        f"process, the two trees alternating ({' '.join(report['order'])}). Wall time of `build()` only (the "
        "process time adds interpreter start and imports). Other processes shared the cores: the spread is the "
        "noise.", "",
        "| tree | builds | median s | min s | max s | process median s |", "|---|---:|---:|---:|---:|---:|",
    ]
    for tree in ("before", "after"):
        runs = report["runs"][tree]
        if not runs:
            continue
        totals = [r["total_s"] for r in runs]
        lines.append(f"| {tree} | {len(runs)} | {statistics.median(totals):.1f} | {min(totals):.1f} | "
                     f"{max(totals):.1f} | {statistics.median(r['process_s'] for r in runs):.1f} |")
    if report["runs"]["before"] and report["runs"]["after"]:
        b = statistics.median(r["total_s"] for r in report["runs"]["before"])
        a = statistics.median(r["total_s"] for r in report["runs"]["after"])
        lines += ["", f"**Saved: {b - a:.1f} s of {b:.1f} s ({(b - a) / b:.0%}).**"]
    for tree, prof in report["profiles"].items():
        lines += ["", f"## Profile ({tree}; cProfile, one build, {prof['total_s']:.1f} s under the profiler)", "",
                  "| where | calls | cumulative s |", "|---|---:|---:|"]
        lines += [f"| {label} | {v['calls']} | {v['cum_s']:.1f} |" for label, v in prof["watched"].items()]
        lines += ["", "Top entries by own time:", "", "| function | calls | own s | cumulative s |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `{r['function']}` | {r['calls']} | {r['tottime_s']:.2f} | {r['cumtime_s']:.2f} |"
                  for r in prof["by_tottime"][:15]]
    lines += ["", "## Phases (median over the builds; from one log record to the next)", "",
              "| phase | " + " | ".join(t for t in ("before", "after") if report["runs"][t]) + " |",
              "|---|" + "---:|" * sum(1 for t in ("before", "after") if report["runs"][t])]
    keys = [p for p, _ in (report["runs"]["after"] or report["runs"]["before"])[0]["phases"]]
    for i, key in enumerate(keys):
        cells = []
        for tree in ("before", "after"):
            runs = report["runs"][tree]
            if runs:
                values = [dict(r["phases"]).get(key) for r in runs if len(r["phases"]) > i]
                values = [v for v in values if v is not None]
                cells.append(f"{statistics.median(values):.1f}" if values else "—")
        lines.append(f"| {key.replace('|', '/')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + (f"\n{notes}\n" if notes else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="a copy of the tree without the changes")
    parser.add_argument("--after", type=Path, default=ROOT, help="the tree with the changes (default: this one)")
    parser.add_argument("--runs", type=int, default=3, help="builds per tree (default 3)")
    parser.add_argument("--profile-only", action="store_true", help="one profiled build of this tree, printed")
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--from-json", type=Path, help=argparse.SUPPRESS)  # re-render a saved report
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.root, args.child, args.profile)
        return 0
    notes = args.notes.read_text() if args.notes else ""
    if args.from_json:
        (args.out / "build_time.md").write_text(markdown(json.loads(args.from_json.read_text()), notes))
        return 0
    with tempfile.TemporaryDirectory(prefix="tritonize-build-time-") as tmp:
        work = Path(tmp)
        if args.profile_only:
            result = run_child(ROOT, work, "after-profile", True)
            print(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=1))
            print(json.dumps(result["profile"], indent=1))
            return 0
        trees = {"after": args.after.resolve(), **({"before": args.before.resolve()} if args.before else {})}
        order = [t for i in range(args.runs) for t in ((("before", "after") if i % 2 == 0 else ("after", "before"))
                 if args.before else ("after",))]
        report: dict[str, Any] = {"environment": environment(), "order": order,
                                  "runs": {"before": [], "after": []}, "profiles": {}}
        load_start = os.getloadavg()
        for i, tree in enumerate(order):
            result = run_child(trees[tree], work, f"{tree}-{i}", False)
            report["runs"][tree].append(result)
            report["torch_threads"] = result["torch_threads"]
            print(f"[{i + 1}/{len(order)}] {tree}: {result['total_s']:.1f} s", file=sys.stderr)
        for tree, root in trees.items():
            result = run_child(root, work, f"{tree}-profile", True)
            report["profiles"][tree] = {"total_s": result["total_s"], **result["profile"]}
            print(f"[profile] {tree}: {result['total_s']:.1f} s", file=sys.stderr)
        report["load_average_1_5_15"] = {"start": load_start, "end": os.getloadavg()}
        report["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "build_time.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (args.out / "build_time.md").write_text(markdown(report, notes))
    print(f"wrote {args.out / 'build_time.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
