"""The step-2 lever runs side by side: one table row per run of `step2_levers.py` (start, best, end and gain of
retrieval@1, held-out MLM loss, the rows' cosine with the body's own, the tokens and seconds it took), and their
retrieval curves against step-2 tokens, step 0 included.

    python benchmarks/levers_report.py benchmarks/results/step2-levers --output benchmarks/results/step2-levers/levers

writes levers.md and (with matplotlib) levers.png. Runs are grouped by body, method and language, so that the runs a
lever was varied over sit together.
"""

import argparse
import json
import math
import statistics
import textwrap
from pathlib import Path

from hf_minimodel import initialisation, speedup
from hf_minimodel.methods import LABELS
from hf_minimodel.training import MLM_PROBABILITY

# The target vocabulary's size every run has unless its label says otherwise: step2_levers.py's --vocab-size default.
DEFAULT_VOCAB_SIZE = 16000
# The sequences a step and their length every run has unless its label says otherwise (the CPU runs' 16 x 64 tokens).
DEFAULT_BATCH = (16, 64)


def load(folder: Path) -> list[dict]:
    runs = []
    for path in sorted(folder.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if "curve" in run and "settings" in run:
            runs.append(run | {"file": path.name})
    return sorted(runs, key=lambda r: (body_of(r), r["settings"]["method"], r["settings"]["language"], r["file"]))


def body_of(run: dict) -> str:
    """The body and its step 1: runs/levers/e5-plain/step-2000 -> "e5" (the plain masked LM), runs/levers/e5-dual/...
    -> "e5-dual" (MiniJoint's dual model), so that only runs over the same step-1 model are compared."""
    return Path(run["settings"]["source"]).parent.name.removesuffix("-plain")


def lever(run: dict) -> str:
    """What sets this run apart: its init, the new rows' spread where it is not the init's own, the rates."""
    s = run["settings"]
    own = initialisation.own_noise(s["init"])
    noise = s.get("init_noise")
    if noise is None:  # the init's own, which before init mean existed (no "mean" rows in reports) was 1 for all
        noise = own if "mean" in run["init_report"]["rows"] else (None if own is None else 1.0)
    init = s["init"]
    if init == "random" and noise == 0:  # init mean, run (and its file named) before it had its name
        init, own = "mean", 0.0
    parts = [init, f"lr {s['lr']:g}"]
    if noise is not None and noise != own:
        parts.append(f"spread {noise:g}")
    if s.get("start_lr"):
        parts.append(f"copied rows' lr {s['start_lr']:g}")
    if s.get("mean_at_row_norm"):
        parts.append("mean rows at a row's norm")
    if s.get("mlm_probability", MLM_PROBABILITY) != MLM_PROBABILITY:
        parts.append(f"{s['mlm_probability']:.0%} masked")
    if s.get("scheduler", "linear") != "linear":
        if s["scheduler"] == "warmup_stable_decay":
            parts.append(f"rate held, then decayed over the last {s['decay_share']:.0%}")
        else:
            parts.append({"constant_with_warmup": "constant rate after warmup"}.get(s["scheduler"], f"{s['scheduler']} rate"))
    if s.get("weight_decay"):
        parts.append(f"weight decay {s['weight_decay']:g}")
    batch = (s.get("batch_size", DEFAULT_BATCH[0]), s.get("max_seq_length", DEFAULT_BATCH[1]))
    if batch != DEFAULT_BATCH:  # tokens a step: a lever of its own (the same tokens in fewer, larger steps)
        parts.append(f"{batch[0]} x {batch[1]} tokens a step")
    if s.get("vocab_size", DEFAULT_VOCAB_SIZE) != DEFAULT_VOCAB_SIZE:  # another tokenizer: a lever, never paired across
        parts.append(f"{s['vocab_size']:,}-token vocabulary")
    return ", ".join(parts)


def row(run: dict) -> list[str]:
    curve, s = run["curve"], run["settings"]
    accuracy = accuracy_curve(run)
    summary = speedup.start_best_gain(accuracy)
    first, last = curve[0], curve[-1]
    gained = speedup.real_gain(accuracy, s["candidates"])
    return [body_of(run), s["method"], s["language"], lever(run), f"{summary['start']:.3f}", f"{summary['best']:.3f}",
            f"{last['retrieval_at_1']:.3f}", f"{summary['gain']:+.3f}" + ("" if gained else " (none)"),
            f"{run['own_vocabulary_retrieval_at_1']:.3f}",
            f"{first['heldout_mlm_loss']:.2f} -> {last['heldout_mlm_loss']:.2f}",
            " -> ".join(f"{p['shared_row_cosine']:.3f}" if "shared_row_cosine" in p else "n/a" for p in (first, last)),
            f"{last['tokens'] / 1e6:.1f}M", f"{train_seconds(run):.0f}"]


def train_seconds(run: dict) -> float:
    """The run's step-2 wall time: a resumed run's `train_seconds` are its last process's, its curve's the whole run's."""
    if run.get("resumed_from") or "train_seconds" not in run:
        return run["curve"][-1]["seconds"]
    return run["train_seconds"]


WIDTH = 117  # the prose lines of README.md, which quotes levers.md
HEADER = ["body", "method", "language", "init and rates", "retrieval@1 step 0", "best", "end", "gain",
          "own vocabulary", "held-out MLM loss", "cosine with own rows", "tokens", "train s"]


def markdown(runs: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(run)) + " |" for run in runs]
    candidates = sorted({run["settings"]["candidates"] for run in runs})
    return (textwrap.fill(
        f"Step-2 lever runs (`benchmarks/step2_levers.py`), retrieval@1 of English KJV verses among "
        f"{' or '.join(f'{n:,}' for n in candidates)} (the control: among the WEB's; chance 1 in that many), measured "
        "through the full body at every snapshot. "
        f"A gain is marked (none) below {speedup.MIN_GAIN} or within {speedup.NOISE_SIGMAS:g} standard errors of "
        "the start.", WIDTH) + "\n\n" + "\n".join(lines) + "\n" + versus(runs) + to_reach(runs))


def accuracy_curve(run: dict) -> list[dict]:
    return [point | {"accuracy": point["retrieval_at_1"]} for point in run["curve"]]


def compared_pairs(runs: list[dict]) -> list[dict]:
    """Each mini method against the standard approach wherever both ran with the same body (and step 1), language
    and lever: the paper's speed-up (`speedup.compare`: the standard's FLOPs to its best over the mini method's to
    reach it, or to its own best where it never does) beside the speed-up at equal accuracy
    (`speedup.equal_accuracy_speedup`: the standard's FLOPs to the mini method's best, read between snapshots)."""
    pairs = {}
    for run in runs:
        s = run["settings"]
        pairs.setdefault((body_of(run), s["language"], lever(run), s["steps"]), {})[s["method"]] = run
    compared = []
    for (body, language, how, _), methods in sorted(pairs.items()):
        for method in speedup.MINI_METHODS:
            if not {"standard", method} <= methods.keys():
                continue
            curves = {name: accuracy_curve(methods[name]) for name in ("standard", method)}
            n = methods["standard"]["settings"]["candidates"]
            (row,) = speedup.compare([{"language": language, "task": "retrieval", "method": name, "n": n,
                                       "majority_baseline": 1 / n, "curve": curve} for name, curve in curves.items()])
            compared.append({"body": body, "language": language, "lever": how, "method": method, "row": row,
                             "equal": speedup.equal_accuracy_speedup(curves["standard"], curves[method]),
                             "per_step": curves["standard"][-1]["flops"] / curves[method][-1]["flops"]})
    return compared


def versus(runs: list[dict]) -> str:
    """`compared_pairs` as a table, one line per pair, then their means over the target languages."""
    pairs, lines = compared_pairs(runs), []
    for pair in pairs:
        row, method = pair["row"], pair["method"]
        paper = row[method]
        standard, mini = (row["methods"][name] for name in ("standard", method))
        paper_text = paper if isinstance(paper, str) else (
            f"{paper['speedup']:.2f}x" + ("" if paper["reached"] else " (never reached: at its own best)"))
        if not row["standard_gained"]:
            equal_text = "no gain to compare"
        elif pair["equal"] is not None:
            equal_text = f"{pair['equal']:.2f}x"
        else:
            equal_text = "standard never got there" if mini["best"] > standard["best"] else "n/a"
        lines.append(f"| {pair['body']} | {pair['language']} | {pair['lever']} | {LABELS[method]} | "
                     f"{standard['start']:.3f} | {standard['best']:.3f} | {mini['best']:.3f} | "
                     f"{mini['best'] / standard['best']:.3f} | {pair['per_step']:.2f}x | {paper_text} | {equal_text} |")
    header = ["body", "language", "init and rates", "mini method", "step 0", "standard best", "mini best",
              "mini / standard", "FLOPs per step, standard / mini", "paper's speed-up", "speed-up at the mini best"]
    return captioned_table(
        "Each mini-model method against the standard approach over the same step-1 model, where both ran. The paper's "
        "speed-up divides the standard approach's step-2 FLOPs to its best by the mini method's to reach it (to its "
        "own best where it never does); the last column divides the standard approach's FLOPs to the mini method's "
        "best accuracy, read on a straight line between snapshots, by the mini method's: above 1, the mini-model got "
        "there cheaper.", header, lines) + versus_means(pairs)


def versus_means(pairs: list[dict]) -> str:
    """The paper's summary figure, "2.3x less compute on average": per body, mini method and lever, over the target
    languages (the English control left out), how many pairs the standard approach gained in, the mean accuracy
    ratio (`speedup.summarize`), how many reached the standard's best and their mean speed-up, and the geometric mean
    of the speed-up at the mini method's best (a ratio: one language at 0.5x and one at 2x average to 1x)."""
    groups = {}
    for pair in pairs:
        if pair["language"] != "en":
            groups.setdefault((pair["body"], pair["method"], pair["lever"]), []).append(pair)
    lines = []
    for (body, method, how), group in sorted(groups.items()):
        summary = speedup.summarize([pair["row"] for pair in group])[method]
        gained = [pair for pair in group if pair["row"]["standard_gained"]]
        equal = [pair["equal"] for pair in gained if pair["equal"]]
        # A mini method past the standard's best has no equal-accuracy ratio: counted aside, not dropped unsaid.
        beyond = sum(pair["equal"] is None and pair["row"]["methods"][method]["best"]
                     > pair["row"]["methods"]["standard"]["best"] for pair in gained)
        ratio, paper = summary["mean_accuracy_ratio"], summary["mean_speedup_reached"]
        reached = any(isinstance(pair["row"][method], dict) and pair["row"][method]["reached"] for pair in group)
        gains = [statistics.fmean(pair["row"]["methods"][name]["gain"] for pair in group) for name in ("standard", method)]
        equal_text = "n/a" if not equal else f"{math.exp(statistics.fmean(math.log(x) for x in equal)):.2f}x" + (
            f" ({min(equal):.2f}x-{max(equal):.2f}x)" if len(equal) > 1 else "")
        cells = [body, LABELS[method], how, ", ".join(pair["language"] for pair in group), f"{len(gained)} of {len(group)}",
                 " / ".join(f"{gain:+.3f}" for gain in gains), "n/a" if ratio is None else f"{ratio:.3f}",
                 summary["reached"], f"{paper:.2f}x" if paper is not None else "n/a" if reached else "none reached",
                 equal_text + (f"; {beyond} past the standard's best" if beyond else "")]
        lines.append("| " + " | ".join(cells) + " |")
    header = ["body", "mini method", "init and rates", "languages", "standard gained",
              "mean gain over step 0, standard / mini", "mean mini / standard",
              "reached the standard's best", "paper's speed-up, mean where reached",
              "speed-up at the mini best, geometric mean (range)"]
    return captioned_table(
        "The same pairs over the target languages (the control left out), the paper's average: each method's mean gain "
        "over its step 0 (the init alone), the mean of the accuracy ratios, the mean speed-up over the languages where "
        "the mini method reached the standard's best (the paper's figure), and the geometric mean of the speed-up at the mini method's own best.", header, lines)


def captioned_table(caption: str, header: list[str], lines: list[str]) -> str:
    """A paragraph and the markdown table under it, or nothing where no row applies."""
    if not lines:
        return ""
    return ("\n" + textwrap.fill(caption, WIDTH) + "\n\n" + "| " + " | ".join(header) + " |\n|" + "---|" * len(header)
            + "\n" + "\n".join(lines) + "\n")


# The standard approach's runs from these inits set the goals of `to_reach`: the paper's random rows, the source's
# statistics, copying alone, and `mean` (where the control starts).
REFERENCE_INITS = ("random-paper", "random", "overlap", "mean")


def to_reach(runs: list[dict]) -> str:
    """Across inits and methods: where the standard approach from a reference init gained, its best retrieval is the
    goal, and every other run with the same body and language is charged the step-2 FLOPs at which it first reaches
    it, at a snapshot (`speedup.first_reaching`) and read between snapshots (`speedup.flops_to_reach`); the ratios
    divide the reference's FLOPs to its best by those. Step 0 needs no step-2 compute at all."""
    groups = {}
    for run in runs:
        groups.setdefault((body_of(run), run["settings"]["language"]), []).append(run)
    lines = []
    for (body, language), group in sorted(groups.items()):
        for reference in group:
            s = reference["settings"]
            if s["method"] != "standard" or s["init"] not in REFERENCE_INITS:
                continue
            curve = accuracy_curve(reference)
            goal = max(point["accuracy"] for point in curve)
            if not speedup.real_gain(curve, s["candidates"]):
                lines.append(f"| {body} | {language} | standard: {lever(reference)} | {goal:.3f} | | no gain to compare "
                             "| | | |")
                continue
            needed = speedup.first_reaching(curve, goal)["flops"]
            for run in group:
                if run is reference:
                    continue
                other = accuracy_curve(run)
                point, between = speedup.first_reaching(other, goal), speedup.flops_to_reach(other, goal)
                if point is None:
                    reached, at_snapshot, read = f"never (best {max(p['accuracy'] for p in other):.3f})", "", ""
                elif point["step"] == 0:
                    reached, at_snapshot, read = "at step 0", "no step 2 needed", "no step 2 needed"
                else:
                    reached = f"{point['flops']:.2e}"
                    at_snapshot, read = f"{needed / point['flops']:.1f}x", f"{needed / between:.1f}x"
                lines.append(f"| {body} | {language} | standard: {lever(reference)} | {goal:.3f} | {needed:.2e} | "
                             f"{run['settings']['method']}: {lever(run)}, {run['settings']['steps']:,} steps | {reached} | {at_snapshot} | {read} |")
    header = ["body", "language", "reference", "its best", "its FLOPs to it", "run", "FLOPs to reach it",
              "less compute, at snapshots", "less compute, between snapshots"]
    return captioned_table(
        "Compute to reach the standard approach's best from a reference init (the paper's random rows, the source's "
        "statistics, copying alone, or the control's mean rows), for every other run with that body and language: "
        "step-2 FLOPs at the first snapshot at or above it, and the reference's FLOPs to its best divided by those, "
        "at snapshots and read on a straight line between them.", header, lines)


def plot(runs: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = {}
    for run in runs:
        groups.setdefault((body_of(run), run["settings"]["language"]), []).append(run)
    columns = min(4, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, ((body, language), members) in zip(axes.flat, sorted(groups.items())):
        labels = [f"{run['settings']['method']}: {lever(run)}" for run in members]
        for run, label in zip(members, labels):
            curve = run["curve"]
            if labels.count(label) > 1:  # the same lever run for longer: a schedule of its own, so a curve of its own
                label += f", {run['settings']['steps']:,} steps"
            ax.plot([p["tokens"] / 1e6 for p in curve], [p["retrieval_at_1"] for p in curve], marker="o", label=label)
        ax.axhline(members[0]["own_vocabulary_retrieval_at_1"], color="grey", linestyle="--", label="own vocabulary")
        ax.set(title=f"{body}, {'en relearned' if language == 'en' else language}", xlabel="step-2 tokens (M)",
               ylabel=f"retrieval@1 among {members[0]['settings']['candidates']:,}", ylim=(0, 1.02))
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--output", type=Path, required=True, help="path without suffix: .md and .png are written")
    args = parser.parse_args(argv)
    runs = load(args.folder)
    if not runs:
        raise SystemExit(f"levers_report.py: no step2_levers.py result in {args.folder}: run benchmarks/step2_levers.py")
    args.output.with_suffix(".md").write_text(markdown(runs), encoding="utf-8")
    plotted = plot(runs, args.output.with_suffix(".png"))
    print(f"{len(runs)} runs: {args.output.with_suffix('.md')}" + (f", {args.output.with_suffix('.png')}" if plotted else ""))


if __name__ == "__main__":
    main()
