"""What reproduce.py writes: reproduce.json (every curve as measured, with the summary), reproduce.md (the tables a
person reads) and reproduce.png (accuracy against step-2 compute, from step 0). The arithmetic is the library's
(`hf_minimodel.speedup`); this module only lays it out.
"""

import importlib.util
import json
import os
import platform
import statistics
from pathlib import Path

import torch
import transformers

from hf_minimodel import speedup
from hf_minimodel.methods import LABELS



def write_atomic(path: Path, write) -> None:
    """`write(temporary_path)`, then a rename: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(temporary)
    os.replace(temporary, path)


def write_json(path: Path, value) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n"))


def json_settings(args) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def check_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("reproduce.py draws its plot with matplotlib: pip install 'hf-minimodel[benchmarks]'")


def machine() -> dict:
    return {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "platform": platform.platform()}


def results(runs, own, args, seconds) -> dict:
    """Everything measured, and the summary per init: start, best and gain per method, the paper's speed-up where
    the standard approach gained, and across inits the compute to reach the standard approach's best; with what
    steps 1 and 1b cost (their records in --work)."""
    targets = [run for run in runs if not run.get("control")]
    inits = list(dict.fromkeys(run["init"] for run in targets))
    compared = {init: speedup.compare([run for run in targets if run["init"] == init]) for init in inits}
    return {
        "summary": {init: speedup.summarize(rows) for init, rows in compared.items()},
        "compared": compared,
        "compute_to_reach": {init: speedup.compute_to_reach(targets, init) for init in inits},
        "runs": targets,
        "control": [run for run in runs if run.get("control")],
        "own_vocabulary": own,
        "source_models": {path.parent.name: json.loads(path.read_text())
                          for path in sorted(args.work.glob("*/step1*.json"))},
        "args": json_settings(args),
        "machine": machine(),
        # This invocation only: stages cached by an earlier one cost nothing here.
        "seconds_this_invocation": round(seconds, 1),
    }


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def _sbg(entry) -> str:
    return f"{entry['start']:.3f} / {entry['best']:.3f} / {entry['gain']:+.3f}"


def markdown(results) -> str:
    lines = ["# Mini-model adaptation on Bible text", "",
             "Each cell: accuracy at step 0 (the pack as initialised, no step 2) / best over the snapshots / gain. "
             "Speed-up: the standard approach's step-2 FLOPs to first reach its best, over the method's FLOPs to first "
             f"reach the same accuracy; computed only where the standard approach gained (at least {speedup.MIN_GAIN} and "
             f"{speedup.NOISE_SIGMAS:g} standard errors over its start), else \"no gain to compare\". Retrieval's baseline "
             "is chance (1 / candidates).", ""]
    own = {(o["language"], o["task"], o["source"]): o["accuracy"] for o in results["own_vocabulary"]}
    for init, rows in results["compared"].items():
        methods = [m for m in LABELS if any(m in row["methods"] for row in rows)]
        minis = [m for m in speedup.MINI_METHODS if m in methods and "standard" in methods]
        header = ["language", "task", "n", "baseline", "own vocabulary", *(LABELS[m] for m in methods),
                  *(f"{LABELS[m]} speed-up" for m in minis)]
        table = []
        for row in rows:
            sources = sorted({o[2] for o in own if o[:2] == (row["language"], row["task"])})
            cells = [row["language"], row["task"], str(row["n"]), f"{row['majority_baseline']:.3f}",
                     " / ".join(f"{own[row['language'], row['task'], s]:.3f}" for s in sources)]
            cells += [_sbg(row["methods"][m]) if m in row["methods"] else "" for m in methods]
            for method in minis:
                entry = row.get(method)
                if not isinstance(entry, dict):
                    cells.append(entry or "")
                elif entry["at_start"]:
                    cells.append("reached at its start")
                else:
                    cells.append(f"{entry['speedup']:.2f}x" + ("" if entry["reached"] else f" (not reached; ratio "
                                                               f"{entry['accuracy_ratio']:.3f})"))
            table.append(cells)
        lines += [f"## init = {init}", "", *_table(header, table), ""]
        for method, entry in results["summary"][init].items():
            mean = entry["mean_speedup_reached"]
            ratio = entry["mean_accuracy_ratio"]
            lines.append(f"**{LABELS[method]}** ({init}): reached the standard approach's best in {entry['reached']} "
                         f"compared pairs, mean speed-up there {f'{mean:.2f}x' if mean else 'n/a'}; mean accuracy ratio "
                         f"{f'{ratio:.3f}' if ratio else 'n/a'}; no gain to compare in {entry['no_gain_to_compare']}.  ")
        lines.append("")
    if results["control"]:
        lines += _control(results)
    for init, rows in results["compute_to_reach"].items():
        table = []
        for row in rows:
            for entry in row["runs"]:
                reach = ("at step 0" if entry["at_start"] else f"{entry['flops']:.3g}" if entry["flops"] else "never")
                table.append([row["language"], row["task"], f"{row['goal']:.3f}" + ("" if row["reference_gained"] else
                              " (no gain)"), LABELS[entry["method"]], entry["init"], reach,
                              f"{entry['speedup']:.2f}x" if entry["speedup"] else ""])
        if len({e["init"] for row in rows for e in row["runs"]}) > 1:
            lines += [f"## Step-2 FLOPs to reach the standard approach's best from init = {init}", "",
                      *_table(["language", "task", "goal", "method", "init", "FLOPs to reach", "speed-up"], table), ""]
    return "\n".join(lines).rstrip() + "\n"


def _control(results) -> list[str]:
    """The relearning control's table: each method's start, best and gain on English relearned from no source row
    (init mean), beside the original English accuracy, and the share of it above the baseline that was recovered."""
    original = {(o["task"], o["source"]): o for o in results["own_vocabulary"] if o["language"] == "en"}
    table = []
    for run in results["control"]:
        summary, english = speedup.start_best_gain(run["curve"]), original[run["task"], run["source"]]
        base = run["majority_baseline"]
        share = (summary["best"] - base) / (english["accuracy"] - base) if english["accuracy"] > base else float("nan")
        table.append([run["task"], LABELS[run["method"]], run["source"], _sbg(summary), f"{english['accuracy']:.3f}",
                      f"{base:.3f}", f"{share:.0%}"])
    return ["## Control: English relearned from no source row (init mean)", "",
            *_table(["task", "method", "source model", "start / best / gain", "original", "baseline",
                     "recovered above baseline"], table), ""]


def plot(runs, path: Path) -> None:
    """Accuracy against cumulative step-2 TFLOPs from step 0, one panel per task: the mean over languages per
    (method, init), colour by method and line style by init, the baseline dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(run["task"] for run in runs))
    inits = list(dict.fromkeys(run["init"] for run in runs))
    figure = Figure(figsize=(6 * max(1, len(tasks)), 4.5))
    FigureCanvasAgg(figure)  # Agg, without pyplot's global state
    for axis, task in zip(figure.subplots(1, max(1, len(tasks)), squeeze=False)[0], tasks):
        for color, method in zip(("tab:blue", "tab:orange", "tab:green"), LABELS):
            for style, init in zip(("-", "--", ":", "-."), inits):
                curves = [r["curve"] for r in runs if r["task"] == task and r["method"] == method and r["init"] == init]
                if not curves:
                    continue
                length = min(len(curve) for curve in curves)
                axis.plot([statistics.fmean(c[i]["flops"] for c in curves) / 1e12 for i in range(length)],
                          [statistics.fmean(c[i]["accuracy"] for c in curves) for i in range(length)], color=color,
                          linestyle=style, marker="o", markersize=3,
                          label=f"{LABELS[method]}, {init} (mean of {len(curves)})")
        baselines = [run["majority_baseline"] for run in runs if run["task"] == task]
        axis.axhline(statistics.fmean(baselines), color="gray", linestyle="--", linewidth=1, label="baseline")
        axis.set_xlabel("cumulative step-2 TFLOPs (step 0 = the init alone)")
        axis.set_ylabel("zero-shot accuracy")
        axis.set_title(task)
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def write(results, output_dir: Path) -> None:
    table = markdown(results)
    write_json(output_dir / "reproduce.json", results)
    write_atomic(output_dir / "reproduce.md", lambda tmp: tmp.write_text(table))
    plot(results["runs"], output_dir / "reproduce.png")
    print("\n" + table)
    print(f"written to {output_dir}/reproduce.{{json,md,png}} in {results['seconds_this_invocation']} s")
