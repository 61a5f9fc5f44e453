"""What a person watching training sees: one progress bar with the loss and tokens/s instead of the Trainer's
printed log dicts, and no warning about tied weights "missing" from a checkpoint they were never saved in.
"""

import ast
import logging
import sys
import time

from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback


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


class TiedWeightsNotMissing(logging.Filter):
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
