"""The relearning control read two ways: does the relearned English vocabulary read English on its own, or does it
only fail to meet the body's own vocabulary?

`step2_levers.py` measures the control as zero-shot transfer needs it: KJV verses embedded with the body's own
vocabulary, found among World English Bible verses embedded with the relearned pack ("own -> pack"). A pack can
read English well and still miss there, if step 2 puts its rows where the frozen body makes a sentence space of its
own. This script measures every saved snapshot of every control run the other way too, both translations through
the pack ("pack -> pack"), against the body's own vocabulary on both sides (the ceiling of either).

    python benchmarks/control_within.py benchmarks/results/step2-levers --packs runs/levers/packs

writes control-within.json (each run's curve, step 0 included; a run already there is skipped) and control-within.md
into the results folder.
"""

import argparse
import json
import os
import textwrap
from pathlib import Path

import torch
from transformers import XLMRobertaForMaskedLM

from hf_minimodel import LanguagePack, MiniModelAdapter, speedup

from levers_report import body_of, lever
from step2_levers import retrieval_probe, within_pack_retrieval


def control_runs(folder: Path, packs: Path) -> list[dict]:
    runs = []
    for path in sorted(folder.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("settings", {}).get("language") == "en" and (packs / path.stem).is_dir():
            runs.append(run | {"name": path.stem})
    return runs


def measure(run: dict, packs: Path) -> dict:
    """The run's saved snapshots read pack -> pack; own -> pack and the own vocabulary's retrieval are the run's own
    records (step2_levers.py measured them on the same probe)."""
    settings = run["settings"]
    source = XLMRobertaForMaskedLM.from_pretrained(settings["source"]).eval()
    probe = retrieval_probe("en", settings["candidates"], settings["seed"])
    points = []
    for point in run["curve"]:
        snapshot = packs / run["name"] / f"step-{point['step']}"
        if not snapshot.is_dir():
            continue
        pack = LanguagePack.from_pretrained(snapshot)
        merged = pack.apply(MiniModelAdapter(source).full_masked_lm()).eval()
        points.append({"step": point["step"], "tokens": point["tokens"], "own_to_pack": point["retrieval_at_1"],
                       "pack_to_pack": within_pack_retrieval(merged, pack.tokenizer, probe)})
        print(run["name"], json.dumps(points[-1]), flush=True)
    return {"body": body_of(run), "method": settings["method"], "lever": lever(run), "steps": settings["steps"],
            "own_vocabulary": run["own_vocabulary_retrieval_at_1"], "curve": points}


def markdown(results: dict) -> str:
    lines = ["| body | method | init and rates | own vocabulary | own -> pack, step 0 -> end | pack -> pack, by snapshot "
             "(step 0 first) | pack -> pack: start / best (gain) | best / own vocabulary |", "|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(results.items(), key=lambda item: (item[1]["body"], item[1]["method"], item[0])):
        curve = r["curve"]
        summary = speedup.start_best_gain([p | {"accuracy": p["pack_to_pack"]} for p in curve])
        lines.append(
            f"| {r['body']} | {r['method']} | {r['lever']}, {r['steps']:,} steps | {r['own_vocabulary']:.3f} | "
            f"{curve[0]['own_to_pack']:.3f} -> {curve[-1]['own_to_pack']:.3f} | "
            + " -> ".join(f"{p['pack_to_pack']:.3f}" for p in curve)
            + f" | {summary['start']:.3f} / {summary['best']:.3f} ({summary['gain']:+.3f})"
            + f" | {summary['best'] / r['own_vocabulary']:.2f} |")
    caption = ("The relearning control, retrieval@1 of KJV verses among 1,000 of the World English Bible's (chance "
               "0.001): own -> pack "
               "as step2_levers.py measures it (queries through the body's own vocabulary), pack -> pack with both "
               "translations through the relearned pack, at every saved snapshot from step 0. The two translations share "
               "most words, so pack -> pack rewards distinct rows for distinct tokens before any training: read it "
               "against the step-0 value of a start whose rows differ (random), not only of one whose rows are alike "
               "(mean).")
    return textwrap.fill(caption, 117) + "\n\n" + "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="step2_levers.py's results")
    parser.add_argument("--packs", type=Path, default=Path("runs/levers/packs"), help="its saved snapshots")
    args = parser.parse_args(argv)
    out = args.folder / "control-within.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for run in control_runs(args.folder, args.packs):
        if run["name"] in results:
            continue
        results[run["name"]] = measure(run, args.packs)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, out)  # after each run, so a killed measurement keeps what it finished
    if not results:
        raise SystemExit(f"control_within.py: no control run in {args.folder} has snapshots in {args.packs}")
    (args.folder / "control-within.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
