"""The relearning control read two ways: does the relearned English vocabulary read English on its own, or does it
only fail to meet the body's own vocabulary?

`step2_levers.py` measures the control as zero-shot transfer needs it: KJV verses embedded with the body's own
vocabulary, found among World English Bible verses embedded with the relearned pack ("own -> pack"). A pack can
read English well and still miss there, if step 2 puts its rows where the frozen body makes a sentence space of its
own. This script measures every saved snapshot of every control run the other way too, both translations through
the pack ("pack -> pack"), against the body's own vocabulary on both sides (the ceiling of either). At the first and last snapshot it also reads own -> pack
through a linear map: least squares from the pack's sentence vectors of World English Bible train verses to the own
vocabulary's of the same verses (`--map-verses` of them; the probe's verses are test verses), applied to the pool. A
pack whose sentence space is a linear map away from the body's scores high there and low on own -> pack.

    python benchmarks/control_within.py benchmarks/results/step2-levers --packs runs/levers/packs

writes control-within.json (each run's curve, step 0 included; a reading already there is not measured again) and
control-within.md into the results folder.
"""

import argparse
import copy
import functools
import json
import os
import random
from pathlib import Path

import torch
from transformers import AutoTokenizer

from hf_minimodel import LanguagePack, MiniModelAdapter, sentence_embeddings, speedup
from hf_minimodel.tasks.bible import verses_for
from hf_minimodel.tasks.bible_tasks import retrieval_codes
from hf_minimodel.tasks.metrics import retrieval_accuracy

from levers_report import body_of, captioned_table, lever
from step2_levers import load_source, retrieval_probe, within_pack_retrieval


def control_runs(folder: Path, packs: Path) -> list[dict]:
    runs = []
    for path in sorted(folder.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("settings", {}).get("language") == "en" and (packs / path.stem).is_dir():
            runs.append(run | {"name": path.stem})
    return runs


@functools.cache
def source_body(path: str):
    """The step-1 body, its tokenizer and its full masked LM, loaded once per process."""
    source = load_source(path)
    return source, AutoTokenizer.from_pretrained(path), MiniModelAdapter(source).full_masked_lm().eval()


@functools.cache
def map_verses(count: int, seed: int) -> list[str]:
    """World English Bible train verses (the control's pool translation), a fixed random `count` of them."""
    verses = [text for _, text in verses_for(retrieval_codes("en", "en")[1], "train")]
    random.Random(seed).shuffle(verses)
    return verses[:count]


@functools.cache
def own_vectors(path: str, texts: tuple) -> torch.Tensor:
    _, tokenizer, full = source_body(path)
    return sentence_embeddings(full, tokenizer, list(texts))


def linear_map_retrieval(path: str, merged, tokenizer, probe, texts: tuple) -> float:
    """own -> pack with the pack's sentence vectors sent through the least-squares affine map that takes them to the
    own vocabulary's on `texts` (train verses), then normalised as the rest."""
    def with_ones(vectors):
        return torch.cat([vectors, torch.ones(len(vectors), 1)], dim=1)
    fitted = torch.linalg.lstsq(with_ones(sentence_embeddings(merged, tokenizer, list(texts))), own_vectors(path, texts),
                                driver="gelsd").solution
    pool = torch.nn.functional.normalize(with_ones(sentence_embeddings(merged, tokenizer, probe.pool)) @ fitted, dim=-1)
    return retrieval_accuracy(own_vectors(path, tuple(probe.queries)), pool, probe.gold)


def measure(run: dict, packs: Path, done: dict | None, map_count: int) -> dict:
    """The run's saved snapshots read pack -> pack, and at the first and last through a linear map; own -> pack and
    the own vocabulary's retrieval are the run's own records (step2_levers.py measured them on the same probe).
    Readings already in `done` (this run's earlier result) are kept."""
    settings = run["settings"]
    probe = retrieval_probe("en", settings["candidates"], settings["seed"])
    texts = tuple(map_verses(map_count, settings["seed"]))
    earlier = {p["step"]: p for p in (done or {}).get("curve", [])}
    saved = [p for p in run["curve"] if (packs / run["name"] / f"step-{p['step']}").is_dir()]
    ends = {saved[0]["step"], saved[-1]["step"]} if saved else set()
    points = []
    for point in saved:
        reading = earlier.get(point["step"], {})
        if reading.get("map_verses", map_count) != map_count:  # a map fit on another number of verses: fit again
            reading = {key: value for key, value in reading.items() if key not in ("own_to_pack_linear", "map_verses")}
        wanted = {"pack_to_pack"} | ({"own_to_pack_linear"} if point["step"] in ends else set())
        if not wanted <= reading.keys():
            pack = LanguagePack.from_pretrained(packs / run["name"] / f"step-{point['step']}")
            merged = pack.apply(copy.deepcopy(source_body(settings["source"])[2])).eval()
            if "pack_to_pack" not in reading:
                reading = reading | {"pack_to_pack": within_pack_retrieval(merged, pack.tokenizer, probe)}
            if "own_to_pack_linear" in wanted - reading.keys():
                reading = reading | {"own_to_pack_linear": linear_map_retrieval(settings["source"], merged, pack.tokenizer,
                                                                                probe, texts), "map_verses": map_count}
        points.append({"step": point["step"], "tokens": point["tokens"], "own_to_pack": point["retrieval_at_1"]}
                      | {key: reading[key] for key in ("pack_to_pack", "own_to_pack_linear", "map_verses") if key in reading})
        print(run["name"], json.dumps(points[-1]), flush=True)
    return {"body": body_of(run), "method": settings["method"], "lever": lever(run), "steps": settings["steps"],
            "own_vocabulary": run["own_vocabulary_retrieval_at_1"], "curve": points}


def markdown(results: dict) -> str:
    lines = []
    for name, r in sorted(results.items(), key=lambda item: (item[1]["body"], item[1]["method"], item[0])):
        curve = r["curve"]
        summary = speedup.start_best_gain([p | {"accuracy": p["pack_to_pack"]} for p in curve])
        lines.append(
            f"| {r['body']} | {r['method']} | {r['lever']}, {r['steps']:,} steps | {r['own_vocabulary']:.3f} | "
            f"{curve[0]['own_to_pack']:.3f} -> {curve[-1]['own_to_pack']:.3f} | "
            + " -> ".join(f"{p['pack_to_pack']:.3f}" for p in curve)
            + f" | {summary['start']:.3f} / {summary['best']:.3f} ({summary['gain']:+.3f})"
            + f" | {summary['best'] / r['own_vocabulary']:.2f} | "
            + " -> ".join(f"{p['own_to_pack_linear']:.3f}" for p in curve if "own_to_pack_linear" in p) + " |")
    caption = ("The relearning control, retrieval@1 of KJV verses among 1,000 of the World English Bible's (chance "
               "0.001): own -> pack "
               "as step2_levers.py measures it (queries through the body's own vocabulary), pack -> pack with both "
               "translations through the relearned pack, at every saved snapshot from step 0. The two translations share "
               "most words, so pack -> pack rewards distinct rows for distinct tokens before any training: read it "
               "against the step-0 value of a start whose rows differ (random), not only of one whose rows are alike "
               "(mean). The linear map: least squares from the pack's sentence vectors of World English Bible train verses "
               "to the own vocabulary's (--map-verses, 4,000), applied to the pool's: how far own -> pack falls short because the "
               "pack's sentence space is a linear map away from the body's.")
    header = ["body", "method", "init and rates", "own vocabulary", "own -> pack, step 0 -> end",
              "pack -> pack, by snapshot (step 0 first)", "pack -> pack: start / best (gain)", "best / own vocabulary",
              "own -> pack through a linear map, step 0 -> end"]
    return captioned_table(caption, header, lines).lstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="step2_levers.py's results")
    parser.add_argument("--packs", type=Path, default=Path("runs/levers/packs"), help="its saved snapshots")
    parser.add_argument("--map-verses", type=int, default=4000, help="train verses the linear map is fit on")
    args = parser.parse_args(argv)
    out = args.folder / "control-within.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for run in control_runs(args.folder, args.packs):
        results[run["name"]] = measure(run, args.packs, results.get(run["name"]), args.map_verses)
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
