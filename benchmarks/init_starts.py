"""Step 2's start without step 2: each init's rows, step-0 held-out masked-LM loss and English->target retrieval@1,
per language, on one source body (`compare_inits`, what `minimodel inits` prints). No training: this is the start
every learning curve of the benchmark begins from.

    python benchmarks/init_starts.py --source runs/levers/e5-plain/step-2000 --languages fr es de ru ar
    python benchmarks/init_starts.py --source runs/levers/minilm-plain/step-2000 --languages en fr es de ru ar

"en" is the relearning control (a new English tokenizer, KJV verses found among the WEB's).

Tokenizers are shared with benchmarks/step2_levers.py (--work/tokenizers/<language>-<vocab size>). One JSON per
language and source in --output.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, XLMRobertaForMaskedLM

from hf_minimodel import compare_inits, evaluate_retrieval, train_target_tokenizer
from hf_minimodel.saving import atomic_directory
from hf_minimodel.tasks.bible import verses_for
from hf_minimodel.tasks.bible_tasks import language_texts, retrieval_codes, retrieval_task


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--source", required=True, help="a step-1 masked LM folder (its MLM head scores the loss)")
    parser.add_argument("--languages", nargs="+", default=["fr"])
    parser.add_argument("--inits", nargs="+", default=["random-paper", "random", "mean", "overlap", "compose", "focus"])
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--heldout-verses", type=int, default=500)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path("runs/levers"))
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/inits"))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = XLMRobertaForMaskedLM.from_pretrained(args.source).eval()
    source_tokenizer = AutoTokenizer.from_pretrained(args.source)
    name = f"{Path(args.source).parent.name}-{Path(args.source).name}"
    for language in args.languages:
        path = args.output / f"{name}-{language}-v{args.vocab_size}.json"
        if path.exists():
            print(f"{path} exists: skipped")
            continue
        started = time.perf_counter()
        train = language_texts(language)
        folder = args.work / "tokenizers" / f"{language}-{args.vocab_size}"
        if not folder.exists():
            with atomic_directory(folder) as tmp:
                train_target_tokenizer(train, vocab_size=args.vocab_size).save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        # As step2_levers.py: English ("en", the relearning control) finds KJV verses among the WEB's.
        query, pool = retrieval_codes("en", language)
        probe = retrieval_task(query, pool, "test", num_candidates=args.candidates, seed=0)
        heldout = [text for _, text in verses_for(pool, "test")][: args.heldout_verses]
        own = evaluate_retrieval(model, source_tokenizer, probe, tokenizer=source_tokenizer)["retrieval_at_1"]
        reports = compare_inits(model, tokenizer, heldout, source_tokenizer=source_tokenizer, inits=args.inits,
                                corpus=train, max_seq_length=args.max_seq_length,
                                retrieval=lambda pack: evaluate_retrieval(model, source_tokenizer, probe, pack=pack)
                                ["retrieval_at_1"])
        for report in reports:
            print(language, report.summary(), flush=True)
        args.output.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "source": args.source, "language": language, "vocab_size": len(tokenizer),
            "own_vocabulary_retrieval_at_1": own, "chance": 1 / args.candidates,
            "reports": [report.to_dict() for report in reports], "seconds": round(time.perf_counter() - started, 1),
            "torch_threads": torch.get_num_threads(),
        }, indent=2) + "\n")
        print(f"{path}: own vocabulary {own:.3f}")


if __name__ == "__main__":
    main()
