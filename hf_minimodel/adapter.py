"""`MiniModelAdapter`: mini-model adaptation around one full model.

The paper's steps, as methods on the model being adapted: get its mini-model (MiniJoint's export or MiniPost's
build, step 1b), learn target-language embeddings over it (step 2), and put them back into the full model.
"""

import torch
from torch import nn

from .configuration_minimodel import MiniModelConfig
from .modeling_minimodel import MiniModelForMaskedLM, XLMRobertaForDualMLM


def slice_mini_model(full_model: nn.Module, config: MiniModelConfig, head: nn.Module | None = None) -> MiniModelForMaskedLM:
    """The mini-model in one place: the full model's embeddings and bottom `config.mini_num_layers` layers, copied
    into a standalone `MiniModelForMaskedLM`, with `head`'s weights in its MLM head (its decoder stays tied to the
    embeddings). Layers above those, MiniPost's new ones, keep their fresh initialisation.
    """
    reference = full_model.roberta.embeddings.word_embeddings.weight
    mini = MiniModelForMaskedLM(config).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        mini.roberta.embeddings.load_state_dict(full_model.roberta.embeddings.state_dict())
        for i in range(config.mini_num_layers):
            mini.roberta.encoder.layer[i].load_state_dict(full_model.roberta.encoder.layer[i].state_dict())
        if head is not None:
            for name in ("dense", "layer_norm"):
                getattr(mini.lm_head, name).load_state_dict(getattr(head, name).state_dict())
            mini.lm_head.bias.copy_(head.bias)
    return mini.train(full_model.training)


class MiniModelAdapter:
    """Adapts one full model to a new language through its mini-model.

    Args:
        model: the full model. `XLMRobertaForDualMLM` (MiniJoint) carries its own mini-model; any XLM-R masked LM
            can get one with MiniPost.
    """

    def __init__(self, model: nn.Module):
        if not hasattr(model, "roberta"):
            raise TypeError(f"{type(model).__name__} is not an XLM-R model (no .roberta): pass an XLM-R masked LM or XLMRobertaForDualMLM")
        self.model = model

    def export_mini_model(self) -> MiniModelForMaskedLM:
        """MiniJoint's mini-model as a standalone `MiniModelForMaskedLM`: embeddings, the layers below the secondary
        head, and that head. Its logits equal the dual model's `mini_logits`."""
        if not isinstance(self.model, XLMRobertaForDualMLM):
            raise TypeError(
                f"{type(self.model).__name__} has no mini-model head to export: export_mini_model needs MiniJoint's "
                "XLMRobertaForDualMLM; for any other masked LM build one with MiniPost (build_minipost)"
            )
        return slice_mini_model(self.model, self.model.config.for_mini_model(num_new_layers=0), self.model.mini_lm_head)
