"""Reproduce the paper's experiment (Marchisio et al., 2023) at small scale on Bible text: how much step-2 compute
mini-model adaptation saves over the standard approach, how close it comes in accuracy, and what step 2 adds to
where it starts.

A recipe over hf_minimodel's API, top to bottom, every stage cached in --work so it can run in parts:
  step 1   two English source models with one budget: plain MLM (the standard approach's and MiniPost's) and dual
           MLM (MiniJoint's), trained here (from scratch or --init-model) or given (--source-model, --dual-model);
  step 1b  MiniPost's mini-model from the plain model;
  step 2   per target language and init (--inits): a tokenizer, then embeddings by each method, with snapshots from
           step 0 (the pack as initialised); --relearn-control also relearns English from init mean (no source row);
  step 3   English task models per source model (verse genre, paraphrase), embedding layer frozen;
  step 4   every snapshot swapped into its task model (retrieval: into the source model) and scored zero-shot.
`hf_minimodel.speedup` sums up each method's start, best and gain, and the paper's speed-up where the standard
approach gained; `benchmarks/report.py` lays out reproduce.json, .md and .png.

    python benchmarks/reproduce.py                                   # toy bodies trained here (about an hour)
    python benchmarks/reproduce.py --init-model e5-small --tasks bible-genre bible-paraphrase bible-retrieval
    python benchmarks/reproduce.py --init-model minilm --inits random-paper overlap compose   # English-only body
"""

import argparse
import functools
import time
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, XLMRobertaForMaskedLM

from hf_minimodel import (
    LanguagePack, LearningCurve, MiniModelAdapter, MiniModelForMaskedLM, XLMRobertaForDualMLM, ZeroShotEvaluation,
    all_minilm_l6, e5_small, finetune, load_task, load_task_model, pretrain_mlm, source_config, train_target_tokenizer,
)
from hf_minimodel.methods import METHODS
from hf_minimodel.tasks import RETRIEVAL
from hf_minimodel.tasks.bible import TRANSLATIONS
from hf_minimodel.tasks.bible_tasks import PARAPHRASE_PAIRS, default_code, language_texts

import report
from work import cached_folder, cached_json, cached_step, check_settings, progress, spread_tag

TASKS = ("bible-genre", "bible-paraphrase", RETRIEVAL)  # retrieval: step 4 without step 3, no task model
SOURCE_OF = {"standard": "plain", "minipost": "plain", "minijoint": "dual"}  # which step-1 model each method adapts
BODIES = {"e5-small": e5_small, "minilm": all_minilm_l6}  # --init-model names built offline

# Every default in one place, sized for about 70 minutes on 2 CPU cores (README, results).
DEFAULTS = dict(
    languages=["fr", "es", "de", "ru", "ar"], methods=list(METHODS), tasks=["bible-genre", "bible-paraphrase"],
    inits=["overlap"], work=Path("runs/reproduce"), output_dir=Path("benchmarks/results"), hidden_size=128,
    num_layers=6, mini_num_layers=2, vocab_size=8000, source_steps=2000, source_lr=1e-3, body_lr=None,
    minipost_lr=None, minipost_steps=300, step2_steps=1000, step2_lr=3e-3, step2_start_lr=None, snapshots=8,
    step3_steps=600, step3_lr=1e-4, task_train_examples=20000, task_test_examples=2000, batch_size=32,
    # Steps 1, 1b and 2 pack text into blocks of this many tokens. A verse is about 35, so 64 loses little context
    # and halves each step's cost; steps 3-4 keep 128 tokens so that verse pairs fit whole.
    max_seq_length=64, seed=0, max_verses=None, standard_source="plain", init_model=None, source_model=None,
    dual_model=None, bf16=False, relearn_control=False,
)
# What the caches in --work do not depend on: everything else is checked against the folder (work.check_settings).
# Step-2 packs are named by language, method, init and steps, so inits and languages may be added to a folder.
NOT_CACHED = ("languages", "methods", "tasks", "inits", "work", "output_dir", "relearn_control")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--languages", nargs="+", help="target languages (ISO 639-1) with a Bible translation")
    add("--methods", nargs="+", choices=METHODS, help="step-2 methods")
    add("--tasks", nargs="+", choices=TASKS, help="paraphrase exists for the languages of PARAPHRASE_PAIRS only")
    add("--inits", nargs="+", help="step 2's starting rows, each a run of its own (hf_minimodel.initialisation.INITS)")
    add("--work", type=Path, help="cache of every stage; rerun with the same folder to resume")
    add("--output-dir", type=Path, help="where reproduce.json, .md and .png go")
    for flag, kind, text in [
        ("--hidden-size", int, "of source models trained from scratch"), ("--num-layers", int, "ditto"),
        ("--mini-num-layers", int, "of the mini-models (a --dual-model brings its own)"),
        ("--vocab-size", int, "of the target tokenizers (and a scratch English one)"),
        ("--source-steps", int, "step 1, both source models"), ("--source-lr", float, "step 1's MLM heads"),
        ("--body-lr", float, "step 1 from --init-model: the body's own, lower rate (default --source-lr)"),
        ("--minipost-lr", float, "step 1b (default --source-lr)"), ("--minipost-steps", int, "step 1b"),
        ("--step2-steps", int, "step 2, per language, init and method"), ("--step2-lr", float, "step 2"),
        ("--step2-start-lr", float, "step 2's rate for rows the init took from the source (default --step2-lr)"),
        ("--snapshots", int, "step-2 snapshots after step 0, evenly spaced"), ("--step3-steps", int, "step 3"),
        ("--step3-lr", float, "step 3"), ("--task-train-examples", int, "English examples for step 3"),
        ("--task-test-examples", int, "test examples per language (retrieval: candidates)"),
        ("--batch-size", int, "every step"), ("--max-seq-length", int, "tokens per block in steps 1, 1b and 2"),
        ("--seed", int, "every step, and the task samples"),
        ("--max-verses", int, "at most this many training verses per translation (quick trials)"),
    ]:
        add(flag, type=kind, help=text)
    add("--bf16", action="store_true", help="bf16 mixed precision in every Trainer (GPU)")
    add("--init-model", help="step 1 continues from this encoder (vocabulary kept): a folder, a Hub id, or "
        f"{' / '.join(BODIES)} (offline)")
    add("--source-model", help="a plain XLM-R masked LM folder used as step 1's plain model")
    add("--dual-model", help="a saved XLMRobertaForDualMLM folder used as step 1's dual model")
    add("--relearn-control", action="store_true", help="also relearn English from mean rows (init mean) over each method")
    add("--standard-source", choices=["plain", "dual"], help="the source model the standard approach adapts")
    parser.set_defaults(**DEFAULTS)
    args = parser.parse_args(argv)
    if args.snapshots < 1:
        parser.error("--snapshots must be at least 1")
    return args


def source_of(args, method) -> str:
    return args.standard_source if method == "standard" else SOURCE_OF[method]


def init_model_path(name: str) -> str:
    return str(BODIES[name]()) if name in BODIES else name


def tokenizer_for(args, name, train):
    """A new tokenizer of --vocab-size pieces trained on `train` (cached as tokenizers/`name`)."""
    return AutoTokenizer.from_pretrained(cached_folder(args.work / "tokenizers" / name, lambda tmp: train_target_tokenizer(
        train, vocab_size=args.vocab_size).save_pretrained(tmp)))


def source_tokenizer(args):
    given = args.source_model or args.dual_model or (args.init_model and init_model_path(args.init_model))
    if given:
        return AutoTokenizer.from_pretrained(given)
    return tokenizer_for(args, "en", language_texts("en", max_verses=args.max_verses))


def pretrained_source(args, name, tokenizer):
    """Step 1: the plain or the dual English model, from one seed, data and budget."""
    torch.manual_seed(args.seed)
    dual = {} if name == "plain" else {"mini_num_layers": args.mini_num_layers}
    model_class = XLMRobertaForMaskedLM if name == "plain" else XLMRobertaForDualMLM
    if args.init_model:  # continued training of a pretrained encoder: both source models start from it
        model = model_class.from_pretrained(init_model_path(args.init_model), **dual)
    else:
        model = model_class(source_config(tokenizer, hidden_size=args.hidden_size, num_layers=args.num_layers, **dual))
    english = language_texts("en", max_verses=args.max_verses)
    done = pretrain_mlm(model, tokenizer, english, args.work / "ckpt" / f"source-{name}", max_steps=args.source_steps,
                        learning_rate=args.source_lr, batch_size=args.batch_size, weight_decay=0.01, seed=args.seed,
                        max_seq_length=args.max_seq_length, train_word_embeddings=not args.init_model,
                        body_learning_rate=args.body_lr, bf16=args.bf16)
    return model, tokenizer, {"step1.json": {"steps": done.steps, "flops": done.flops, "seconds": done.seconds,
                                             "final_loss": done.final_loss, "verses": len(english)}}


def source_models(args, tokenizer) -> dict:
    """Step 1 (cached), or given: the source model each method adapts, by source_of's names."""
    models = {}
    for name in sorted({source_of(args, method) for method in args.methods}):
        given = args.source_model if name == "plain" else args.dual_model
        folder = given or cached_step(args.work / f"source-{name}", functools.partial(pretrained_source, args, name, tokenizer),
                                      "step 1", "en", name)
        models[name] = (AutoModelForMaskedLM if name == "plain" else XLMRobertaForDualMLM).from_pretrained(folder)
    return models


def minipost_model(args, plain, tokenizer):
    """Step 1b (cached)."""
    def make():
        adapter = MiniModelAdapter(plain)
        english = language_texts("en", max_verses=args.max_verses)
        mini = adapter.build_minipost(tokenizer, english, args.work / "ckpt" / "minipost",
                                      mini_num_layers=args.mini_num_layers, max_steps=args.minipost_steps,
                                      learning_rate=args.minipost_lr or args.source_lr, batch_size=args.batch_size,
                                      seed=args.seed, max_seq_length=args.max_seq_length, bf16=args.bf16)
        done = adapter.minipost_report
        return mini, None, {"step1b.json": {"steps": done.steps, "flops": done.flops, "seconds": done.seconds,
                                            "final_loss": done.final_loss}}

    return MiniModelForMaskedLM.from_pretrained(cached_step(args.work / "minipost", make, "step 1b", "en", "minipost"))


def snapshot_steps(max_steps: int, count: int) -> list[int]:
    """Step 0, then `count` global steps evenly spaced over step 2, the last one `max_steps`."""
    return sorted({0} | {max(1, round(max_steps * i / count)) for i in range(1, count + 1)})


def snapshot_packs(args, source_name, model, tokenizer, language, method, mini, init) -> Path:
    """Step 2 (cached): one folder per (language, method, init) with a pack per snapshot, `step-{N}` from step 0.
    `language="en-relearned"` is the control: English embeddings learned again from no source row (init mean), the
    language and body the model's own, so that if the English task model fails with them, no target language can
    transfer. Over a pretrained vocabulary it relearns a new English tokenizer of --vocab-size, to cost what a
    target costs."""
    relearn = language == "en-relearned"
    def make(tmp):
        started = time.perf_counter()
        train = language_texts("en" if relearn else language, max_verses=args.max_verses)
        pretrained = args.init_model or args.source_model or args.dual_model
        new_tokenizer = tokenizer if relearn and not pretrained else tokenizer_for(args, "en-new" if relearn else language, train)
        curve = LearningCurve(snapshot_steps(args.step2_steps, args.snapshots))
        pack = MiniModelAdapter(model).train_embeddings(
            new_tokenizer, train, args.work / "ckpt" / "step2" / tmp.name, mini_model=mini, source_tokenizer=tokenizer,
            init=init, language="en" if relearn else language, base_model=f"reproduce.py {source_name} source",
            max_steps=args.step2_steps, learning_rate=args.step2_lr, start_rows_learning_rate=args.step2_start_lr,
            batch_size=args.batch_size, seed=args.seed, max_seq_length=args.max_seq_length, callbacks=[curve], bf16=args.bf16,
        )
        for snapshot in curve.packs(pack):
            snapshot.save_pretrained(tmp / f"step-{snapshot.metadata['train_steps']}")
        progress("step 2", language, method, init, since=started)

    name = "-".join(part for part in (language, method, init, spread_tag(init), f"{args.step2_steps}steps") if part)
    return cached_folder(args.work / "packs" / name, make)


def task_model_folder(args, source_name, model, tokenizer, task_name) -> Path:
    """Step 3 (cached): an English task model on one source model, embedding layer frozen."""
    folder = args.work / "tasks" / f"{source_name}-{task_name}"

    def make():
        task = load_task(task_name, "en", "train", max_examples=args.task_train_examples, seed=args.seed)
        trained, done = finetune(load_task_model(model, task.kind, task.label_names), tokenizer, task.dataset,
                                 args.work / "ckpt" / "step3" / folder.name, kind=task.kind, max_steps=args.step3_steps,
                                 learning_rate=args.step3_lr, batch_size=args.batch_size, seed=args.seed, bf16=args.bf16)
        return trained, None, {"step3.json": {"steps": done.steps, "seconds": done.seconds, "final_loss": done.final_loss}}

    return cached_step(folder, make, "step 3", "en", source_name, task_name)


def step4(args, task_name, language) -> ZeroShotEvaluation:
    """The test data of `language`, read once per task and language (retrieval: `bible_tasks.retrieval_codes`)."""
    return ZeroShotEvaluation(task_name, [language], num_candidates=args.task_test_examples,
                              max_examples=args.task_test_examples, seed=args.seed)


def transfer_run(args, model, tokenizer, task_name, language, method, init, packs) -> dict:
    """Step 4 (cached): every snapshot of one pack folder, zero-shot on the language's test split (retrieval@1 for
    retrieval). `model()` loads step 3's task model (retrieval: the source model) only if there is something to do."""
    scored_language = "en" if language == "en-relearned" else language

    def compute():
        started, evaluation = time.perf_counter(), step4(args, task_name, scored_language)
        folders = sorted(packs.glob("step-*"), key=lambda folder: int(folder.name.split("-")[1]))
        curve = evaluation.curve(model(), scored_language, map(LanguagePack.from_pretrained, folders), tokenizer=tokenizer)
        progress("step 4", language, method, init, task_name, since=started, note=f"best {max(p['accuracy'] for p in curve):.3f}")
        return {"language": scored_language, "script": TRANSLATIONS[default_code(scored_language)].script,
                "task": task_name, "method": method, "init": init, "control": language == "en-relearned",
                "majority_baseline": evaluation.baseline(scored_language), "n": evaluation.size(scored_language),
                "curve": curve}

    return cached_json(args.work / "eval" / f"{packs.name}-{task_name}.json", compute)


def own_vocabulary_run(args, model, tokenizer, task_name, language, source_name) -> dict:
    """The language read with the source model's own vocabulary, no step 2: English itself (the source language), or
    a target language (an upper line for a multilingual body, a baseline for an English-only one)."""
    def compute():
        evaluation = step4(args, task_name, language)
        return {"language": language, "task": task_name, "source": source_name,
                "accuracy": evaluation.score(model(), language, tokenizer=tokenizer)[evaluation.metric],
                "majority_baseline": evaluation.baseline(language), "n": evaluation.size(language)}

    return cached_json(args.work / "eval" / f"own-{source_name}-{language}-{task_name}.json", compute)


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    report.check_matplotlib()  # before an hour's work: the plot is drawn last
    if args.source_model and not args.dual_model and "minijoint" in args.methods:
        print("note: MiniJoint is skipped: --source-model is a plain model, pass --dual-model for MiniJoint's dual model")
        args.methods = [method for method in args.methods if method != "minijoint"]
    check_settings(args, parse_args([]), NOT_CACHED)

    tokenizer = source_tokenizer(args)
    sources = source_models(args, tokenizer)
    minis = {"standard": None}
    if "minijoint" in args.methods:
        minis["minijoint"] = MiniModelAdapter(sources["dual"]).export_mini_model()
    if "minipost" in args.methods:
        minis["minipost"] = minipost_model(args, sources["plain"], tokenizer)

    targets = [(language, init) for language in args.languages for init in args.inits]
    targets += [("en-relearned", "mean")] if args.relearn_control else []
    packs = {(language, method, init): snapshot_packs(args, source_of(args, method), sources[source_of(args, method)],
                                                      tokenizer, language, method, minis[method], init)
             for language, init in targets for method in args.methods}

    task_folders = {(source, task): task_model_folder(args, source, model, tokenizer, task)
                    for source, model in sources.items() for task in args.tasks if task != RETRIEVAL}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    @functools.cache
    def task_model(source, task):  # loaded on first use: a rerun with every result cached loads none
        if task == RETRIEVAL:
            return sources[source].to(device)
        return AutoModelForSequenceClassification.from_pretrained(task_folders[source, task]).to(device)

    runs, own = [], []
    for task in args.tasks:
        for language in ["en", *args.languages]:
            if task == "bible-paraphrase" and language not in PARAPHRASE_PAIRS:
                continue
            own += [own_vocabulary_run(args, functools.partial(task_model, source, task), tokenizer, task, language, source)
                    for source in sources]
        for (language, method, init), folder in packs.items():
            if task != "bible-paraphrase" or language == "en-relearned" or language in PARAPHRASE_PAIRS:
                runs.append(transfer_run(args, functools.partial(task_model, source_of(args, method), task), tokenizer,
                                         task, language, method, init, folder) | {"source": source_of(args, method)})

    results = report.results(runs, own, args, seconds=time.perf_counter() - started)
    report.write(results, args.output_dir)
    return results


if __name__ == "__main__":
    main()
