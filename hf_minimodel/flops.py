"""FLOPs of the masked-LM computation that actually runs.

The Trainer's default counts 6 x tokens x non-embedding parameters: it cannot tell a 4-layer mini-model from the
12-layer model it came from once both are wrapped the same way, it ignores the vocabulary projection (the dominant
cost at 250k tokens), and it assumes every weight gets a gradient. Step 2 trains only the word embeddings, so here
each part of the model is charged for what autograd really does:

* forward: every matrix multiply, 2 FLOPs per multiply-add;
* backward through a frozen layer: only the gradient with respect to its input (about 1x the forward of its linear
  maps, 2x for the two activation-by-activation attention products), and only if something trainable lies below it;
  a frozen layer with nothing trainable below it (MiniPost's extracted layers in step 1b) costs nothing backward;
* backward through a trainable layer: weight gradients and the input gradients that something needs.

Element-wise work (GELU, layer norms, softmax, the embedding lookup and its scatter-add) is left out: it is a few
percent at these shapes and the same across the methods compared.
"""

from torch import nn


def _requires_grad(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def mlm_step_flops(
    model: nn.Module,
    batch_size: int,
    seq_len: int,
    num_head_positions: int,
    *,
    num_layers: int | None = None,
    training: bool = True,
) -> int:
    """FLOPs of one masked-LM step of `model` (anything with `.roberta` and an MLM `.lm_head`).

    Args:
        num_head_positions: rows that go through the MLM head: the labelled positions when the head runs only there
            (`mlm_head_on_labelled_only`), else `batch_size * seq_len`.
        num_layers: how many of the encoder's layers run (default: all of them; a mini-only forward of the dual
            model runs `mini_num_layers`).
        training: include the backward pass, as it is under the model's current `requires_grad` flags.
    """
    config = model.config
    h, f = config.hidden_size, config.intermediate_size
    tokens = batch_size * seq_len
    layers = list(model.roberta.encoder.layer)[: num_layers if num_layers is not None else None]

    grad_below = training and _requires_grad(model.roberta.embeddings)
    total = 0
    for layer in layers:
        linear = 2 * tokens * (4 * h * h + 2 * h * f)
        attention = 2 * 2 * tokens * seq_len * h  # scores (QK^T) and the weighted sum of values
        total += linear + attention
        if not training:
            continue
        if _requires_grad(layer):
            # Weight gradients, plus input gradients everywhere but into the layer's own input when nothing below
            # needs them (the Q, K, V projections' 3 h x h products).
            qkv_input = 0 if grad_below else 2 * tokens * 3 * h * h
            total += linear + (linear - qkv_input) + 2 * attention
            grad_below = True
        elif grad_below:
            total += linear + 2 * attention

    # MiniJoint's dual model has a second head (on layer mini_num_layers); charge both the same way.
    for head in (model.lm_head, getattr(model, "mini_lm_head", None)):
        if head is not None:
            total += _head_flops(head, h, num_head_positions, training, grad_below)
    return total


def _head_flops(head: nn.Module, h: int, positions: int, training: bool, grad_below: bool) -> int:
    dense = 2 * positions * h * h
    decoder = 2 * positions * h * head.decoder.weight.shape[0]
    total = dense + decoder
    if training:
        head_trainable = _requires_grad(head.dense) or _requires_grad(head.layer_norm)
        if head.decoder.weight.requires_grad:
            total += decoder  # gradient of the (tied) embedding matrix
        if head_trainable or grad_below:
            total += decoder  # gradient flowing back into the head's hidden states
        if head_trainable:
            total += 2 * dense
        elif grad_below:
            total += dense
    return total
