"""Step 2: learn target-language word embeddings by masked LM, everything else frozen.

The same function serves the standard approach (the full model) and mini-model adaptation (a MiniJoint or MiniPost
mini-model): only the model passed in differs, so the two compare honestly.
"""

import copy
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from . import freezing
from .cards import base_license
from .language_pack import LanguagePack
from .freezing import mlm_heads
from .merge import merge_embeddings
from .xlmr import base_fingerprint, check_pad_id
from .mini_model import method_of
from .initialisation import InitReport, TargetStart, initial_target_embeddings
from .defaults import BATCH_SIZE, MLM_PROBABILITY, STEP2
from .methods import DEFAULT_INIT, INITS, NEEDS_CORPUS, NEEDS_SOURCE_TOKENIZER
from .tokenizer import check_mlm_tokenizer
from .checks import InputError, check_positive_float, fix
from .blocks import check_one_block, mlm_blocks
from .training import check_run, heldout_mlm_loss, run_mlm_training
from .saving import atomic_file, is_main_process

def anchor_rows_(model, rows) -> None:
    """Keep `rows` of the word embeddings (and of each MLM head's output bias) where they are during step 2.

    Why: over a small, weak body, masked LM can be solved by many embedding matrices, most of them rotated away from
    the source vocabulary's coordinates, and a task head fine-tuned on source text then reads target text as noise.
    Shared tokens held at their source rows pin the new vocabulary to the source's coordinates. Their gradients are
    zeroed by hooks (a tied decoder is the same parameter, so its gradient is zeroed too); AdamW then leaves them
    exactly as they are, provided there is no weight decay, which `train_target_embeddings` checks.
    """
    if not rows:
        raise InputError("init='anchored' found no token the source and target vocabularies share: "
                         + fix("use init='mean'", "use --init mean"))
    index = torch.tensor(sorted(rows), dtype=torch.long)
    on_device = {}  # one copy of the index per device, made on the first backward pass

    def zero_rows(grad):
        rows_here = on_device.setdefault(grad.device, index.to(grad.device))
        return grad.index_fill(0, rows_here, 0)

    model.get_input_embeddings().weight.register_hook(zero_rows)
    for head in mlm_heads(model):
        if head.bias.requires_grad:
            head.bias.register_hook(zero_rows)


def start_target_vocabulary(model, target_tokenizer, source_tokenizer=None, init: str = DEFAULT_INIT, seed: int = 0,
                            *, corpus=None, noise: float | None = None) -> TargetStart:
    """Put step 2's starting embeddings for the target vocabulary into `model` (in place); returns the start, with
    its `InitReport` (`initialisation.initial_target_embeddings`)."""
    start = initial_target_embeddings(model, target_tokenizer, source_tokenizer, init, seed, corpus=corpus, noise=noise)
    merge_embeddings(model, start.embeddings, target_tokenizer, start.output_bias)
    return start


def compare_inits(model, target_tokenizer, heldout_texts, *, source_tokenizer=None, inits=None, corpus=None,
                  seed: int = 0, max_seq_length: int | None = None, retrieval=None) -> list[InitReport]:
    """Step 0 of each init, measured before any training, so that inits can be compared for free: for each, its
    `InitReport` (rows per rule, norms) with `step0` holding the held-out masked-LM loss of `model` (a full masked
    LM, left as it is) speaking the target vocabulary from that start, and `retrieval(pack)` if given (for embedding
    models: e.g. `lambda pack: evaluate_retrieval(model, tokenizer, probe, pack=pack)["retrieval_at_1"]`).
    `corpus` (target text) is what `init="focus"` and `"focus-compose"` train fastText vectors on. `inits` defaults
    to every init that needs no optional package and no more than is given (the source tokenizer)."""
    if inits is None:
        inits = [init for init in INITS if init != "anchored" and init not in NEEDS_CORPUS
                 and (source_tokenizer is not None or init not in NEEDS_SOURCE_TOKENIZER)]
    reports = []
    for init in inits:
        work = copy.deepcopy(model)
        start = start_target_vocabulary(work, target_tokenizer, source_tokenizer, init, seed, corpus=corpus)
        start.report.step0["heldout_mlm_loss"] = heldout_mlm_loss(work, target_tokenizer, heldout_texts,
                                                                  max_seq_length=max_seq_length, seed=seed)
        if retrieval is not None:
            pack = LanguagePack(target_tokenizer, start.embeddings, start.output_bias,
                                {"init": init, "base_fingerprint": base_fingerprint(model)})
            start.report.step0["retrieval_at_1"] = retrieval(pack)
        reports.append(start.report)
    return reports


def device_name(device) -> str:
    """What step 2 ran on, for the pack's card: the GPU's name, or the CPU with its thread count (the step-2 cost in
    seconds means little without it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type.upper()} ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)


def check_step2(config, target_tokenizer, train_data=None, *, init: str = DEFAULT_INIT, max_steps: int = STEP2.steps,
                learning_rate: float = STEP2.learning_rate, start_rows_learning_rate: float | None = None,
                batch_size: int = BATCH_SIZE, max_seq_length: int | None = None, weight_decay: float | None = None,
                save_steps: int | None = None, mlm_probability: float = MLM_PROBABILITY) -> int:
    """Step 2's checks that need no weights, only the config of the model it runs on: a target tokenizer for masked
    LM, the run's numbers, the model's pad id kept, and with `train_data`, text that fills one block (read only as
    far as that takes). Returns the blocks' length (`xlmr.sequence_length`). `train_target_embeddings` makes them
    first (the text aside: it reads it whole anyway); `minimodel train-embeddings`, before it loads the model."""
    check_mlm_tokenizer(target_tokenizer)
    if init == "anchored" and weight_decay:
        raise InputError("init='anchored' holds the shared rows fixed, and weight decay would shrink them: "
                         + fix("pass weight_decay=0, or use init='overlap'", "use --init overlap"))
    if start_rows_learning_rate is not None:
        check_positive_float(start_rows_learning_rate=start_rows_learning_rate)
    max_seq_length = check_run(config, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                               max_seq_length=max_seq_length, save_steps=save_steps, mlm_probability=mlm_probability)
    check_pad_id(target_tokenizer.pad_token_id, config.pad_token_id)
    if train_data is not None:
        check_one_block(train_data, target_tokenizer, max_seq_length)
    return max_seq_length


def _step2_callbacks(callbacks, work, start, rate: float | None) -> list:
    """The caller's callbacks, each learning curve given its step 0 (`work` as initialised), and, with `rate`, the
    rows the init took from the source trained at that multiple of the learning rate (`RowRate`)."""
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if isinstance(callback, LearningCurve):
            callback.take_start(work)
    from_source = start.rows("copied", "composed", "similar")
    if rate is not None and from_source:
        callbacks.append(RowRate(from_source, rate))
    return callbacks


def train_target_embeddings(
    model,
    target_tokenizer,
    train_data,
    output_dir,
    *,
    source_tokenizer=None,
    init: str = DEFAULT_INIT,
    method: str | None = None,
    language: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    max_steps: int = STEP2.steps,
    learning_rate: float = STEP2.learning_rate,
    start_rows_learning_rate: float | None = None,
    init_noise: float | None = None,
    mlm_probability: float = MLM_PROBABILITY,
    batch_size: int = BATCH_SIZE,
    max_seq_length: int | None = None,
    seed: int = 0,
    **training_kwargs,
) -> LanguagePack:
    """Step 2 on `model` (a mini-model, or the full model for the standard approach); returns the language pack.

    `model` is left as it is: the new vocabulary goes into a copy. `train_data` is a list of strings or a dataset
    with a "text" column; `output_dir` receives the Trainer's checkpoints (`resume_from_checkpoint=True` continues).
    `license` (a Hub licence id) goes into the pack's card; by default the base model's, when its model card is on
    this machine (`cards.base_license`), else none ("unknown" on the card).

    `init` chooses the starting rows (`initialisation.INITS`; its report goes into the pack's metadata as
    `init_report`; `init_noise`: `initialisation.initial_target_embeddings`'s `noise`, None for the init's own).
    `start_rows_learning_rate` trains the rows the init took from the source (copied, composed or FOCUS-mixed) at
    their own rate, while the other rows train at `learning_rate`: a rate high enough to move a new row into place
    moves a row that started in place out of it. `mlm_probability`: the share of tokens masked (15% by default),
    recorded in the pack with the other settings. The rest (`save_steps`, `callbacks`...) go to
    `training.run_mlm_training`.

    The pack records the method ("standard", "minijoint", "minipost"): "standard" for a full model, else what the
    mini-model recorded when it was cut (`mini_model.py`). `method=` states it where the run starts, and is checked
    against the model.
    """
    method = method_of(model, method)  # stated, or read from the model's config; checked either way
    max_seq_length = check_step2(model.config, target_tokenizer, init=init, max_steps=max_steps, learning_rate=learning_rate,
                                 start_rows_learning_rate=start_rows_learning_rate, batch_size=batch_size,
                                 max_seq_length=max_seq_length, weight_decay=training_kwargs.get("weight_decay"),
                                 save_steps=training_kwargs.get("save_steps"), mlm_probability=mlm_probability)
    fingerprint = base_fingerprint(model)
    work = copy.deepcopy(model)
    start = start_target_vocabulary(work, target_tokenizer, source_tokenizer, init, seed, corpus=train_data, noise=init_noise)
    freezing.for_step2(work)
    if init == "anchored":
        anchor_rows_(work, start.rows("copied"))
    rate = None if start_rows_learning_rate is None or init == "anchored" else start_rows_learning_rate / learning_rate
    callbacks = _step2_callbacks(training_kwargs.pop("callbacks", None), work, start, rate)
    blocks = mlm_blocks(train_data, target_tokenizer, max_seq_length)
    report = run_mlm_training(
        work, target_tokenizer, blocks, output_dir, callbacks=callbacks,
        max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed,
        mlm_probability=mlm_probability, **training_kwargs,
    )
    base_model = base_model or getattr(work.config, "name_or_path", None) or None
    settings = dict(language=language, base_model=base_model, base_fingerprint=fingerprint, init=init,
                    license=license or base_license(base_model), max_seq_length=max_seq_length, batch_size=batch_size,
                    learning_rate=learning_rate, start_rows_learning_rate=start_rows_learning_rate,
                    mlm_probability=mlm_probability,
                    **({"init_noise": start.report.noise} if start.report.noise is not None else {}))
    return LanguagePack(tokenizer=target_tokenizer, embeddings=work.get_input_embeddings().weight.detach().clone(),
                        output_bias=work.lm_head.bias.detach().clone(),
                        metadata=_step2_record(work, method, start, report) | settings)


def _step2_record(work, method: str, start, report) -> dict:
    """What the pack records of step 2 itself: the model it ran on, its start and what it cost (totals over all
    processes, as the Trainer counts them)."""
    config = work.config
    return {
        "method": method,
        "mini_num_layers": getattr(config, "mini_num_layers", None) if method != "standard" else None,
        "step2_num_layers": config.num_hidden_layers,
        "init_rows_copied": start.report.rows["copied"],
        "init_report": start.report.to_dict(),
        "train_steps": report.steps,
        "train_tokens": report.tokens,
        "train_flops": report.flops,
        "train_seconds": round(report.seconds, 3),
        "train_device": device_name(work.device),
        "train_final_loss": report.final_loss,
    }


class RowRate(TrainerCallback):
    """Some rows of the word embeddings (and of each MLM head's bias) train at `ratio` times the optimizer's rate.

    One parameter cannot sit in two optimizer groups, so the update is scaled instead: the optimizer steps, then the
    chosen rows are put back at `before + ratio * (after - before)`. With Adam this is exactly a rate of `ratio`
    times the group's for those rows (Adam's step does not depend on the gradient's scale, so scaling gradients
    would change nothing). The hooks are the optimizer's public step hooks, installed when training begins.
    """

    def __init__(self, rows, ratio: float):
        self.rows, self.ratio = torch.tensor(sorted(rows), dtype=torch.long), float(ratio)
        self.handles = []

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        parameters = [model.get_input_embeddings().weight, *(head.bias for head in mlm_heads(model))]
        parameters = list({id(p): p for p in parameters if p.requires_grad}.values())
        saved = {}

        def before(optimizer, args, kwargs):
            for p in parameters:
                saved[id(p)] = p.detach()[self.rows.to(p.device)].clone()

        def after(optimizer, args, kwargs):
            with torch.no_grad():
                for p in parameters:
                    rows = self.rows.to(p.device)
                    old = saved.pop(id(p))
                    p[rows] = old + self.ratio * (p[rows] - old)

        inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper steps the torch optimizer inside
        self.handles = [inner.register_step_pre_hook(before), inner.register_step_post_hook(after)]

    def on_train_end(self, args, state, control, **kwargs):
        for handle in self.handles:
            handle.remove()
        self.handles = []


class LearningCurve(TrainerCallback):
    """Language packs taken along step 2, with what each cost: the learning curve that tells how much compute a
    method needs to reach an accuracy (the paper's speed-up is read off two such curves).

    ```python
    curve = LearningCurve(steps=[250, 500, 1000])
    pack = train_target_embeddings(mini, tokenizer, texts, "step2", max_steps=1000, callbacks=[curve])
    for snapshot in curve.packs(pack):   # step 0 (the pack as initialised), 250, 500, 1000
        print(snapshot.metadata["train_steps"], snapshot.metadata["train_flops"])
    ```

    Every curve starts at step 0, the pack as initialised, before any step-2 step: what step 2 adds is the gain over
    that start, and a close start (copied or composed rows) can carry most of the accuracy by itself.
    Each later snapshot records the trained weights (word embeddings, MLM output bias), the Trainer's FLOPs and
    tokens counted up to that step (a log is forced at each snapshot step, which is when the Trainer brings its
    FLOPs count up to date), and the seconds spent training so far; the time the snapshots themselves take is left
    out.

    With `folder`, a run can stop and go on: each snapshot is also written there (`step-N.safetensors`) and read back
    by a new curve over the same folder, and each Trainer checkpoint records the seconds so far, so a run resumed
    from it (`save_steps=...`, then `resume_from_checkpoint=True`) counts on from them (the checkpoints' own saving
    counts as training time, as in any run that saves them).
    """

    def __init__(self, steps, folder=None):
        steps = sorted(set(int(step) for step in steps))
        if not steps or steps[0] < 0:
            raise InputError(f"LearningCurve steps must be step numbers of at least 0, got {steps}")
        self.steps = steps if steps[0] == 0 else [0, *steps]
        self.taken = {}  # step -> dict of embeddings, output_bias, seconds, flops, tokens
        self.offset = 0.0  # the training seconds spent before this process resumed the run
        # With a folder, each finished snapshot is also written there and read back here, so a run resumed from a
        # Trainer checkpoint (another process, another day) keeps the snapshots taken before it stopped.
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None:
            for step in self.steps:
                if (path := self._path(step)).is_file():
                    self.taken[step] = self._read(path)

    def _path(self, step: int) -> Path:
        return self.folder / f"step-{step}.safetensors"

    @staticmethod
    def _read(path: Path) -> dict:
        with safe_open(path, framework="pt") as snapshot:
            cost = snapshot.metadata()
            return {"embeddings": snapshot.get_tensor("embeddings"), "output_bias": snapshot.get_tensor("output_bias"),
                    "seconds": float(cost["seconds"]), "flops": float(cost["flops"]), "tokens": int(cost["tokens"])}

    def _write(self, step: int) -> None:
        if self.folder is None:
            return
        taken = self.taken[step]
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self._path(step)) as tmp:  # a snapshot is whole or absent, never half-written
            save_file({"embeddings": taken["embeddings"].contiguous(), "output_bias": taken["output_bias"].contiguous()},
                      str(tmp), metadata={key: str(taken[key]) for key in ("seconds", "flops", "tokens")})

    def take_start(self, model) -> None:
        """Step 0: `model`'s rows as step 2 starts them (`train_target_embeddings` calls this before training, so a
        resumed run has its start too)."""
        self.taken[0] = {**self._weights(model), "seconds": 0.0, "flops": 0.0, "tokens": 0}
        if is_main_process():
            self._write(0)

    @staticmethod
    def _weights(model) -> dict:
        return {"embeddings": model.get_input_embeddings().weight.detach().to("cpu", copy=True),
                "output_bias": mlm_heads(model)[0].bias.detach().to("cpu", copy=True)}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.started, self.paused = time.perf_counter(), 0.0
        if state.global_step == 0 and 0 not in self.taken:
            self.take_start(model)
        lost = [step for step in self.steps if 0 < step <= state.global_step and step not in self.taken]
        if lost:  # said now, not after the whole run, when `packs` would find them missing
            raise InputError(f"resuming at step {state.global_step}, the learning curve has no snapshots for its steps "
                             f"{lost}, taken before the stop: give LearningCurve the folder the stopped run wrote "
                             f"them to, or only steps after {state.global_step}")
        if state.global_step > 0:  # resumed: the seconds go on from those the checkpoint recorded (below)
            clock = self._checkpoint(args, state) / self.CLOCK
            if clock.is_file():
                self.offset = json.loads(clock.read_text())["seconds"]
            else:  # a checkpoint from elsewhere, or a stop before its clock was written: the last snapshot's (fewer)
                self.offset = max(t["seconds"] for step, t in self.taken.items() if step <= state.global_step)

    CLOCK = "learning_curve_seconds.json"

    @staticmethod
    def _checkpoint(args, state) -> Path:
        """The Trainer's checkpoint folder for the current step (where `on_save` writes the clock, and a resumed run
        reads it)."""
        return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"

    def _seconds(self) -> float:
        return self.offset + time.perf_counter() - self.started - self.paused

    def on_save(self, args, state, control, **kwargs):
        if self.folder is not None and state.is_world_process_zero:
            checkpoint = self._checkpoint(args, state)
            if checkpoint.is_dir():
                with atomic_file(checkpoint / self.CLOCK) as tmp:  # a cut-off write must not stop the resume
                    tmp.write_text(json.dumps({"seconds": self._seconds()}) + "\n")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step not in self.steps:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the clock must see the step's kernels finish, not only their launch
        now = time.perf_counter()
        self.taken[state.global_step] = {**self._weights(model), "seconds": self.offset + now - self.started - self.paused}
        control.should_log = True  # so that on_log sees state.total_flos brought up to this step
        self.paused += time.perf_counter() - now
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        taken = self.taken.get(state.global_step)
        if taken is not None and "flops" not in taken:
            taken["flops"] = float(state.total_flos)
            taken["tokens"] = int(state.num_input_tokens_seen)
            if state.is_world_process_zero:
                began = time.perf_counter()
                self._write(state.global_step)
                self.paused += time.perf_counter() - began  # writing a snapshot is not training either

    def packs(self, final: LanguagePack) -> list[LanguagePack]:
        """One language pack per snapshot, in step order from step 0: `final`'s tokenizer and metadata, with the
        snapshot's weights and its steps, tokens, FLOPs and seconds."""
        missing = [step for step in self.steps if step not in self.taken]
        if missing:
            raise InputError(f"step 2 ended before the learning curve's steps {missing}: ask for steps up to max_steps")
        return [
            LanguagePack(
                final.tokenizer, taken["embeddings"], taken["output_bias"],
                final.metadata | {"train_steps": step, "train_tokens": taken["tokens"], "train_flops": taken["flops"],
                                  "train_seconds": round(taken["seconds"], 3),
                                  "train_final_loss": final.metadata["train_final_loss"] if step == final.metadata["train_steps"] else None},
            )
            for step, taken in sorted(self.taken.items())
        ]
