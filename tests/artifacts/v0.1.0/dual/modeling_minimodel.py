"""Models of mini-model adaptation (Marchisio et al., "Mini-Model Adaptation", Findings of ACL 2023).

* `XLMRobertaForDualMLM`: MiniJoint's step-1 model. One XLM-R encoder with the usual MLM head on its last layer and
  a secondary MLM head on layer `mini_num_layers`; the mini-model is the embeddings, the layers below that head, and
  the head.
* `MiniModelForMaskedLM`: a mini-model on its own (embeddings, bottom layers, MiniPost's new layers, MLM head), with
  the exact parameter layout of a stock `XLMRobertaForMaskedLM`, only shallower.

This file travels to the Hub as remote code: it imports only torch, transformers and its configuration file.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import XLMRobertaForMaskedLM, XLMRobertaModel, XLMRobertaPreTrainedModel
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaLMHead
from transformers.utils import ModelOutput

from .configuration_minimodel import MiniModelConfig


def mlm_logits_and_loss(head: nn.Module, hidden_states: torch.Tensor, labels: torch.Tensor | None, labelled_only: bool):
    """Apply an MLM head and, with `labels`, its cross-entropy loss.

    With `labelled_only`, only rows whose label is not -100 go through the head: the mean cross-entropy over
    labelled positions is the same number, but the vocabulary projection (the dominant cost at large vocabularies)
    runs on ~15% of the positions. The logits then have shape `(num_labelled, vocab_size)`.
    """
    if labels is None:
        return head(hidden_states), None
    labels = labels.to(hidden_states.device)
    if labelled_only:
        keep = labels != -100
        hidden_states, labels = hidden_states[keep], labels[keep]
    logits = head(hidden_states)
    # Upcast: in bf16 the log-softmax over a 250k vocabulary loses the small probabilities the loss is made of.
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
    return logits, loss


@torch.no_grad()
def copy_head_(target: nn.Module, source: nn.Module) -> None:
    """Copy an MLM head's own weights (dense, layer norm, output bias) into another; decoders stay tied to their
    model's embeddings, so they are not copied."""
    for name in ("dense", "layer_norm"):
        getattr(target, name).load_state_dict(getattr(source, name).state_dict())
    target.bias.copy_(source.bias)


def embed_and_mask(roberta, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds):
    """The embedding layer's output and the attention mask in the form the layers expect, as `XLMRobertaModel` does.

    Public API only: this file runs as remote code under whatever transformers the user has, so a private method
    of `XLMRobertaModel` (5.24 renamed an argument of `_create_attention_masks`) would break every saved model.
    `create_bidirectional_mask` is public in every 5.x release; its second parameter was `input_embeds` up to 5.1
    and `inputs_embeds` from 5.2, so the three arguments go by position, which no release has changed.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    hidden = roberta.embeddings(
        input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
    )
    return hidden, create_bidirectional_mask(roberta.config, hidden, attention_mask)


class MiniLMHead(XLMRobertaLMHead):
    """XLM-R's MLM head with its output bias added in `forward` instead of tied into the decoder.

    Only the decoder weight is tied (to the word embeddings). Tying a second bias as the stock head does makes
    transformers warn that the checkpoint "seems corrupted" whenever the head is new, which is every time a stock
    checkpoint is loaded into `XLMRobertaForDualMLM`.
    """

    def __init__(self, config):
        super().__init__(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, features, **kwargs):
        return super().forward(features) + self.bias


class _LoadsWithAutoModel:
    """`save_pretrained` maps `AutoModel` as well as `AutoModelForMaskedLM` to this class in `auto_map`.

    A class registers for one auto class only; users of the Hub reach for `AutoModel` first, and the model they
    want back is this one, heads included.
    """

    def save_pretrained(self, *args, **kwargs):
        name = f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), "AutoModel": name}
        return super().save_pretrained(*args, **kwargs)


@dataclass
class DualMaskedLMOutput(ModelOutput):
    """Output of `XLMRobertaForDualMLM`.

    Args:
        loss: `full_loss + mini_loss_weight * mini_loss` (MiniJoint's joint loss); with `mini_only=True`, `mini_loss`.
        logits: the primary (last-layer) head's scores. With labels (and `mlm_head_on_labelled_only`), only the
            labelled rows: shape `(num_labelled, vocab_size)`.
        full_loss: the primary head's MLM loss alone.
        mini_loss: the secondary (mini-model) head's MLM loss.
        mini_logits: the secondary head's scores, shaped like `logits`.
        hidden_states: with `output_hidden_states=True`, the embeddings' output then each computed layer's output.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    full_loss: torch.FloatTensor | None = None
    mini_loss: torch.FloatTensor | None = None
    mini_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class XLMRobertaForDualMLM(_LoadsWithAutoModel, XLMRobertaForMaskedLM):
    """XLM-R with a second MLM head at layer `config.mini_num_layers`: MiniJoint's step-1 model.

    Loading a stock checkpoint (`XLMRobertaForDualMLM.from_pretrained("FacebookAI/xlm-roberta-base",
    mini_num_layers=4)`) loads every stock weight unchanged, so the primary logits equal the stock model's. Only the
    secondary head (`mini_lm_head`) is new: its decoder is tied to the input word embeddings like the primary head's,
    and its dense layer, layer norm and output bias start as a copy of the primary head's. That copy is a warm start
    (the primary head already maps hidden states to this vocabulary), not a claim that layer-k features look like
    last-layer features; MiniJoint training then fits it to layer k. Built from a config (no checkpoint), the head is
    initialised like any transformers head: normal(0, initializer_range) weights, unit layer norm, zero bias.
    """

    config_class = MiniModelConfig
    _tied_weights_keys = {
        **XLMRobertaForMaskedLM._tied_weights_keys,
        "mini_lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
    }

    def __init__(self, config: MiniModelConfig):
        config.check_mini_model()
        if config.is_standalone_mini_model:
            raise ValueError("this config describes a standalone mini-model: load it with MiniModelForMaskedLM")
        if config.mini_num_new_layers:
            raise ValueError(
                f"mini_num_new_layers={config.mini_num_new_layers}: MiniJoint's mini-model has no new layers; "
                "set it to 0 (new layers on top of a pretrained model are MiniPost: MiniModelAdapter.build_minipost)"
            )
        # The stock __init__ ties weights in post_init(), before a second head could exist; build both heads first.
        XLMRobertaPreTrainedModel.__init__(self, config)
        self.lm_head = XLMRobertaLMHead(config)
        self.mini_lm_head = MiniLMHead(config)
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if any(key.startswith("mini_lm_head.") for key in info["missing_keys"]):
            copy_head_(model.mini_lm_head, model.lm_head)
        return (model, info) if output_loading_info else model

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        mini_only: bool = False,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> DualMaskedLMOutput:
        r"""
        mini_only (`bool`, *optional*, defaults to `False`):
            Stop after the mini-model: the layers above `mini_num_layers` and the primary head are not computed, and
            `loss` is the mini loss. This is the mini-model's forward pass, in place.
        """
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        labelled_only = self.config.mlm_head_on_labelled_only
        k = self.config.mini_num_layers
        hidden, mask = embed_and_mask(self.roberta, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        all_hidden = [hidden]
        layers = self.roberta.encoder.layer
        for layer in layers[:k]:
            hidden = layer(hidden, mask)
            all_hidden.append(hidden)
        mini_logits, mini_loss = mlm_logits_and_loss(self.mini_lm_head, hidden, labels, labelled_only)
        logits = full_loss = None
        if not mini_only:
            for layer in layers[k:]:
                hidden = layer(hidden, mask)
                all_hidden.append(hidden)
            logits, full_loss = mlm_logits_and_loss(self.lm_head, hidden, labels, labelled_only)
        if labels is None:
            loss = None
        elif mini_only:
            loss = mini_loss
        else:
            loss = full_loss + self.config.mini_loss_weight * mini_loss
        return DualMaskedLMOutput(
            loss=loss,
            logits=logits,
            full_loss=full_loss,
            mini_loss=mini_loss,
            mini_logits=mini_logits,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
        )


class MiniModelForMaskedLM(_LoadsWithAutoModel, XLMRobertaForMaskedLM):
    """A mini-model on its own: embeddings, the full model's bottom `mini_num_layers` layers, MiniPost's
    `mini_num_new_layers` new layers, and an MLM head tied to the embeddings.

    Its parameters are laid out exactly like a stock `XLMRobertaForMaskedLM` with `num_hidden_layers` layers, so any
    tool that reads XLM-R weights reads these. Build one with `MiniModelAdapter(model).export_mini_model()`.
    """

    config_class = MiniModelConfig

    def __init__(self, config: MiniModelConfig):
        config.check_mini_model()
        if not config.is_standalone_mini_model:
            raise ValueError(
                "this config describes a full model (full_num_hidden_layers is not set): "
                "build the mini-model's config with config.for_mini_model()"
            )
        super().__init__(config)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        outputs = self.roberta(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits, loss = mlm_logits_and_loss(
            self.lm_head, outputs.last_hidden_state, labels, self.config.mlm_head_on_labelled_only
        )
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)


def _register_auto_classes():
    """Let `save_pretrained` write `auto_map` and copy this file and the configuration beside the weights."""
    MiniModelConfig.register_for_auto_class()
    for model_class in (XLMRobertaForDualMLM, MiniModelForMaskedLM):
        model_class.register_for_auto_class("AutoModelForMaskedLM")


_register_auto_classes()

__all__ = ["DualMaskedLMOutput", "MiniModelForMaskedLM", "XLMRobertaForDualMLM", "mlm_logits_and_loss"]
