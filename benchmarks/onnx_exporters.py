"""The two ONNX exporters side by side: TorchScript-based (``exporter = "torchscript"``) and torch.export-based
(``exporter = "dynamo"``), each through tritonize's own ``onnx`` exporter.

    .venv/bin/python benchmarks/onnx_exporters.py            # writes benchmarks/results/onnx_exporters.{md,json}
    .venv/bin/python benchmarks/onnx_exporters.py --quick    # examples only, few repeats; writes only with --out

Models (random weights, built from configs; nothing downloaded): the bundled examples (``digits`` CNN and the
``sequence`` classifier of ``tritonize.generator.examples``, untrained), a MiniLM-sized ``transformers.BertModel``
(hidden 384, 6 layers, 12 heads, vocabulary 30522) with ``token_type_ids``, a ``DistilBertModel`` (its default
config: dim 768, 6 layers), torchvision ``resnet18`` (224×224). Transformers return ``last_hidden_state`` (BERT
also ``pooler_output``); their inputs are of variable length (dims -1), examples of 16 tokens.

Per model and exporter, two fresh processes each load the model and run
``tritonize.generator.exporters.onnx.export_onnx`` (the export, ``onnx.checker`` full check, ``fit_to_target``,
an onnxruntime load): its wall time is the export time; the two files' sha256 say whether the export is
reproducible. This process then compares each file with the eager model (max |Δ| over every output, on batches
of 1 and 8 at a length other than the export's), and times onnxruntime (``CPUExecutionProvider``, intra-op
threads = cores, sequential, ORT_ENABLE_ALL) at batch 1 and 8: blocks in which both files run the same inputs,
the order reversing every block (ABBA); the median of the per-call latencies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]
RESULTS = THIS.parent / "results"
EXPORTERS = ("torchscript", "dynamo")
MODELS = ("digits", "sequence", "bert", "distilbert", "resnet18")
QUICK_MODELS = ("digits", "sequence")
SEQ = 16


def model(name: str) -> Any:
    """The source callable (``benchmarks/onnx_exporters.py:model`` with ``kwargs = {name}``)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torchvision_cpu

    torchvision_cpu.apply()
    import torch

    from tritonize.generator.source import ModelBundle

    torch.manual_seed(0)
    if name == "digits":
        from tritonize.generator.examples.digits import build_digits_cnn

        return build_digits_cnn(epochs=0)
    if name == "sequence":
        from tritonize.generator.examples.sequence import build_sequence_classifier

        return build_sequence_classifier(epochs=0)
    if name == "resnet18":
        import torchvision

        net = torchvision.models.resnet18(weights=None).eval()
        return ModelBundle(net, torch.randn(2, 3, 224, 224), output_names=["logits"])
    ids = torch.randint(1000, 30522, (2, SEQ), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, SEQ - 4:] = 0
    if name == "bert":
        from transformers import BertConfig, BertModel

        config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                            vocab_size=30522, attn_implementation="eager")
        bert = BertModel(config).eval()

        class Bert(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.last_hidden_state, out.pooler_output

        examples = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        return ModelBundle(Bert(), examples, input_dims={k: [-1] for k in examples},
                           output_names=["last_hidden_state", "pooler_output"])
    if name == "distilbert":
        from transformers import DistilBertConfig, DistilBertModel

        distil = DistilBertModel(DistilBertConfig(attn_implementation="eager")).eval()

        class Distil(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.distil = distil

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.distil(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return ModelBundle(Distil(), {"input_ids": ids, "attention_mask": mask},
                           input_dims={"input_ids": [-1], "attention_mask": [-1]}, output_names=["last_hidden_state"])
    raise ValueError(name)


def load(name: str) -> Any:
    from tritonize.generator.source import load_source

    return load_source(f"{THIS}:model", max_batch_size=8, kwargs={"name": name})


# --- child: one export in a fresh process ----------------------------------------------------------------------
def export_child(name: str, exporter: str, directory: Path, out: Path) -> None:
    import torch

    from tritonize.core import formats
    from tritonize.generator.exporters import ExportJob
    from tritonize.generator.exporters.onnx import export_onnx
    from tritonize.generator.request import FormatOptions, ModelRequest

    loaded = load(name)
    request = ModelRequest(name, f"{THIS}:model", formats=("onnx",), max_batch_size=8, kwargs={"name": name},
                           format_options={"onnx": FormatOptions(exporter=exporter)})
    directory.mkdir(parents=True, exist_ok=True)

    def no_base(base: str) -> Any:
        raise AssertionError(base)

    start = time.perf_counter()
    error = None
    try:
        artifact = export_onnx(ExportJob(loaded, request, formats.FORMATS["onnx"], directory, no_base))
        details = artifact.details
    except Exception as exc:  # recorded: the other exports still run
        error, details = f"{type(exc).__name__}: {exc}", {}
    seconds = time.perf_counter() - start
    path = directory / "model.onnx"
    out.write_text(json.dumps({
        "export_s": seconds, "error": error, "details": details, "files": sorted(p.name for p in directory.iterdir()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() and not error else None,
        "bytes": path.stat().st_size if path.exists() and not error else None, "torch_threads": torch.get_num_threads(),
    }, default=str))


# --- parent ----------------------------------------------------------------------------------------------------
def session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session with the INT8 benchmark's settings (benchmarks/int8.py)."""
    import onnxruntime as ort

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from int8 import session_options

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def parity(loaded: Any, sess: Any) -> float:
    """Max |Δ| against the eager model over every output, batches of 1 and 8 at lengths other than the export's."""
    worst = 0.0
    names = [i.name for i in sess.get_inputs()]
    for size, seed in ((1, 1), (8, 2)):
        batch = loaded.samples.batch(size, seed=seed, vary_dims=True)
        got = sess.run(None, {n: batch[n] for n in names})
        for g, r in zip(got, loaded.reference(batch)):
            worst = max(worst, float(np.abs(g.astype(np.float64) - r).max()))
    return worst


def latency(sessions: dict[str, Any], feeds: list[dict[str, np.ndarray]], blocks: int, calls: int) -> dict[str, Any]:
    import gc

    times: dict[str, list[float]] = {k: [] for k in sessions}
    per_block: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions)
    for s in sessions.values():  # warm-up
        for f in feeds[:3]:
            s.run(None, f)
    for b in range(blocks):
        gc.collect()
        for key in order if b % 2 == 0 else order[::-1]:
            block = []
            for i in range(calls):
                start = time.perf_counter()
                sessions[key].run(None, feeds[i % len(feeds)])
                block.append(time.perf_counter() - start)
            times[key] += block
            per_block[key].append(statistics.median(block))
    result: dict[str, Any] = {k: {"median_ms": statistics.median(v) * 1e3, "p90_ms": float(np.percentile(v, 90)) * 1e3,
                                  "calls": len(v)} for k, v in times.items()}
    if len(order) == 2:  # dynamo / torchscript per block: the noise of the ratio
        ratios = [d / t for t, d in zip(per_block[order[0]], per_block[order[1]])]
        result["block_ratio"] = [float(np.percentile(ratios, q)) for q in (25, 50, 75)]
    return result


def measure(names: tuple[str, ...], repeats: int, blocks: int, calls: int, work: Path) -> dict[str, Any]:
    threads = os.cpu_count() or 1
    report: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = {"exports": {}}
        for exporter in EXPORTERS:
            runs = []
            for r in range(repeats):
                directory, out = work / name / f"{exporter}-{r}", work / f"{name}-{exporter}-{r}.json"
                subprocess.run([sys.executable, str(THIS), "--export", name, exporter, str(directory), str(out)],
                               check=True, cwd=work)
                runs.append(json.loads(out.read_text()))
            ok = [x for x in runs if not x["error"]]
            entry["exports"][exporter] = {
                "export_s": [x["export_s"] for x in runs], "error": runs[0]["error"],
                "reproducible": len(ok) == len(runs) and len({x["sha256"] for x in ok}) == 1,
                "bytes": ok[0]["bytes"] if ok else None, "files": runs[0]["files"], "details": runs[0]["details"],
                "torch_threads": runs[0]["torch_threads"]}
            print(f"[{name}] {exporter}: {[round(x['export_s'], 1) for x in runs]} s"
                  f"{' ' + runs[0]['error'][:200] if runs[0]['error'] else ''}", file=sys.stderr)
        good = [e for e in EXPORTERS if not entry["exports"][e]["error"]]
        loaded = load(name)
        sessions = {e: session(work / name / f"{e}-0" / "model.onnx", threads) for e in good}
        for e in good:
            entry["exports"][e]["parity_max_abs"] = parity(loaded, sessions[e])
        entry["latency"] = {}
        for size in (1, 8):
            feeds = [loaded.samples.batch(size, seed=50 + i) for i in range(4)]
            in_names = [i.name for i in loaded.inputs]
            entry["latency"][str(size)] = latency(sessions, [{n: f[n] for n in in_names} for f in feeds],
                                                  blocks, calls)
            print(f"[{name}] batch {size}: " + ", ".join(f"{e} {entry['latency'][str(size)][e]['median_ms']:.2f} ms"
                                                         for e in good), file=sys.stderr)
        entry["inputs"] = {i.name: [i.dtype.config, list(i.dims)] for i in loaded.inputs}
        entry["params"] = sum(p.numel() for p in loaded.module.parameters())
        report[name] = entry
    return report


def markdown(report: dict[str, Any], notes: str) -> str:
    env = report["environment"]
    m = env["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if k not in ("tritonclient", "tritonserver"))
    method = report["method"]
    lines = [
        "# ONNX exporters: TorchScript-based vs torch.export-based (dynamo)", "",
        f"Generated by `benchmarks/onnx_exporters.py` on {env['date']}. {m['cpu']}, {m['cores']} cores "
        f"({m['arch']}), {m['os']}; {versions}.", "",
        f"Each export: tritonize's `export_onnx` in a fresh process ({method['repeats']} per model and exporter; "
        "time = export + `onnx.checker` full check + target fit + onnxruntime load; torch threads "
        f"{method['torch_threads']}). Reproducible: the {method['repeats']} processes wrote the same bytes. "
        "Parity: max |Δ| against eager PyTorch over every output, batches of 1 and 8 at another length than "
        f"the export's. Latency: onnxruntime CPU, {method['threads']} intra-op threads, {method['blocks']} blocks "
        f"× {method['calls']} calls per exporter, the order reversing every block (ABBA); median (p90) of the "
        "per-call latencies. Other processes shared the cores; the alternation spreads that over both.", "",
        "| model | params | exporter | export s | reproducible | opset | file MB | max \\|Δ\\| vs eager | "
        "batch 1 ms | batch 8 ms |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in report["models"].items():
        for e in EXPORTERS:
            x = entry["exports"][e]
            if x["error"]:
                lines.append(f"| {name} | {entry['params']:,} | {e} | — | — | — | — | failed: "
                             f"{x['error'].splitlines()[0][:120]} | — | — |")
                continue
            lat = [entry["latency"][b][e] for b in ("1", "8")]
            lines.append(
                f"| {name} | {entry['params']:,} | {e} | {statistics.median(x['export_s']):.1f} | "
                f"{'yes' if x['reproducible'] else '**no**'} | {x['details'].get('opset')} | {x['bytes'] / 1e6:.2f} | "
                f"{x['parity_max_abs']:.2g} | {lat[0]['median_ms']:.3f} ({lat[0]['p90_ms']:.3f}) | "
                f"{lat[1]['median_ms']:.3f} ({lat[1]['p90_ms']:.3f}) |")
    lines += ["", "Dynamo / TorchScript ratios (below 1: dynamo is faster or smaller); latency: the ratio of the "
              "medians [interquartile range of the per-block ratios]:", "",
              "| model | export time | batch 1 latency | batch 8 latency | file size |", "|---|---:|---:|---:|---:|"]
    for name, entry in report["models"].items():
        t, d = entry["exports"]["torchscript"], entry["exports"]["dynamo"]
        if t["error"] or d["error"]:
            continue
        cells = [f"{statistics.median(d['export_s']) / statistics.median(t['export_s']):.2f}×"]
        for b in ("1", "8"):
            lat = entry["latency"][b]
            spread = lat.get("block_ratio")
            cells.append(f"{lat['dynamo']['median_ms'] / lat['torchscript']['median_ms']:.2f}×"
                         + (f" [{spread[0]:.2f}–{spread[2]:.2f}]" if spread else ""))
        cells.append(f"{d['bytes'] / t['bytes']:.2f}×")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + (f"\n{notes}\n" if notes else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the examples only, few repeats; writes only with --out")
    parser.add_argument("--models", help=f"comma-separated, of {','.join(MODELS)}")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the results")
    parser.add_argument("--from-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=4, help=argparse.SUPPRESS)  # child: name exporter directory out.json
    args = parser.parse_args(argv)
    if args.export:
        name, exporter, directory, out = args.export
        export_child(name, exporter, Path(directory), Path(out))
        return 0
    notes = args.notes.read_text() if args.notes else ""
    if args.from_json:
        report = json.loads(args.from_json.read_text())
    else:
        names = tuple(args.models.split(",")) if args.models else (QUICK_MODELS if args.quick else MODELS)
        method = {"repeats": 2, "blocks": 4 if args.quick else 10, "calls": 5 if args.quick else 20,
                  "threads": os.cpu_count() or 1}
        sys.path.insert(0, str(THIS.parent))
        from machine import environment

        env = environment("-", ("torch", "onnx", "onnxruntime", "onnxscript", "transformers", "torchvision",
                                "numpy"))
        load_start = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="tritonize-exporters-") as tmp:
            models = measure(names, method["repeats"], method["blocks"], method["calls"], Path(tmp))
        method["torch_threads"] = next(iter(models.values()))["exports"]["torchscript"]["torch_threads"]
        report = {"environment": env, "method": method, "models": models,
                  "load_average_1_5_15": {"start": load_start, "end": os.getloadavg()}}
    text = markdown(report, notes)
    print(text)
    out = args.out if args.out else (None if args.quick or args.from_json else RESULTS)
    if args.from_json and args.out is None:
        out = RESULTS
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "onnx_exporters.md").write_text(text)
        if not args.from_json:
            (out / "onnx_exporters.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {out / 'onnx_exporters.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
