"""The mini-model: the full model's embeddings and bottom k layers with an MLM head on top, as a standalone
`MiniModelForMaskedLM` over which step 2 learns the new language's embeddings.

The paper's two ways to get one:
- **MiniJoint** (`export_minijoint`): cut out of `XLMRobertaForDualMLM`, whose second head after layer k was trained
  jointly with the full model in step 1 (`pretraining.py`).
- **MiniPost** (`build_minipost`, step 1b): cut out of any pretrained masked LM, its embeddings and k layers frozen,
  with a few new trainable parameters on top (one layer and an MLM head by default) trained on source text.

Both cut through `cut_mini_model`, the one place a mini-model is cut, and record which way they took in the
mini-model's config (`config.mini_method`, saved in its config.json): step 2 reads the method from there, and every
language pack carries it. The cut also records the full model's base fingerprint (`config.base_fingerprint`,
`xlmr.base_fingerprint`), so that step 2 refuses a mini-model cut from another base model, as merging refuses a
language pack trained for another one.
"""

import torch
from torch import nn

from . import freezing
from .checks import InputError, WrongModelError, fix
from .configuration_minimodel import MiniModelConfig
from .xlmr import base_fingerprint
from .defaults import BATCH_SIZE, MINIPOST_NEW_LAYERS, STEP1B
from .methods import METHODS
from .modeling_minimodel import MiniModelForMaskedLM, XLMRobertaForDualMLM, copy_head_
from .blocks import mlm_blocks
from .training import TrainingReport, check_run, run_mlm_training


def cut_mini_model(full_model: nn.Module, config: MiniModelConfig, head: nn.Module | None = None,
                   num_copied_layers: int | None = None, *, share: bool = False) -> MiniModelForMaskedLM:
    """The full model's embeddings and bottom layers as a standalone `MiniModelForMaskedLM` described by `config`
    (`MiniModelConfig.for_mini_model`), with `head`'s weights in its MLM head (its decoder tied to the embeddings).

    The parts are copies: training the mini-model leaves the full model as it was. `num_copied_layers` (default
    `config.mini_num_layers`) may reach above the shared layers to warm-start MiniPost's new layers from the full
    model's layers at the same depth; layers not copied keep a fresh init. `share=True` makes the mini-model's
    modules the full model's own instead (a view, no copy, no new layers): what a benchmark needs to time every
    depth on one set of weights. `config.base_fingerprint` is set to the full model's.
    """
    config.base_fingerprint = base_fingerprint(full_model)
    if share:
        if config.mini_num_new_layers:
            raise InputError("share=True cuts a view of the full model's own layers: it can have no new layers")
        with torch.device("meta"):  # no memory for weights that are replaced at once
            mini = MiniModelForMaskedLM(config)
        mini.roberta.embeddings = full_model.roberta.embeddings
        mini.roberta.encoder.layer = nn.ModuleList(full_model.roberta.encoder.layer[: config.mini_num_layers])
        mini.lm_head = head if head is not None else full_model.lm_head
        return mini.train(full_model.training)
    num_copied_layers = config.mini_num_layers if num_copied_layers is None else num_copied_layers
    reference = full_model.roberta.embeddings.word_embeddings.weight
    mini = MiniModelForMaskedLM(config).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        mini.roberta.embeddings.load_state_dict(full_model.roberta.embeddings.state_dict())
        for i in range(num_copied_layers):
            mini.roberta.encoder.layer[i].load_state_dict(full_model.roberta.encoder.layer[i].state_dict())
        if head is not None:
            copy_head_(mini.lm_head, head)
    return mini.train(full_model.training)


def no_minijoint_head(name: str) -> WrongModelError:
    """The error for a MiniJoint export from a model without the dual model's secondary head."""
    return WrongModelError(
        f"{name} has no mini-model head to export: MiniJoint's export needs XLMRobertaForDualMLM; for any other masked "
        f"LM build one with MiniPost ({fix('build_minipost', '`minimodel minipost`, then --mini-model with its folder')})"
    )


def minipost_config(full_config, mini_num_layers: int | None = None,
                    num_new_layers: int = MINIPOST_NEW_LAYERS) -> MiniModelConfig:
    """The configuration of MiniPost's mini-model of a model with `full_config` (checked: a ValueError names an
    impossible depth), before anything is loaded or trained."""
    mini_kwargs = {"mini_num_new_layers": 0}
    if mini_num_layers is not None:
        mini_kwargs["mini_num_layers"] = mini_num_layers
    config = MiniModelConfig.from_base_config(full_config, **mini_kwargs).for_mini_model(num_new_layers)
    config.mini_method = "minipost"
    return config


def export_minijoint(model: XLMRobertaForDualMLM) -> MiniModelForMaskedLM:
    """MiniJoint's mini-model: the dual model's embeddings, the layers below its secondary head, and that head.
    Its logits equal the dual model's `mini_logits`."""
    if not isinstance(model, XLMRobertaForDualMLM):
        raise no_minijoint_head(type(model).__name__)
    config = model.config.for_mini_model(num_new_layers=0)
    config.mini_method = "minijoint"
    return cut_mini_model(model, config, model.mini_lm_head)


def build_minipost(
    model,
    tokenizer,
    train_data,
    output_dir,
    *,
    mini_num_layers: int | None = None,
    num_new_layers: int = MINIPOST_NEW_LAYERS,
    new_layers_init: str = "copy",
    max_steps: int = STEP1B.steps,
    learning_rate: float = STEP1B.learning_rate,
    batch_size: int = BATCH_SIZE,
    max_seq_length: int | None = None,
    **training_kwargs,
) -> tuple[MiniModelForMaskedLM, TrainingReport]:
    """MiniPost (step 1b): `model`'s embeddings and bottom `mini_num_layers` layers, frozen, with `num_new_layers`
    trainable layers and an MLM head on top, trained by masked LM on source-language text. Returns the mini-model
    and what its training cost.

    Defaults and why: `mini_num_layers` a third of the depth (the config's default); one new layer and a head,
    the paper's example of "a few new parameters", enough to turn layer-k features back into predictions;
    `new_layers_init="copy"` starts the new layer as a copy of the full model's layer at that depth and the head
    as a copy of its final head, so training adapts a working predictor instead of fitting one from noise
    (`"random"` gives the paper's fresh initialisation); 1000 steps at 5e-4, a budget that is small next to step 1
    and that it shares with every target language, as this mini-model is built once per base model.
    """
    if new_layers_init not in ("copy", "random"):
        raise InputError(f"new_layers_init={new_layers_init!r}: use 'copy' or 'random'")
    depth = model.config.num_hidden_layers
    config = minipost_config(model.config, mini_num_layers, num_new_layers)
    k = config.mini_num_layers
    copied = min(k + num_new_layers, depth) if new_layers_init == "copy" else k
    mini = cut_mini_model(model, config, head=model.lm_head if new_layers_init == "copy" else None, num_copied_layers=copied)
    freezing.for_step1b(mini, k)
    max_seq_length = check_run(mini.config, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                               max_seq_length=max_seq_length, save_steps=training_kwargs.get("save_steps"))  # before the corpus is tokenised
    blocks = mlm_blocks(train_data, tokenizer, max_seq_length)
    report = run_mlm_training(mini, tokenizer, blocks, output_dir, max_steps=max_steps, learning_rate=learning_rate,
                              batch_size=batch_size, **training_kwargs)
    mini.requires_grad_(True)
    return mini.eval(), report


def method_of(model, stated: str | None = None) -> str:
    """The paper's name for the model step 2 runs on, read from its config (so a mini-model loaded as remote code,
    whose class is not this package's, is known too): "standard" for a full model, else what the mini-model
    recorded when it was cut. `stated` (where a run starts: the CLI, a recipe) must agree with the record; for a
    mini-model saved before the method was recorded (hf-minimodel 0.1.0) it is taken as given, and without it the
    method is told by the new layers, which only MiniPost adds."""
    if stated is not None and stated not in METHODS:
        raise InputError(f"method={stated!r} is not one of {METHODS}")
    config = model.config
    recorded = getattr(config, "mini_method", None)
    if recorded is None and getattr(config, "full_num_hidden_layers", None) is None:
        recorded = "standard"  # not cut from anything: a full model
    if stated is None:
        return recorded or ("minipost" if config.mini_num_new_layers else "minijoint")
    if recorded is None and stated == "standard" or recorded is not None and stated != recorded:
        given = {"standard": "a full model", None: "a mini-model"}.get(recorded, f"a {recorded} mini-model")
        raise InputError(f"method={stated!r}, but the model given is {given} (method {recorded or 'not recorded'!r}): "
                         "pass the model of the method you mean, or leave method out")
    return stated
