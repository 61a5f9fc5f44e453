"""Real pretrained encoders in XLM-R layout: the source model of step 1, brought in offline.

Mini-model adaptation starts from an XLM-R style encoder. Several strong multilingual encoders use XLM-R's
250,002-piece vocabulary but ship as BERT checkpoints (multilingual-e5, multilingual MiniLM): the same layers under
other names, and positions counted from 0 instead of from the pad id. `bert_to_xlm_roberta` turns one into a stock
`XLMRobertaForMaskedLM` with identical hidden states, so every step of the paper runs on it unchanged. Two such
bodies come offline, each from its own module: multilingual-e5-small (`e5.py`) and all-MiniLM-L6-v2 (`minilm.py`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from transformers import BertConfig, XLMRobertaConfig, XLMRobertaForMaskedLM
from transformers.initialization import no_init_weights

from .checks import InputError


def _bert_layer_names(index: int) -> list[str]:
    # The encoder layers are named alike in both models; only the prefix differs.
    prefix = f"encoder.layer.{index}."
    linear = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense")
    norms = ("attention.output.LayerNorm", "output.LayerNorm")
    return [f"{prefix}{module}.{kind}" for module in linear + norms for kind in ("weight", "bias")]


# BERT's pre-training heads (next-sentence pooler, MLM/NSP predictions) have no place in XLMRobertaForMaskedLM's
# body; position_ids is a buffer that older checkpoints saved.
_DROPPED_PREFIXES = ("pooler.", "cls.")
_DROPPED_NAMES = ("embeddings.position_ids",)


def _encoder_weights(bert: Mapping[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The encoder's tensors of a BERT state dict, named as in `BertModel` (a `bert.` prefix dropped), without the
    pooler and pre-training heads; an `InputError` unless they are exactly a `layers`-layer encoder's."""
    weights = {name.removeprefix("bert."): tensor for name, tensor in bert.items()}
    weights = {name: tensor for name, tensor in weights.items()
               if not name.startswith(_DROPPED_PREFIXES) and name not in _DROPPED_NAMES}
    expected = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    expected += [name for index in range(layers) for name in _bert_layer_names(index)]
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"not a {layers}-layer BERT encoder state dict (missing {missing[:3]}, unexpected {unexpected[:3]}): "
            "pass a BertModel's state dict with the BertConfig it was saved with"
        )
    return weights


def _xlmr_config(config: BertConfig, shift: int, **special_ids) -> XLMRobertaConfig:
    """The XLM-R configuration of a BERT one: the same shape, a position table `shift` rows longer (positions count
    from the pad id + 1), one token-type row, the decoder tied to the word embeddings."""
    return XLMRobertaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=config.max_position_embeddings + shift,
        type_vocab_size=1,
        initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps,
        **special_ids,
        tie_word_embeddings=True,
    )


def bert_to_xlm_roberta(
    bert: nn.Module | Mapping[str, torch.Tensor],
    config: BertConfig | None = None,
    *,
    pad_token_id: int = 1,
    bos_token_id: int = 0,
    eos_token_id: int = 2,
) -> XLMRobertaForMaskedLM:
    """A BERT-layout encoder over XLM-R's vocabulary as a stock `XLMRobertaForMaskedLM` with identical hidden states.

    ```python
    bert = BertModel.from_pretrained("intfloat/multilingual-e5-small")
    model = bert_to_xlm_roberta(bert)  # or bert_to_xlm_roberta(state_dict, bert_config)
    ```

    Args:
        bert: a `BertModel` (or any BERT class: a `bert.` prefix is understood), or its state dict.
        config: the `BertConfig`; taken from `bert` when it is a model.
        pad_token_id, bos_token_id, eos_token_id: the vocabulary's special ids, XLM-R's by default. Pass the
            tokenizer's, not the BERT config's: BertConfig defaults to `pad_token_id=0`, which is `<s>` in XLM-R's
            vocabulary.

    Every tensor is mapped by name: word embeddings and layers as they are; the position table shifted down by
    `pad_token_id + 1` rows, because XLM-R numbers positions from the pad id (position = pad id + 1 + index), so
    `max_position_embeddings` grows by as much (the rows below are zero: only pad tokens use one); of BERT's two
    token-type rows, XLM-R keeps the first, the one every BERT input without segment ids uses. BERT's pooler and
    pre-training heads are dropped. The hidden states match BERT's for right-padded input, where BERT's positions
    count from 0 too.

    The MLM head is new: XLM-R's stock head, its decoder tied to the word embeddings, its dense layer drawn from
    N(0, initializer_range), its LayerNorm at identity and its bias zero. Encoders trained for embeddings have no
    MLM head to bring; step 1 of the paper (MiniJoint or MiniPost pre-training) trains one.
    """
    if isinstance(bert, nn.Module):
        config = bert.config if config is None else config
        bert = bert.state_dict()
    if config is None:
        raise TypeError("bert_to_xlm_roberta needs the BertConfig with a state dict: pass config=")
    if getattr(config, "position_embedding_type", None) not in (None, "absolute"):
        raise InputError(
            f"the BERT model uses {config.position_embedding_type!r} position embeddings, but XLM-R has absolute "
            "ones only: convert a model with position_embedding_type='absolute'"
        )

    weights = _encoder_weights(bert, config.num_hidden_layers)
    shift = pad_token_id + 1
    xlmr_config = _xlmr_config(config, shift, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                               eos_token_id=eos_token_id)

    positions = weights["embeddings.position_embeddings.weight"]
    shifted = positions.new_zeros(positions.shape[0] + shift, positions.shape[1])
    shifted[shift:] = positions
    weights["embeddings.position_embeddings.weight"] = shifted
    weights["embeddings.token_type_embeddings.weight"] = weights["embeddings.token_type_embeddings.weight"][:1]

    with no_init_weights():  # every weight is set below; initialising 250k embedding rows first is wasted time
        model = XLMRobertaForMaskedLM(xlmr_config)
    body = dict(model.roberta.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            if tuple(tensor.shape) != tuple(body[name].shape):
                raise InputError(
                    f"{name} has shape {tuple(tensor.shape)} but the BertConfig implies {tuple(body[name].shape)}: "
                    "pass the config the weights were saved with"
                )
            body[name].copy_(tensor)
        head = model.lm_head
        head.dense.weight.normal_(0.0, xlmr_config.initializer_range)
        head.dense.bias.zero_()
        head.layer_norm.weight.fill_(1.0)
        head.layer_norm.bias.zero_()
        head.bias.zero_()
    model.tie_weights()
    return model.eval()


__all__ = ["bert_to_xlm_roberta"]
