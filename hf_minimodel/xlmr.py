"""What every XLM-R model here has, whatever its class: its body, its base, its position table, its pad id.

A language pack or a mini-model belongs to one base model, told by the fingerprint of the embedding layer's frozen
parts (`base_fingerprint`, checked by `check_same_base` wherever packs and mini-models meet a model); XLM-R numbers
positions from its pad id, so a target tokenizer keeps it (`check_pad_id`) and a sequence fits the position table
less the ids below the first position (`max_sequence_length`): what `sequence_length`, the one policy for a sequence
length, fits a default to and refuses a longer length against.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from .checks import InputError, WrongModelError, check_sequence_length, fix, weight_files
from .defaults import MAX_SEQ_LENGTH


# The embedding layer minus its vocabulary. The target embeddings are aligned to these weights (and to the layers,
# which step 3 may fine-tune): steps 2 and 3 keep the whole embedding layer except the word embeddings frozen, so
# these four tensors identify the base model a language pack was trained for, and survive step 3's fine-tuning.
NON_VOCABULARY_EMBEDDINGS = (
    "position_embeddings.weight",
    "token_type_embeddings.weight",
    "LayerNorm.weight",
    "LayerNorm.bias",
)


def xlmr_body(model: nn.Module) -> nn.Module:
    """The `XLMRobertaModel` inside any XLM-R model class (`.roberta`, or the model itself)."""
    body = getattr(model, "roberta", None)
    if body is None:
        body = getattr(model, "base_model", model)
    if not hasattr(getattr(body, "embeddings", None), "position_embeddings"):
        raise WrongModelError(
            f"{type(model).__name__} is not an XLM-R model (no .roberta.embeddings): pass an XLM-R model such as "
            "XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification or XLMRobertaForDualMLM"
        )
    return body


def base_fingerprint(model: nn.Module) -> str:
    """A short hex digest of the embedding layer's non-vocabulary weights: which base model this is.

    The same after merging new word embeddings or fine-tuning the layers; different for another base model. Taken
    in float32, so a model cast to half precision has another fingerprint than the same model in float32.
    """
    embeddings = xlmr_body(model).embeddings
    return _fingerprint({name: embeddings.get_parameter(name).detach() for name in NON_VOCABULARY_EMBEDDINGS})


def _fingerprint(tensors: dict) -> str:
    digest = hashlib.sha256()
    for name in NON_VOCABULARY_EMBEDDINGS:
        tensor = tensors[name].to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: str | os.PathLike) -> str | None:
    """`base_fingerprint` of the model saved in `folder`, read from its safetensors files without loading the model
    (four small tensors): so that a pack or a mini-model for another base is refused before anything loads. None
    if the folder's tensors are not named as transformers' XLM-R classes name them (a checkpoint of older naming,
    such as LayerNorm.gamma: the check then runs on the loaded model)."""
    from safetensors import safe_open

    tensors = {}
    for path in weight_files(Path(folder)):
        with safe_open(path, framework="pt") as weights:
            names = set(weights.keys())
            for key in names:
                if key == "embeddings.position_embeddings.weight" or key.endswith(".embeddings.position_embeddings.weight"):
                    prefix = key.removesuffix("position_embeddings.weight")  # "roberta.embeddings." or "embeddings."
                    tensors |= {name: weights.get_tensor(prefix + name) for name in NON_VOCABULARY_EMBEDDINGS if prefix + name in names}
    return _fingerprint(tensors) if len(tensors) == len(NON_VOCABULARY_EMBEDDINGS) else None


def check_same_base(actual: str | None, expected: str | None, what: str, base_model: str | None) -> None:
    """Raise `InputError` unless a model's base fingerprint (`actual`) is the one that `what` (a language pack, a
    mini-model) was made for: the one check of "is this the base it belongs to", wherever packs and mini-models
    meet a model. `actual=None` (not known yet) passes."""
    switch = fix("pass check_base=False", "pass --no-check-base")
    if expected is None:
        raise InputError(f"{what} records no base fingerprint, so its base model cannot be checked: make it again with "
                         f"this version of hf-minimodel, or {switch}")
    if actual is not None and actual != expected:
        raise InputError(
            f"the model's base fingerprint is {actual} but {what} was made for base model {base_model or '(unnamed)'} "
            f"with fingerprint {expected}: load the base model it was made for (or a model fine-tuned from it with its "
            f"embeddings frozen, in the dtype it was trained in), or {switch}"
        )


def check_pad_id(pad_token_id, padding_idx) -> None:
    """Raise `InputError` unless a target tokenizer keeps the model's pad id."""
    if pad_token_id != padding_idx:
        # XLM-R numbers positions from the pad id (position = padding_idx + 1 + index), so the position embeddings
        # the target embeddings were aligned with only line up if the pad id stays the same.
        raise InputError(
            f"the tokenizer's pad token id is {pad_token_id} but the model's is {padding_idx}: XLM-R "
            f"derives position ids from the pad id, so the target tokenizer must keep <pad>={padding_idx}"
        )


def max_sequence_length(config) -> int:
    """The longest sequence an XLM-R model can read: its position table less the ids below the first position
    (XLM-R numbers positions from `pad_token_id + 1`, so a 514-row table holds 512 tokens)."""
    return config.max_position_embeddings - (config.pad_token_id or 0) - 1


def sequence_length(config, max_seq_length: int | None = None, what: str = "sequences") -> int:
    """The one policy for the length of sequences, in every step of the library and every command of the CLI:
    `None` (every default) is `defaults.MAX_SEQ_LENGTH` tokens, or the whole position table of a model that holds
    fewer; a length asked for is checked (`checks.check_sequence_length`) and, where the model's position table
    cannot hold it, refused rather than cut, so that a run asked to read 512 tokens never reads fewer unsaid."""
    limit = max_sequence_length(config)
    if max_seq_length is None:
        return min(MAX_SEQ_LENGTH, limit)
    check_sequence_length(max_seq_length)
    if max_seq_length > limit:
        raise InputError(
            f"{what} of {max_seq_length} tokens do not fit the model's position table ({limit} tokens): "
            f"{fix(f'pass max_seq_length={limit} or less', f'pass --max-seq-length {limit} or less')}"
        )
    return max_seq_length


__all__ = ["base_fingerprint", "check_pad_id", "check_same_base", "folder_fingerprint", "max_sequence_length",
           "sequence_length", "xlmr_body"]
