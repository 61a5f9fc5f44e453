"""Is the relearning control's own -> pack gap something a cheap correction with no parallel text closes?

`control_within.py` shows that a least-squares map fit on parallel verses carries most of the gap: the relearned pack
reads English in a sentence space of its own. A user adding a language has no parallel text, so this script tries the
corrections that need none, on a control run's last snapshot, each read as own -> pack retrieval@1 on the same probe:

- the pool's sentence vectors moved so that their mean is the own vocabulary's (WEB train verses through the pack,
  other KJV train verses through the own vocabulary: no verse on both sides), and then also their covariance
  (CORAL: whitened with the pack's, coloured with the own vocabulary's);
- the pack's rows moved so that their mean is the source rows' mean, unweighted and weighted by how often each
  tokenizer emits each token on English train text;
- the special tokens' rows (`<s>`, `</s>`, padding, mask, unknown) taken from the source's by role, as `overlap`
  copies them: the control's `mean` start relearns them too.

    python benchmarks/control_alignment.py benchmarks/results/step2-levers RUN [RUN ...]

writes control-alignment.json and control-alignment.md into the results folder (a run already there is skipped).
"""

import argparse
import copy
import json
import os
import random
from collections import Counter
from pathlib import Path

import torch

from hf_minimodel import LanguagePack, initialisation, sentence_embeddings
from hf_minimodel.tasks.bible import verses_for
from hf_minimodel.tasks.bible_tasks import language_texts, retrieval_codes
from hf_minimodel.tasks.metrics import retrieval_accuracy

from control_within import source_body
from levers_report import body_of, captioned_table, lever
from step2_levers import retrieval_probe

VERSES = 4000  # per side, for the moments; and the English train verses the token frequencies are counted on


def disjoint_train_verses(seed: int) -> tuple[list[str], list[str]]:
    """KJV train verses for the own vocabulary and WEB train verses of other verse ids for the pack."""
    kjv, web = (dict(verses_for(code, "train")) for code in retrieval_codes("en", "en"))
    ids = sorted(set(kjv) & set(web))
    random.Random(seed).shuffle(ids)
    return [kjv[i] for i in ids[:VERSES]], [web[i] for i in ids[VERSES:2 * VERSES]]


def matrix_power(covariance: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(covariance)
    values = values.clamp_min(1e-6 * values.max())  # 384 dimensions from 4,000 vectors: keep the inverse finite
    return vectors @ torch.diag(values ** power) @ vectors.T


def token_frequencies(tokenizer, texts: list[str], size: int) -> torch.Tensor:
    counts = Counter(i for ids in tokenizer(texts)["input_ids"] for i in ids)
    weights = torch.zeros(size)
    for i, count in counts.items():
        if i < size:
            weights[i] = count
    return weights / weights.sum()


def measure(run: dict, packs: Path) -> dict:
    settings = run["settings"]
    _, source_tokenizer, full = source_body(settings["source"])
    probe = retrieval_probe("en", settings["candidates"], settings["seed"])
    step = run["curve"][-1]["step"]
    pack = LanguagePack.from_pretrained(packs / run["name"] / f"step-{step}")
    merged = pack.apply(copy.deepcopy(full)).eval()

    def vectors(model, tokenizer, texts):
        return sentence_embeddings(model, tokenizer, texts).double()

    queries = vectors(full, source_tokenizer, probe.queries)
    own_texts, pack_texts = disjoint_train_verses(settings["seed"])
    own, ours, pool = (vectors(full, source_tokenizer, own_texts), vectors(merged, pack.tokenizer, pack_texts),
                       vectors(merged, pack.tokenizer, probe.pool))

    def found(candidates):
        return retrieval_accuracy(queries.float(), torch.nn.functional.normalize(candidates.float(), dim=-1), probe.gold)

    result = {"body": body_of(run), "method": settings["method"], "lever": lever(run), "step": step,
              "own_to_pack_step0": run["curve"][0]["retrieval_at_1"], "own_to_pack": found(pool),
              "mean_matched": found(pool - ours.mean(0) + own.mean(0)),
              "mean_and_covariance_matched": found((pool - ours.mean(0)) @ matrix_power(torch.cov(ours.T), -0.5)
                                                   @ matrix_power(torch.cov(own.T), 0.5) + own.mean(0))}
    english = random.Random(settings["seed"]).sample(language_texts("en"), VERSES)
    source_rows = full.get_input_embeddings().weight.detach()
    rows = merged.get_input_embeddings().weight
    start = rows.detach().clone()
    shifts = {"rows_recentred": source_rows.mean(0) - start.mean(0),
              "rows_recentred_by_frequency": token_frequencies(source_tokenizer, english, len(source_rows)) @ source_rows
              - token_frequencies(pack.tokenizer, english, len(start)) @ start}
    for name, shift in shifts.items():
        with torch.no_grad():
            rows.copy_(start + shift)
        result[name] = found(vectors(merged, pack.tokenizer, probe.pool))
    specials = set(pack.tokenizer.all_special_ids)
    pairs = {i: j for i, j in initialisation.shared_tokens(pack.tokenizer, source_tokenizer, len(source_rows)).items()
             if i in specials}
    with torch.no_grad():
        rows.copy_(start)
        rows[list(pairs)] = source_rows[list(pairs.values())]
    result["special_rows_copied"] = found(vectors(merged, pack.tokenizer, probe.pool))
    return result


COLUMNS = {"own_to_pack_step0": "step 0 (the init alone)", "own_to_pack": "as trained", "mean_matched": "pool's mean moved", "mean_and_covariance_matched":
           "mean and covariance", "rows_recentred": "rows re-centred", "rows_recentred_by_frequency":
           "rows re-centred, by frequency", "special_rows_copied": "special rows copied"}


def markdown(results: dict) -> str:
    lines = []
    for r in sorted(results.values(), key=lambda r: (r["body"], r["method"])):
        lines.append(f"| {r['body']} | {r['method']} | {r['lever']} | {r['step']:,} | "
                     + " | ".join(f"{r[key]:.3f}" for key in COLUMNS) + " |")
    caption = ("The relearning control's last snapshot, own -> pack retrieval@1 of KJV verses among 1,000 of the WEB's "
               "(chance 0.001), beside its step 0 (step2_levers.py's record), as trained and after each correction that "
               "needs no parallel text (control_alignment.py's docstring).")
    return captioned_table(caption, ["body", "method", "init and rates", "step", *COLUMNS.values()], lines).lstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="step2_levers.py's results")
    parser.add_argument("runs", nargs="+", help="control runs (result file names without .json)")
    parser.add_argument("--packs", type=Path, default=Path("runs/levers/packs"), help="their saved snapshots")
    args = parser.parse_args(argv)
    out = args.folder / "control-alignment.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.runs:
        run = json.loads((args.folder / f"{name}.json").read_text()) | {"name": name}
        if name in results:  # measured already; step 0 is the run's own record
            results[name].setdefault("own_to_pack_step0", run["curve"][0]["retrieval_at_1"])
        else:
            results[name] = measure(run, args.packs)
            print(name, json.dumps(results[name]), flush=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, out)
    (args.folder / "control-alignment.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
