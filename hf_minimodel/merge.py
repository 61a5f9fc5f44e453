"""The merge: target-language word embeddings into an XLM-R model (the end of step 2, and step 4's swap).

Mini-model adaptation learns new word embeddings over a mini-model that shares its embedding layer's other parts
(positions, token types, layer norm) and its bottom layers with the full model; the embeddings then plug into the
full model (Marchisio et al., 2023, section 3). Plugging in is the same operation for every XLM-R model class: the
masked LM of step 2, the task model fine-tuned in step 3, MiniJoint's dual model, a standalone mini-model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from transformers import XLMRobertaForMaskedLM
from transformers.initialization import no_init_weights

from .cards import merged_card
from .checks import InputError
from .checks import WrongModelError
from .configuration_minimodel import is_mini_config, stock_config
from .freezing import mlm_heads
from .pooling import write_sentence_transformers_files
from .saving import atomic_directory
from .xlmr import check_pad_id, xlmr_body


def merge_embeddings(
    model: nn.Module,
    embeddings: torch.Tensor,
    tokenizer,
    output_bias: torch.Tensor | None = None,
) -> nn.Module:
    """Make `model` speak `tokenizer`'s vocabulary: new input word embeddings, every MLM head re-tied to them.

    Args:
        model: any XLM-R model; changed in place and returned.
        embeddings: the target word embeddings, shape `(len(tokenizer), hidden_size)`.
        tokenizer: the target tokenizer; its special-token ids go into the config.
        output_bias: the MLM heads' vocabulary bias, shape `(len(tokenizer),)`; zeros if `None`. Unused by a
            model without an MLM head.
    """
    body = xlmr_body(model)
    vocab_size, hidden_size = len(tokenizer), model.config.hidden_size
    if tuple(embeddings.shape) != (vocab_size, hidden_size):
        raise InputError(
            f"the embeddings have shape {tuple(embeddings.shape)} but the tokenizer and model need "
            f"{(vocab_size, hidden_size)} (len(tokenizer), hidden_size): pass the tokenizer the embeddings were "
            "trained with, and a model of the base the embeddings were trained for"
        )
    if output_bias is not None and tuple(output_bias.shape) != (vocab_size,):
        raise InputError(f"the output bias has shape {tuple(output_bias.shape)} but the tokenizer needs ({vocab_size},)")
    padding_idx = body.embeddings.padding_idx
    check_pad_id(tokenizer.pad_token_id, padding_idx)

    old = body.get_input_embeddings().weight
    with torch.no_grad():
        # A new module rather than resize_token_embeddings: resizing keeps the old rows, samples added ones from a
        # covariance over the old vocabulary (all replaced here anyway), truncates or zero-pads the stock head's
        # bias, and leaves MiniLMHead's bias at the old size, which breaks the dual model's forward.
        new = nn.Embedding.from_pretrained(
            embeddings.detach().to(device=old.device, dtype=old.dtype).clone(),
            freeze=not old.requires_grad,
            padding_idx=padding_idx,
        )
        body.set_input_embeddings(new)
        heads = mlm_heads(model)
        for head in heads:
            bias = torch.zeros(vocab_size) if output_bias is None else output_bias.detach()
            reference = head.bias
            head.bias = nn.Parameter(bias.to(device=reference.device, dtype=reference.dtype).clone(), reference.requires_grad)
            head.decoder.out_features = vocab_size

    for config in {id(c): c for c in (model.config, body.config)}.values():
        config.vocab_size = vocab_size
        config.pad_token_id = tokenizer.pad_token_id
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id

    # Recomputes the tie mapping from `_tied_weights_keys` of every submodel (both heads of the dual model) and
    # the config: decoder weights -> word embeddings, and the stock head's decoder bias -> its `bias`.
    model.tie_weights()
    for head in heads:
        # Only with config.tie_word_embeddings=False: the decoder then keeps a copy of its own.
        if head.decoder.weight is not new.weight:
            head.decoder.weight = nn.Parameter(new.weight.detach().clone(), new.weight.requires_grad)
        if head.decoder.bias is not None and head.decoder.bias is not head.bias:
            head.decoder.bias = nn.Parameter(head.bias.detach().clone(), head.bias.requires_grad)
    return model


def to_stock_masked_lm(model: XLMRobertaForMaskedLM) -> XLMRobertaForMaskedLM:
    """The same masked LM as a stock `XLMRobertaForMaskedLM`, which loads anywhere without remote code.

    `XLMRobertaForDualMLM` loses its secondary (mini) head; `MiniModelForMaskedLM` already has the stock layout.
    The weights are copied: `model` is left as it was. A stock model is returned unchanged, unless its config
    carries our fields (stock transformers loads our saved folders as `XLMRobertaForMaskedLM`, `auto_map` and all,
    and saved so, the folder would name remote code it does not hold).
    """
    if type(model) is XLMRobertaForMaskedLM and not is_mini_config(model.config) and not hasattr(model.config, "auto_map"):
        return model
    if not isinstance(model, XLMRobertaForMaskedLM):
        raise WrongModelError(
            f"{type(model).__name__} is not an XLM-R masked LM: to_stock_masked_lm takes XLMRobertaForDualMLM, "
            "MiniModelForMaskedLM or XLMRobertaForMaskedLM"
        )
    reference = model.roberta.embeddings.word_embeddings.weight
    with no_init_weights():  # every weight is overwritten below
        stock = XLMRobertaForMaskedLM(stock_config(model.config))
    stock.to(device=reference.device, dtype=reference.dtype)
    stock.tie_weights()
    own = stock.state_dict().keys()
    stock.load_state_dict({name: tensor for name, tensor in model.state_dict().items() if name in own})
    return stock.train(model.training)


def save_merged_model(
    model: nn.Module,
    tokenizer,
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    pack=None,
    license: str | None = None,
    sentence_transformers: bool | dict = False,
) -> Path:
    """Save a merged model and its target tokenizer into one folder, atomically (safetensors weights), with a model
    card (README.md).

    A masked LM saves as whatever class it is; pass `to_stock_masked_lm(model)` for a folder that loads with
    `AutoModelForMaskedLM.from_pretrained` (and `pipeline("fill-mask", ...)`) and no remote code.

    Args:
        pack: the `LanguagePack` merged in: its metadata (language, base model, step-2 cost, recorded evaluations)
            goes into the card. Without it the card says only what the model is.
        license: the card's licence (a Hub licence id); default the pack's, which is the base model's, or "unknown".
        sentence_transformers: for embedding base models (multilingual-e5): also write the sentence-transformers
            files, so that `SentenceTransformer(path)` loads the folder and embeds as `pooling.sentence_embeddings`
            does (`pooling.sentence_embeddings`: the last hidden states averaged over the tokens, L2-normalised). `True` gives e5's prompts
            ("query: ", "passage: "); a dict gives others (`{}` for none). sentence-transformers itself is not needed
            to write them.
    """
    meta = dict(pack.metadata) if pack is not None else {}
    if license is not None:
        meta["license"] = license
    prompts = None
    if sentence_transformers is True:
        from .e5 import E5_PROMPTS

        prompts = dict(E5_PROMPTS)
    elif isinstance(sentence_transformers, dict):
        prompts = dict(sentence_transformers)
    elif sentence_transformers not in (False, None):
        raise InputError(f"sentence_transformers={sentence_transformers!r}: pass True (e5's prompts), a dict of prompts, or False")
    with atomic_directory(path, overwrite=overwrite) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if prompts is not None:
            write_sentence_transformers_files(folder, model.config, prompts)
        (folder / "README.md").write_text(merged_card(meta, Path(path).name, prompts), encoding="utf-8")
    return Path(path)


__all__ = ["merge_embeddings", "save_merged_model", "to_stock_masked_lm"]
