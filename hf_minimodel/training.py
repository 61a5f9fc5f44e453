"""The training machinery that steps 1, 1b and 2 share: masked-LM data, a Trainer that counts the FLOPs that really
run, and one function that runs it. The steps themselves (what is frozen, what is trained) live with their callers.
"""

import ast
import contextlib
from array import array
import hashlib
import logging
import math
import os
import sys
import time
import types
from dataclasses import dataclass, field

import torch
from datasets import Dataset, IterableDataset
from tqdm.auto import tqdm
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import MaskedLMOutput
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .checks import InputError, check_sequence_length, check_positive, check_positive_float, check_step_budget, fix
from .configuration_minimodel import is_mini_config
from .corpus import split_long_text
from .flops import mlm_step_flops
from .modeling_minimodel import mlm_logits_and_loss
from .saving import scratch_folder
from .xlmr import check_fits


# Characters of text tokenised in one call while packing blocks: enough for the Rust tokenizer's batching to pay,
# few enough that its per-token objects (ids, offsets, token strings) stay a few tens of megabytes.
TOKENIZE_CHARS = 2**18


def check_run(model, *, max_steps, learning_rate, batch_size, max_seq_length, save_steps=None) -> None:
    """The checks of a training run that need no data (`run_mlm_training` makes them too, with the blocks it is
    given): callers that tokenise a corpus first make them before it, so that a bad number is refused before the
    work and not after it."""
    check_step_budget(max_steps)
    check_positive(batch_size=batch_size, save_steps=save_steps)
    check_positive_float(learning_rate=learning_rate)
    check_sequence_length(max_seq_length)
    check_fits(model, max_seq_length, "training blocks")


def mlm_blocks(data, tokenizer, max_seq_length: int = 128):
    """Tokenize text (a list of strings or a dataset with a "text" column) and pack it into blocks of
    `max_seq_length` tokens, each line keeping its own `<s> ... </s>`, as RoBERTa's FULL-SENTENCES input does.

    Packing instead of padding one short line per row matters here: Bible verses average ~40 tokens, so padded
    rows would spend most of each step's compute on `<pad>`.

    Each block carries its position in the stream (`"block"`), from which `BlockMasking` draws its masks: a block
    is masked the same way however the batches are split across processes and wherever a run is resumed.

    Memory stays bounded whatever the lines: a text longer than `corpus.MAX_EXAMPLE_CHARS` is cut into pieces
    (each its own `<s> ... </s>`), and a batch's tokens wait for packing in one flat array of machine integers
    rather than as Python ints.
    """
    check_sequence_length(max_seq_length)
    in_memory = isinstance(data, (list, tuple))
    if in_memory:
        data = Dataset.from_dict({"text": list(data)})
    streaming = isinstance(data, IterableDataset)

    def tokenize(pieces, ids):
        if not pieces:
            return
        for row in tokenizer(pieces, add_special_tokens=True, return_attention_mask=False)["input_ids"]:
            ids.extend(row)

    def pack(batch):
        ids, pieces, size = array("q"), [], 0
        for text in batch["text"]:
            for piece in split_long_text(text):
                pieces.append(piece)
                size += len(piece)
                if size >= TOKENIZE_CHARS:  # the tokenizer's own objects for this much text at a time, no more
                    tokenize(pieces, ids)
                    pieces, size = [], 0
        tokenize(pieces, ids)
        blocks = [ids[i : i + max_seq_length].tolist() for i in range(0, len(ids) - max_seq_length + 1, max_seq_length)]
        return {"input_ids": blocks, "attention_mask": [[1] * max_seq_length for _ in blocks]}

    # A streamed dataset may not know its columns up front; every dataset here has "text" (load_text_dataset).
    columns = data.column_names or ["text"]
    kwargs = {} if streaming else {"desc": "Tokenizing and packing"}
    with _no_datasets_bars(in_memory):
        blocks = data.map(pack, batched=True, batch_size=1000, remove_columns=columns, **kwargs)
        blocks = blocks.map(lambda batch, indices: {"block": indices}, batched=True, batch_size=1000, with_indices=True,
                            **({} if streaming else {"desc": "Numbering blocks"}))
    if not streaming and len(blocks) == 0:  # a streamed one is checked when training starts (run_mlm_training)
        raise InputError(_too_short(max_seq_length))
    return blocks


@contextlib.contextmanager
def _no_datasets_bars(quiet: bool):
    """datasets' progress bars off, with `quiet`, for text handed over as a list: it is in memory already and packs
    in moments, so its two bars only flashed by (in every held-out evaluation too), and they came before the
    checks of the training that follows."""
    import datasets

    hide = quiet and not datasets.are_progress_bars_disabled()
    if hide:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if hide:
            datasets.enable_progress_bars()


def check_one_block(data, tokenizer, max_seq_length: int) -> None:
    """Raise `InputError` if the text (as `mlm_blocks` takes it) cannot fill one block of `max_seq_length` tokens,
    reading only as far as it needs: so that a corpus too short is refused before a model is loaded or anything is
    tokenised in full. (`mlm_blocks` packs a batch of 1000 examples at a time and drops what is left of each, so a
    corpus that passes here can still, rarely, give no block there; it says so too.)"""
    check_sequence_length(max_seq_length)
    texts = data if isinstance(data, (list, tuple)) else (row["text"] for row in data)
    tokens = 0
    for text in texts:
        for piece in split_long_text(text):
            tokens += len(tokenizer(piece, add_special_tokens=True, return_attention_mask=False)["input_ids"])
            if tokens >= max_seq_length:
                return
    raise InputError(_too_short(max_seq_length))


def _too_short(max_seq_length) -> str:
    return (f"the text is shorter than one block of {max_seq_length} tokens: pass more text, or a lower "
            f"{fix('max_seq_length', '--max-seq-length')}")


class BlockMasking:
    """BERT masking (15% of tokens; of those 80% `<mask>`, 10% random, 10% kept) in which every block's masks are
    drawn from its own generator, seeded by `(seed, block number, epoch)`.

    A block is therefore masked the same way whichever process collates it and whenever: a run split over N
    processes sees exactly the masks of the same run in one process, and a run resumed from a checkpoint (killed in
    between, its collator's state lost) the masks of the run that never stopped. One generator for the whole stream
    cannot promise either: its state depends on what else it collated, and the data loader collates one batch ahead.
    Each epoch masks again (RoBERTa's dynamic masking), as `MaskingEpoch` tells the collator the epoch. Blocks
    without a number (not from `mlm_blocks`) fall back to the stock collator, one generator seeded by `seed`.
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, seed: int = 0):
        self.fallback = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
        self.mlm_probability, self.seed, self.epoch = mlm_probability, seed, 0
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)

    def __call__(self, examples):
        numbers = [example.get("block") for example in examples]
        if any(number is None for number in numbers):
            return self.fallback([{k: v for k, v in example.items() if k != "block"} for example in examples])
        input_ids = torch.tensor([example["input_ids"] for example in examples])
        # Per block: three uniform draws per position (masked? <mask>? random?) and a random token, from its own
        # generator; the rest is vectorised (the stock collator's per-row Python made collation a third of a GPU step).
        draws, words = [], []
        for number in numbers:
            generator = torch.Generator().manual_seed(_block_seed(self.seed, int(number), self.epoch))
            draws.append(torch.rand(3, input_ids.shape[1], generator=generator))
            words.append(torch.randint(self.vocab_size, (input_ids.shape[1],), generator=generator))
        draws, words = torch.stack(draws), torch.stack(words)
        masked = (draws[:, 0] < self.mlm_probability) & ~torch.isin(input_ids, self.special_ids)
        labels = input_ids.masked_fill(~masked, -100)
        to_mask = masked & (draws[:, 1] < 0.8)
        to_random = masked & ~to_mask & (draws[:, 2] < 0.5)  # half of the other 20%; the rest keep their token
        input_ids = input_ids.masked_fill(to_mask, self.mask_id).where(~to_random, words)
        batch = {"input_ids": input_ids, "labels": labels}
        if "attention_mask" in examples[0]:
            batch["attention_mask"] = torch.tensor([example["attention_mask"] for example in examples])
        return batch


def _block_seed(seed: int, block: int, epoch: int) -> int:
    """A generator seed for one block in one epoch: the same numbers in every process and every run."""
    digest = hashlib.sha256(f"{seed}/{block}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class MaskingEpoch(TrainerCallback):
    """Tells `BlockMasking` which epoch the Trainer is in (also after a resume, which re-enters the epoch)."""

    def __init__(self, collator: BlockMasking):
        self.collator, self.epochs_begun = collator, 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch: where a resumed run re-enters; the count: a stream of unknown length, whose state.epoch the
        # Trainer measures in max_steps and which may run out (and start again) before reaching 1.
        resumed_at = math.floor(state.epoch + 1e-6) if state.epoch else 0
        self.collator.epoch = max(resumed_at, self.epochs_begun)
        self.epochs_begun += 1


def mlm_collator(tokenizer, mlm_probability: float = 0.15, seed: int = 0) -> BlockMasking:
    """The masking collator of every MLM step (`BlockMasking`): with one `seed`, the same masks on every run, which
    is what makes held-out losses of different methods comparable and resumed runs exact."""
    return BlockMasking(tokenizer, mlm_probability=mlm_probability, seed=seed)


def labelled_mlm_loss(model, batch: dict):
    """`(logits, loss)` of any XLM-R masked LM (stock, mini-model) on a batch with `labels`, its MLM head run only at
    labelled positions: the one place the standard approach, the mini-models and held-out evaluation compute it."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = model.roberta(**inputs).last_hidden_state
    return mlm_logits_and_loss(model.lm_head, hidden, batch["labels"], labelled_only=True)


class MeanLossTrainer(Trainer):
    """`Trainer` for models whose loss is a plain mean over their batch, as every model here returns (ours, and
    transformers' own task models).

    Their forward takes **kwargs, from which the Trainer concludes that they normalise the loss by its
    num_items_in_batch: it would then multiply the loss by the number of processes (two ranks logged twice one
    process's loss, tests/test_multiprocess.py) and skip the division by gradient-accumulation steps. This says
    so, with the Trainer's documented switch for such models.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


class MLMTrainer(MeanLossTrainer):
    """`Trainer` for masked LM with honest FLOPs (`state.total_flos`) and the labelled-only head for any XLM-R
    masked LM, so the standard approach (a stock full model) and the mini-models run the same optimised code. Its
    loss is the mean over all processes' masked tokens (`_global_mean`)."""

    def floating_point_ops(self, inputs):
        model = self.accelerator.unwrap_model(self.model)
        batch_size, seq_len = inputs["input_ids"].shape
        labelled_only = getattr(model.config, "mlm_head_on_labelled_only", True)
        positions = int((inputs["labels"] != -100).sum()) if labelled_only else batch_size * seq_len
        return mlm_step_flops(model, batch_size, seq_len, positions)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if self.accelerator.num_processes > 1:
            loss = self._global_mean(loss, inputs["labels"])
        return (loss, outputs) if return_outputs else loss

    def _global_mean(self, loss, labels):
        """Every loss here is a mean over this process's masked tokens. Over several processes, DDP averages their
        gradients, which would weigh a token of a process with few masks more than one of a process with many: the
        gradient of the mean over *all* processes' masked tokens is what one process with the whole batch gets. So
        rescale: mean x local count / global count x processes (DDP's average then divides the processes out)."""
        local = (labels != -100).sum()
        total = self.accelerator.gather(local.reshape(1)).sum()
        return loss * (local.to(loss.dtype) * self.accelerator.num_processes / total.to(loss.dtype))


@contextlib.contextmanager
def labelled_only_forward(model):
    """While training, a stock masked LM's `forward` computes the MLM head at labelled positions only, as ours do.

    A stock `XLMRobertaForMaskedLM` projects every position onto the vocabulary; the standard approach gets the same
    optimisation as the mini-models (`labelled_mlm_loss`), as its `forward`, so that everything the Trainer wraps
    around `forward` still applies: DDP's gradient synchronisation across processes and Accelerate's mixed
    precision. (Calling the model's parts from `compute_loss` instead bypassed both: under bf16 the standard
    approach ran in fp32, 8x slower than MiniJoint on an H100 instead of 2.4x, and under torchrun each process kept
    its own gradients.) The class's `forward` is back when training ends."""
    if is_mini_config(model.config):  # our models: their forward already does this
        yield model
        return

    def forward(self, input_ids=None, attention_mask=None, labels=None, token_type_ids=None, position_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        batch |= {k: v for k, v in (("token_type_ids", token_type_ids), ("position_ids", position_ids)) if v is not None}
        logits, loss = labelled_mlm_loss(self, batch)
        return MaskedLMOutput(loss=loss, logits=logits)

    before = vars(model).get("forward")  # an instance forward of the caller's, if any, comes back afterwards
    model.forward = types.MethodType(forward, model)
    try:
        yield model
    finally:
        vars(model).pop("forward", None)  # whatever wraps ours now (Accelerate's autocast) goes with it
        if before is not None:
            model.forward = before


class TrainingProgress(TrainerCallback):
    """What a person watching training reads: one progress bar on stderr whose postfix shows the latest loss and
    the throughput in tokens/s. It stands in for the Trainer's ProgressCallback, which prints every log dict on
    stdout between redraws of its bar (106 of them in the demo), and for PrinterCallback (`disable_tqdm`), which
    prints them with no bar. The logs themselves stay in `state.log_history` (`TrainingReport.log_history`).
    """

    def __init__(self, description: str = "training"):
        self.description = description
        self.bar = None
        self.mark = None  # (time, tokens seen) at the previous log, for the throughput since then

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, desc=self.description, unit="step", disable=bool(args.disable_tqdm),
                            dynamic_ncols=True, file=sys.stderr)

    def on_step_begin(self, args, state, control, **kwargs):
        # The first step, not on_train_begin: a resumed run has restored its token count by now.
        if self.mark is None:
            self.mark = (time.perf_counter(), state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs or self.mark is None:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        rate = (tokens - self.mark[1]) / max(now - self.mark[0], 1e-9)
        self.mark = (now, tokens)
        self.bar.set_postfix({"loss": f"{float(logs['loss']):.3f}", "tokens/s": f"{rate:,.0f}"}, refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()  # ends the bar's line, so that whatever is printed next has a line of its own
            self.bar = None


def close_progress(trainer: Trainer) -> None:
    """Close the bar of a run that stopped early (Ctrl-C, SIGTERM, an error), which never reaches on_train_end:
    without this, the CLI's "interrupted" line was drawn into the bar's line."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TrainingProgress):
            callback.close()


def readable_progress(trainer: Trainer, description: str = "training") -> Trainer:
    """Swap the Trainer's console output (a bar plus a printed dict per log step) for `TrainingProgress`; a
    notebook's own progress table is left as it is. Returns the trainer."""
    replaced = [trainer.pop_callback(kind) for kind in (ProgressCallback, PrinterCallback)]
    if any(replaced):
        trainer.add_callback(TrainingProgress(description))
    return trainer


class _TiedWeightsNotMissing(logging.Filter):
    """Drops the Trainer's "There were missing keys in the checkpoint" warning on resume when every key it names
    is a tied weight (an MLM decoder, which is the word embeddings): safetensors checkpoints store a shared tensor
    once, the tie restores the rest, and nothing is really missing. Any other missing key still warns."""

    def __init__(self, model):
        super().__init__()
        groups = {}
        for name, tensor in model.state_dict().items():
            groups.setdefault((tensor.data_ptr(), tensor.dtype, tuple(tensor.shape)), []).append(name)
        self.tied = {name for names in groups.values() if len(names) > 1 for name in names}

    def filter(self, record) -> bool:
        message = record.getMessage()
        if not message.startswith("There were missing keys in the checkpoint"):
            return True
        try:
            missing = ast.literal_eval(message[message.index("[") : message.rindex("]") + 1])
        except (ValueError, SyntaxError):
            return True  # a wording we do not know: let it through
        return not set(missing) <= self.tied


@dataclass
class TrainingReport:
    """What a training run cost and how it went: the figures a language pack and the demo table report."""

    steps: int
    tokens: int
    flops: float
    seconds: float
    final_loss: float | None
    log_history: list = field(default_factory=list)

    @classmethod
    def from_trainer(cls, trainer, seconds: float) -> "TrainingReport":
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        return cls(
            steps=trainer.state.global_step,
            tokens=int(trainer.state.num_input_tokens_seen),
            flops=float(trainer.state.total_flos),
            seconds=seconds,
            final_loss=losses[-1] if losses else None,
            log_history=list(trainer.state.log_history),
        )


def training_arguments(
    output_dir, *, max_steps: int, batch_size: int, learning_rate: float, warmup_ratio: float, weight_decay: float,
    seed: int, logging_steps: int, disable_tqdm: bool | None = None, **training_args,
) -> TrainingArguments:
    """The Trainer settings every step shares (1, 1b, 2 and 3): a step budget rather than epochs, linear warm-up,
    seeded data order, no reporting services, and token counting for the throughput reports."""
    # The Trainer reads max_steps <= 0 as "use epochs" and trains 3 of them: a step budget must be a real one.
    check_step_budget(max_steps)
    check_positive(batch_size=batch_size, logging_steps=logging_steps)
    check_positive_float(learning_rate=learning_rate)
    if not 0 <= warmup_ratio <= 1 or weight_decay < 0:
        raise InputError(f"warmup_ratio={warmup_ratio} must be within 0..1 and weight_decay={weight_decay} at least 0")
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6 knows CUDA, XPU, MPS...; older ones CUDA
    has_accelerator = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if not has_accelerator and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun on CPUs the Trainer runs each process alone (every one training on all the data) unless
        # told to use the CPU; told so, it runs DDP over gloo, as on GPUs over NCCL.
        training_args.setdefault("use_cpu", True)
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=math.ceil(warmup_ratio * max_steps),
        weight_decay=weight_decay,
        lr_scheduler_type=training_args.pop("lr_scheduler_type", "linear"),
        logging_steps=logging_steps,
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        include_num_input_tokens_seen="all",
        disable_tqdm=disable_tqdm,
        **training_args,
    )


def run_mlm_training(
    model,
    tokenizer,
    train_blocks,
    output_dir,
    *,
    max_steps: int,
    learning_rate: float,
    batch_size: int = 16,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.0,
    seed: int = 0,
    save_steps: int | None = None,
    logging_steps: int | None = None,
    resume_from_checkpoint=None,
    disable_tqdm: bool | None = None,
    callbacks=None,
    parameter_groups: list[dict] | None = None,
    **training_args,
) -> TrainingReport:
    """Train `model`'s trainable parameters by masked LM on `train_blocks` (from `mlm_blocks`) with the Trainer.

    Checkpoints go to `output_dir` every `save_steps` steps (default: none, and `output_dir` is removed again if
    this run created it and left it empty); pass `resume_from_checkpoint=True` or a checkpoint path to continue
    an interrupted run. Progress shows as one bar on stderr (`TrainingProgress`); the logs are in the report.
    `parameter_groups` (torch's optimizer groups, each with its own "lr") replace the Trainer's single AdamW group;
    the warm-up and linear decay still scale every group.
    """
    check_positive(save_steps=save_steps)
    args = training_arguments(
        output_dir, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=warmup_ratio,
        weight_decay=weight_decay, seed=seed, logging_steps=logging_steps or max(1, max_steps // 20),
        disable_tqdm=disable_tqdm, save_strategy="steps" if save_steps else "no", save_steps=save_steps or max_steps,
        save_total_limit=2,
        # The blocks' numbers must reach the collator (BlockMasking); the Trainer would drop them as unused columns.
        remove_unused_columns=False, **training_args,
    )
    first = next(iter(train_blocks), None)  # a streamed dataset is only read here
    if first is None:
        raise InputError(_too_short("max_seq_length"))
    check_fits(model, len(first["input_ids"]), "training blocks")
    collator = mlm_collator(tokenizer, seed=seed)
    callbacks = [*(callbacks or []), MaskingEpoch(collator)]
    optimizer = None
    if parameter_groups is not None:
        optimizer = torch.optim.AdamW(parameter_groups, lr=learning_rate, weight_decay=weight_decay)
    with scratch_folder(output_dir), labelled_only_forward(model):
        trainer = readable_progress(MLMTrainer(
            model=model, args=args, train_dataset=train_blocks, data_collator=collator,
            processing_class=tokenizer, callbacks=callbacks, optimizers=(optimizer, None),
        ))
        quiet = _TiedWeightsNotMissing(model)
        trainer_logger = logging.getLogger(Trainer.__module__)
        trainer_logger.addFilter(quiet)
        try:
            start = time.perf_counter()
            trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        finally:
            trainer_logger.removeFilter(quiet)
            close_progress(trainer)
    return TrainingReport.from_trainer(trainer, time.perf_counter() - start)


@torch.no_grad()
def heldout_mlm_loss(model, tokenizer, texts, *, max_seq_length: int = 128, batch_size: int = 32, seed: int = 0) -> float:
    """Mean masked-LM loss over held-out text, with masks fixed by `seed` so every model sees the same ones."""
    check_positive(batch_size=batch_size)
    check_fits(model, max_seq_length, "blocks")
    blocks = mlm_blocks(texts, tokenizer, max_seq_length)  # raises if the text is shorter than one block
    collate = mlm_collator(tokenizer, seed=seed)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = collate([blocks[i] for i in range(start, min(start + batch_size, len(blocks)))])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        _, loss = labelled_mlm_loss(model, batch)
        n = int((batch["labels"] != -100).sum())
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / count
