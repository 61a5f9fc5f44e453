"""`MiniModelAdapter`: mini-model adaptation around one full model.

The paper's steps, as methods on the model being adapted: get its mini-model (MiniJoint's export or MiniPost's
build, step 1b), learn target-language embeddings over it (step 2), and put them back into the full model.
"""

import copy

import torch
from torch import nn

from . import freezing
from .checks import WrongModelError, check_pretrained
from .configuration_minimodel import MiniModelConfig
from .merge import to_stock_masked_lm
from .modeling_minimodel import MiniModelForMaskedLM, XLMRobertaForDualMLM, copy_head_
from .registry import register_auto_classes
from .target_embeddings import train_target_embeddings
from .training import mlm_blocks, run_mlm_training


def slice_mini_model(
    full_model: nn.Module, config: MiniModelConfig, head: nn.Module | None = None, num_copied_layers: int | None = None
) -> MiniModelForMaskedLM:
    """The mini-model in one place: the full model's embeddings and bottom layers, copied into a standalone
    `MiniModelForMaskedLM`, with `head`'s weights in its MLM head (its decoder stays tied to the embeddings).

    `num_copied_layers` (default `config.mini_num_layers`) may reach above the shared layers to warm-start
    MiniPost's new layers from the full model's layers at the same depth; layers not copied keep a fresh init.
    """
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


def load_full_model(path_or_repo_id, **kwargs):
    """A full model from a folder or Hub id: MiniJoint's `XLMRobertaForDualMLM` if that is what was saved (its
    config's model type says so), else whatever masked LM `AutoModelForMaskedLM` finds there."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    if not kwargs.get("local_files_only"):
        check_pretrained(path_or_repo_id, token=kwargs.get("token"))
    register_auto_classes()  # a saved dual model's config loads without a remote-code question
    if AutoConfig.from_pretrained(path_or_repo_id).model_type == MiniModelConfig.model_type:
        return XLMRobertaForDualMLM.from_pretrained(path_or_repo_id, **kwargs)
    return AutoModelForMaskedLM.from_pretrained(path_or_repo_id, **kwargs)


class MiniModelAdapter:
    """Adapts one full model to a new language through its mini-model.

    Args:
        model: the full model. `XLMRobertaForDualMLM` (MiniJoint) carries its own mini-model; any XLM-R masked LM
            can get one with MiniPost.
    """

    def __init__(self, model: nn.Module):
        if not hasattr(model, "roberta"):
            raise WrongModelError(f"{type(model).__name__} is not an XLM-R model (no .roberta): pass an XLM-R masked LM or XLMRobertaForDualMLM")
        self.model = model

    def export_mini_model(self) -> MiniModelForMaskedLM:
        """MiniJoint's mini-model as a standalone `MiniModelForMaskedLM`: embeddings, the layers below the secondary
        head, and that head. Its logits equal the dual model's `mini_logits`."""
        if not isinstance(self.model, XLMRobertaForDualMLM):
            raise WrongModelError(
                f"{type(self.model).__name__} has no mini-model head to export: export_mini_model needs MiniJoint's "
                "XLMRobertaForDualMLM; for any other masked LM build one with MiniPost (build_minipost; CLI: `minimodel "
                "minipost`, then --mini-model with its folder)"
            )
        return slice_mini_model(self.model, self.model.config.for_mini_model(num_new_layers=0), self.model.mini_lm_head)

    def build_minipost(
        self,
        tokenizer,
        train_data,
        output_dir,
        *,
        mini_num_layers: int | None = None,
        num_new_layers: int = 1,
        new_layers_init: str = "copy",
        max_steps: int = 1000,
        learning_rate: float = 5e-4,
        batch_size: int = 16,
        max_seq_length: int = 128,
        **training_kwargs,
    ) -> MiniModelForMaskedLM:
        """MiniPost (step 1b): the full model's embeddings and bottom `mini_num_layers` layers, frozen, with
        `num_new_layers` trainable layers and an MLM head on top, trained by masked LM on source-language text.

        Defaults and why: `mini_num_layers` a third of the depth (the config's default); one new layer and a head,
        the paper's example of "a few new parameters", enough to turn layer-k features back into predictions;
        `new_layers_init="copy"` starts the new layer as a copy of the full model's layer at that depth and the head
        as a copy of its final head, so training adapts a working predictor instead of fitting one from noise
        (`"random"` gives the paper's fresh initialisation); 1000 steps at 5e-4, a budget that is small next to step 1
        and that it shares with every target language, as this mini-model is built once per base model.

        What the run cost (steps, tokens, FLOPs, seconds) stays on the adapter as `minipost_report`.
        """
        if new_layers_init not in ("copy", "random"):
            raise ValueError(f"new_layers_init={new_layers_init!r}: use 'copy' or 'random'")
        base = self.model.config
        depth = base.num_hidden_layers
        mini_kwargs = {"mini_num_new_layers": 0}
        if mini_num_layers is not None:
            mini_kwargs["mini_num_layers"] = mini_num_layers
        config = MiniModelConfig.from_base_config(base, **mini_kwargs).for_mini_model(num_new_layers)
        k = config.mini_num_layers
        copied = min(k + num_new_layers, depth) if new_layers_init == "copy" else k
        mini = slice_mini_model(self.model, config, head=self.model.lm_head if new_layers_init == "copy" else None, num_copied_layers=copied)
        freezing.for_step1b(mini, k)
        blocks = mlm_blocks(train_data, tokenizer, max_seq_length)
        self.minipost_report = run_mlm_training(
            mini, tokenizer, blocks, output_dir,
            max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, **training_kwargs,
        )
        mini.requires_grad_(True)
        return mini.eval()

    def full_masked_lm(self):
        """A copy of the full model as a stock `XLMRobertaForMaskedLM` (MiniJoint's secondary head dropped): what the
        standard approach trains and what merged models are saved as, loadable without remote code. Always a new
        model, so callers may change it in place."""
        stock = to_stock_masked_lm(self.model)
        return copy.deepcopy(stock) if stock is self.model else stock

    def train_embeddings(self, target_tokenizer, train_data, output_dir, *, mini_model=None, **step2_kwargs):
        """Step 2: learn target embeddings over `mini_model` (MiniJoint's export or MiniPost's build), or, with no
        mini-model, over the full model (the standard approach). Returns a `LanguagePack`; see
        `train_target_embeddings` for the options (init, budget, language, source_tokenizer...)."""
        model = mini_model if mini_model is not None else self.full_masked_lm()
        return train_target_embeddings(model, target_tokenizer, train_data, output_dir, **step2_kwargs)

    def merge(self, pack, check_base: bool = True):
        """The full model with the pack's target embeddings in place of its own, as a new stock masked LM (the
        adapter's model is left as it is). Save it with `save_merged_model`."""
        return pack.apply(self.full_masked_lm(), check_base=check_base)
