"""What trains in each step of the paper: one policy per step, decided here and nowhere else.

Every step that trains calls its function below on the model it is about to train (the library's steps, the CLI and
the benchmarks alike), so a reader finds the whole freezing story in one page, as peft keeps it in one place:

- step 1   (source MLM, plain or MiniJoint's dual model): everything; from a pretrained encoder the word embeddings
           may stay as they are;
- step 1b  (MiniPost): only the new layers above the frozen bottom `mini_num_layers` and the MLM head's dense layer,
           norm and bias; the decoder stays tied to the frozen embeddings;
- step 2   (target embeddings, any method): only the word embeddings and each MLM head's vocabulary bias;
- step 3   (source-language task): everything but the embedding layer.
"""

from __future__ import annotations

from torch import nn
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaLMHead


def mlm_heads(model: nn.Module) -> list[XLMRobertaLMHead]:
    """Every MLM head of the model: none (a task model), one (a masked LM), or two (MiniJoint's dual model)."""
    return [module for module in model.modules() if isinstance(module, XLMRobertaLMHead)]


def for_step1(model: nn.Module, *, train_word_embeddings: bool = True) -> None:
    """Step 1: the whole model trains. From a pretrained encoder (continued training), `train_word_embeddings=False`
    keeps its vocabulary: steps 2-4 replace or freeze the word embeddings anyway, and at a 250k vocabulary their
    dense gradient and AdamW update are a large share of each step's cost on a CPU."""
    model.requires_grad_(True)
    model.get_input_embeddings().requires_grad_(train_word_embeddings)


def for_step1b(mini: nn.Module, mini_num_layers: int) -> None:
    """Step 1b (MiniPost): the full model's embeddings and bottom `mini_num_layers` layers stay frozen; the layers
    above them and the head's dense layer, norm and bias train (its decoder is tied to the frozen embeddings)."""
    mini.requires_grad_(False)
    for layer in mini.roberta.encoder.layer[mini_num_layers:]:
        layer.requires_grad_(True)
    for head in mlm_heads(mini):
        head.dense.requires_grad_(True)
        head.layer_norm.requires_grad_(True)
        head.bias.requires_grad_(True)


def for_step2(model: nn.Module) -> None:
    """Step 2, every method: the word embeddings train (the MLM decoders are tied to them) and so does each MLM
    head's vocabulary-sized output bias, which has no meaning for a new vocabulary until trained. Nothing else
    moves."""
    model.requires_grad_(False)
    model.get_input_embeddings().weight.requires_grad_(True)
    for head in mlm_heads(model):
        head.bias.requires_grad_(True)


def for_step3(model: nn.Module) -> None:
    """Step 3: everything but the whole embedding layer (word, position and token-type embeddings, its norm).

    The paper freezes the word embeddings so that the body keeps reading the space the target embeddings were
    aligned to in step 2. The rest of the embedding layer is frozen too: the target embeddings were learned against
    it, and a language pack recognises its base model by it (`xlmr.base_fingerprint`)."""
    model.requires_grad_(True)
    model.base_model.embeddings.requires_grad_(False)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """The names of the parameters that would train, for checks and reports; a tied weight under each of its names
    (the word embeddings are also every MLM decoder's weight)."""
    return [name for name, parameter in model.named_parameters(remove_duplicate=False) if parameter.requires_grad]
