"""The Trainer machinery that steps 1, 1b, 2 and 3 share: a Trainer that counts the FLOPs that really run, the
settings every step uses, one function that runs masked-LM training on blocks (`blocks.py`) and reports what it
cost, and the held-out MLM loss. The steps themselves (what is frozen, what is trained) live with their callers.
"""

import contextlib
import logging
import math
import numbers
import os
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import MaskedLMOutput
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .blocks import MaskingEpoch, mlm_blocks, mlm_collator, too_short
from .checks import InputError, check_positive, check_positive_float, check_step_budget
from .configuration_minimodel import is_mini_config
from .defaults import BATCH_SIZE, MLM_PROBABILITY
from .flops import mlm_step_flops
from .modeling_minimodel import mlm_logits_and_loss
from .progress import TiedWeightsNotMissing, close_progress, readable_progress
from .saving import scratch_folder
from .xlmr import sequence_length


def check_mlm_probability(mlm_probability) -> None:
    """Raise `InputError` unless `mlm_probability` is a share of the tokens, above 0 and below 1."""
    if isinstance(mlm_probability, bool) or not isinstance(mlm_probability, numbers.Real) or not 0 < mlm_probability < 1:
        raise InputError(f"mlm_probability={mlm_probability!r}: must be a share of the tokens, above 0 and below 1")


def check_run(config, *, max_steps, learning_rate, batch_size, max_seq_length, save_steps=None,
              mlm_probability=MLM_PROBABILITY) -> int:
    """The checks of a training run that need no data (`run_mlm_training` makes them too, with the blocks it is
    given): callers that tokenise a corpus first make them before it, so that a bad number is refused before the
    work and not after it. `config` is the trained model's. Returns the length of the training blocks
    (`xlmr.sequence_length`: `None` is the default, fitted to the model)."""
    check_step_budget(max_steps)
    check_positive(batch_size=batch_size, save_steps=save_steps)
    check_positive_float(learning_rate=learning_rate)
    check_mlm_probability(mlm_probability)
    return sequence_length(config, max_seq_length, "training blocks")


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


class LogKeeper(TrainerCallback):
    """Keeps the Trainer's log (`state.log_history`) when training ends, for a step that returns no `TrainingReport`
    (step 2 returns its language pack): `minimodel train-embeddings` writes it beside the pack."""

    def __init__(self):
        self.history = []

    def on_train_end(self, args, state, control, **kwargs):
        self.history = list(state.log_history)


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


def held_then_decayed(max_steps: int, decay_share: float, warmup_ratio: float = 0.05) -> dict:
    """Trainer arguments for a rate held after warm-up, then decayed linearly to zero over the last `decay_share` of
    the steps (the Trainer's "warmup_stable_decay"), for `run_mlm_training(**...)` or `train_embeddings(**...)`.

    Why: on step 2 the held rate lets rows travel far from their start and the decay then settles them. It is not
    the default: it ended best on the English relearning control and on French, not everywhere (README, "Held,
    then decayed", has every language's reading)."""
    if not 0 < decay_share <= 1 - warmup_ratio:
        raise InputError(f"decay share {decay_share:g} must be above 0 and at most {1 - warmup_ratio:g} (the steps "
                         f"after warm-up): 0.2 decays over the last fifth")
    return {"lr_scheduler_type": "warmup_stable_decay",
            "lr_scheduler_kwargs": {"num_decay_steps": max(1, round(decay_share * max_steps)), "decay_type": "linear"}}


def last_whole_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest Trainer checkpoint in `output_dir` that the Trainer finished writing (its `trainer_state.json` is
    written last), or None. transformers' `get_last_checkpoint` takes the newest folder, and a run stopped while
    writing one (a session's end, a kill) leaves a folder without its state: resuming from it fails every time,
    while the one before it (kept by `save_total_limit=2`) is whole."""
    found = []
    for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), str(path)))
    return max(found)[1] if found else None


def run_mlm_training(
    model,
    tokenizer,
    train_blocks,
    output_dir,
    *,
    max_steps: int,
    learning_rate: float,
    batch_size: int = BATCH_SIZE,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.0,
    seed: int = 0,
    save_steps: int | None = None,
    logging_steps: int | None = None,
    resume_from_checkpoint=None,
    disable_tqdm: bool | None = None,
    callbacks=None,
    parameter_groups: list[dict] | None = None,
    mlm_probability: float = MLM_PROBABILITY,
    **training_args,
) -> TrainingReport:
    """Train `model`'s trainable parameters by masked LM on `train_blocks` (from `mlm_blocks`) with the Trainer.

    Checkpoints go to `output_dir` every `save_steps` steps (default: none, and `output_dir` is removed again if
    this run created it and left it empty); pass `resume_from_checkpoint=True` or a checkpoint path to continue
    an interrupted run. Progress shows as one bar on stderr (`TrainingProgress`); the logs are in the report.
    `parameter_groups` (torch's optimizer groups, each with its own "lr") replace the Trainer's single AdamW group;
    the warm-up and linear decay still scale every group. `mlm_probability`: the share of tokens masked (BERT's
    15% by default); held-out losses (`heldout_mlm_loss`) always mask 15%, so runs stay comparable.
    """
    check_positive(save_steps=save_steps)
    check_mlm_probability(mlm_probability)
    if resume_from_checkpoint is True:
        resume_from_checkpoint = last_whole_checkpoint(output_dir)
        if resume_from_checkpoint is None:
            raise InputError(f"resume_from_checkpoint=True: no finished checkpoint in {output_dir}: train without it, "
                             "with save_steps so that there is one to resume from next time")
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
        raise InputError(too_short("max_seq_length"))
    sequence_length(model.config, len(first["input_ids"]), "training blocks")
    collator = mlm_collator(tokenizer, mlm_probability=mlm_probability, seed=seed)
    callbacks = [*(callbacks or []), MaskingEpoch(collator)]
    optimizer = None
    if parameter_groups is not None:
        optimizer = torch.optim.AdamW(parameter_groups, lr=learning_rate, weight_decay=weight_decay)
    with scratch_folder(output_dir), labelled_only_forward(model):
        trainer = readable_progress(MLMTrainer(
            model=model, args=args, train_dataset=train_blocks, data_collator=collator,
            processing_class=tokenizer, callbacks=callbacks, optimizers=(optimizer, None),
        ))
        quiet = TiedWeightsNotMissing(model)
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
def heldout_mlm_loss(model, tokenizer, texts, *, max_seq_length: int | None = None, batch_size: int = BATCH_SIZE,
                     seed: int = 0) -> float:
    """Mean masked-LM loss over held-out text in blocks of `max_seq_length` tokens (`xlmr.sequence_length`), with
    masks fixed by `seed` so every model sees the same ones."""
    check_positive(batch_size=batch_size)
    max_seq_length = sequence_length(model.config, max_seq_length, "blocks")
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
