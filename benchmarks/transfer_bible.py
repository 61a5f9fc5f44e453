"""Zero-shot cross-lingual transfer on the Bible tasks, end to end, on 2 CPU cores.

A recipe over hf_minimodel's API, top to bottom, every stage cached in --work so it can run in parts:
  step 1   an English MiniJoint source model, pretrained on the train split of two English translations;
  step 1b  MiniPost's mini-model from its full path;
  step 2   per target language: a tokenizer, then embeddings with the standard approach, MiniJoint and MiniPost;
  step 3   English task models (verse genre, paraphrase), embedding layer frozen;
  step 4   each language pack swapped into each task model, evaluated zero-shot on the language's test split.
The split is by verse id (whole chapters): no test verse is seen in any step, in any language.

    python benchmarks/transfer_bible.py --languages fr es de
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_minimodel import (
    LanguagePack,
    MiniModelAdapter,
    MiniModelForMaskedLM,
    XLMRobertaForDualMLM,
    pretrain_mlm,
    train_target_tokenizer,
)
from hf_minimodel.bible import verses_for
from hf_minimodel.saving import atomic_directory
from hf_minimodel.bible_tasks import PARAPHRASE_PAIRS, default_code
from hf_minimodel.tasks import load_task
from hf_minimodel.training import source_config
from hf_minimodel.transfer import evaluate_zero_shot, finetune, load_task_model

ENGLISH = ("k", "4")  # KJV and WEB: both public domain
TASKS = ("bible-genre", "bible-paraphrase")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", default=["fr", "es", "de"])
    parser.add_argument("--methods", nargs="+", default=["standard", "minijoint", "minipost"])
    parser.add_argument("--work", type=Path, default=Path("runs/transfer_bible"))
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/transfer_bible.json"))
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=6)
    parser.add_argument("--mini-num-layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--source-steps", type=int, default=1500)
    parser.add_argument("--minipost-steps", type=int, default=300)
    parser.add_argument("--step2-steps", type=int, default=1200)
    parser.add_argument("--step3-steps", type=int, default=600)
    parser.add_argument("--task-train-examples", type=int, default=20000)
    parser.add_argument("--task-test-examples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def texts(codes, split="train"):
    return [text for code in codes for _, text in verses_for(code, split)]


def source_model(args):
    """Step 1 (cached): English tokenizer and MiniJoint model."""
    folder = args.work / "source"
    if not folder.exists():
        english = texts(ENGLISH)
        tokenizer = train_target_tokenizer(english, vocab_size=args.vocab_size)
        torch.manual_seed(args.seed)
        model = XLMRobertaForDualMLM(source_config(tokenizer, hidden_size=args.hidden_size, num_layers=args.num_layers,
                                                   num_heads=max(1, args.hidden_size // 32), mini_num_layers=args.mini_num_layers))
        report = pretrain_mlm(model, tokenizer, english, args.work / "ckpt-step1", max_steps=args.source_steps,
                              learning_rate=1e-3, batch_size=args.batch_size, weight_decay=0.01, seed=args.seed, save_steps=500)
        with atomic_directory(folder) as tmp:  # a killed run never leaves a folder that looks finished
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "step1.json").write_text(json.dumps({"steps": report.steps, "flops": report.flops, "seconds": report.seconds,
                                                        "final_loss": report.final_loss, "verses": len(english)}))
    return XLMRobertaForDualMLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def minipost_model(args, adapter, tokenizer):
    """Step 1b (cached)."""
    folder = args.work / "minipost"
    if not folder.exists():
        mini = adapter.build_minipost(tokenizer, texts(ENGLISH), args.work / "ckpt-step1b", mini_num_layers=args.mini_num_layers,
                                      max_steps=args.minipost_steps, learning_rate=1e-3, batch_size=args.batch_size, seed=args.seed)
        with atomic_directory(folder) as tmp:
            mini.save_pretrained(tmp)
    return MiniModelForMaskedLM.from_pretrained(folder)


def language_pack(args, adapter, source_tokenizer, language, method, mini):
    """Step 2 (cached): one language pack per language and method."""
    folder = args.work / "packs" / f"{language}-{method}-{args.step2_steps}steps"
    if not folder.exists():  # LanguagePack.save_pretrained is atomic
        codes = PARAPHRASE_PAIRS.get(language, (default_code(language),))
        train = texts(codes)
        tok_folder = args.work / "tokenizers" / language
        if not tok_folder.exists():
            with atomic_directory(tok_folder) as tmp:
                train_target_tokenizer(train, vocab_size=args.vocab_size).save_pretrained(tmp)
        pack = adapter.train_embeddings(
            AutoTokenizer.from_pretrained(tok_folder), train, args.work / "ckpt-step2" / folder.name, mini_model=mini,
            source_tokenizer=source_tokenizer, language=language, base_model="transfer_bible source",
            max_steps=args.step2_steps, learning_rate=3e-3, batch_size=args.batch_size, seed=args.seed,
        )
        pack.save_pretrained(folder)
    return LanguagePack.from_pretrained(folder)


def task_model(args, full, tokenizer, task_name):
    """Step 3 (cached): an English task model with the embedding layer frozen."""
    folder = args.work / "tasks" / task_name
    if not folder.exists():
        task = load_task(task_name, "en", "train", max_examples=args.task_train_examples, seed=args.seed)
        model = load_task_model(full, task.kind, task.label_names)
        model, report = finetune(model, tokenizer, task.dataset, args.work / "ckpt-step3" / task_name, kind=task.kind,
                                 max_steps=args.step3_steps, learning_rate=1e-4, batch_size=args.batch_size, seed=args.seed)
        with atomic_directory(folder) as tmp:
            model.save_pretrained(tmp)
            (tmp / "step3.json").write_text(json.dumps({"steps": report.steps, "seconds": report.seconds, "final_loss": report.final_loss}))
    return AutoModelForSequenceClassification.from_pretrained(folder)


def main():
    args = parse_args()
    started = time.perf_counter()
    full, source_tokenizer = source_model(args)
    adapter = MiniModelAdapter(full)
    minis = {"standard": None}
    if "minijoint" in args.methods:
        minis["minijoint"] = adapter.export_mini_model()
    if "minipost" in args.methods:
        minis["minipost"] = minipost_model(args, adapter, source_tokenizer)

    rows = []
    for task_name in TASKS:
        model = task_model(args, full, source_tokenizer, task_name)
        english = load_task(task_name, "en", "test", max_examples=args.task_test_examples, seed=args.seed)
        result = evaluate_zero_shot(model, english.dataset, tokenizer=source_tokenizer)
        rows.append({"task": task_name, "language": "en", "method": "source (no transfer)", **result})
        for language in args.languages:
            target = load_task(task_name, language, "test", max_examples=args.task_test_examples, seed=args.seed)
            for method in args.methods:
                pack = language_pack(args, adapter, source_tokenizer, language, method, minis[method])
                result = evaluate_zero_shot(model, target.dataset, pack=pack)
                rows.append({"task": task_name, "language": language, "method": method, **result,
                             "step2_flops": pack.metadata["train_flops"], "step2_seconds": pack.metadata["train_seconds"]})
                print(f"{task_name:<17} {language:<3} {method:<10} accuracy {result['accuracy']:.3f}  majority {result['majority_baseline']:.3f}", flush=True)

    results = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
               "total_seconds": round(time.perf_counter() - started, 1), "torch_threads": torch.get_num_threads()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"\n{'task':<17} {'lang':<4} {'method':<21} {'accuracy':>8} {'majority':>8} {'n':>6} {'step-2 FLOPs':>13}")
    for row in rows:
        flops = f"{row['step2_flops']:.2e}" if "step2_flops" in row else ""
        print(f"{row['task']:<17} {row['language']:<4} {row['method']:<21} {row['accuracy']:>8.3f} {row['majority_baseline']:>8.3f} "
              f"{row['num_examples']:>6} {flops:>13}")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
