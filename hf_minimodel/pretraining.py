"""Step 1: pretrain a masked LM in the source language.

Plain (a stock `XLMRobertaForMaskedLM`, for the standard approach and MiniPost) or MiniJoint (`XLMRobertaForDualMLM`:
a second MLM head after layer k, trained with the joint loss), from scratch (`source_config` gives the shape) or
continued from a pretrained encoder. The mini-model that MiniJoint trains here is cut out in `mini_model.py`.
"""

from . import freezing
from .checks import InputError, check_positive, check_positive_float
from .defaults import BATCH_SIZE, MAX_SEQ_LENGTH, STEP1, TOY_SOURCE
from .blocks import mlm_blocks
from .training import TrainingReport, check_run, run_mlm_training


def source_config(
    tokenizer,
    *,
    hidden_size: int = TOY_SOURCE.hidden_size,
    num_layers: int = TOY_SOURCE.num_layers,
    num_heads: int | None = None,
    intermediate_size: int | None = None,
    max_seq_length: int = MAX_SEQ_LENGTH,
    mini_num_layers: int | None = None,
    **config_kwargs,
):
    """The configuration of a new source model for `tokenizer` (step 1 from scratch): XLM-R's proportions at the
    given size (`defaults.TOY_SOURCE`: 4x feed-forward; 64-wide heads but at least 4, unless `num_heads` is given),
    special-token ids from the tokenizer. With `mini_num_layers`, MiniJoint's `MiniModelConfig` (for
    `XLMRobertaForDualMLM`); without, a plain `XLMRobertaConfig`.
    """
    from transformers import XLMRobertaConfig

    from .configuration_minimodel import MiniModelConfig

    check_positive(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                   intermediate_size=intermediate_size, max_seq_length=max_seq_length)
    heads = num_heads or TOY_SOURCE.num_heads(hidden_size)
    if hidden_size % heads:
        raise InputError(f"hidden_size={hidden_size} is not a multiple of num_heads={heads}: each head gets an equal "
                         "share of the hidden size (CLI: --hidden-size, --num-heads)")
    values = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=heads, intermediate_size=intermediate_size or TOY_SOURCE.intermediate_size(hidden_size),
        max_position_embeddings=max_seq_length + tokenizer.pad_token_id + 1,  # XLM-R counts positions from pad + 1
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        **config_kwargs,
    )
    if mini_num_layers is None:
        return XLMRobertaConfig(**values)
    return MiniModelConfig(**values, mini_num_layers=mini_num_layers)


def pretrain_mlm(model, tokenizer, train_data, output_dir, *, max_steps: int = STEP1.steps,
                 learning_rate: float = STEP1.learning_rate, batch_size: int = BATCH_SIZE, max_seq_length: int | None = None,
                 train_word_embeddings: bool = True, body_learning_rate: float | None = None,
                 **training_kwargs) -> TrainingReport:
    """Step 1: masked-LM pretraining in the source language, every parameter trained. With an
    `XLMRobertaForDualMLM` this is MiniJoint's joint training (full loss + weighted mini loss); with a stock
    `XLMRobertaForMaskedLM`, plain MLM. `train_data`: a list of strings or a dataset with a "text" column
    (`load_text_dataset` reads files, saved datasets and Hub names, streaming included).

    From a pretrained encoder (continued training, e.g. to give multilingual-e5 an MLM head, or to make it MiniJoint's
    dual model), `train_word_embeddings=False` keeps its vocabulary as it is: steps 2-4 replace or freeze the word
    embeddings anyway, and at a 250k vocabulary their dense gradient and AdamW update are a large share of each
    step's cost on a CPU. The MLM decoders stay tied to them, so only the heads' dense layers, norms and biases and
    the body train (`freezing.for_step1`).

    `body_learning_rate` trains the body (`model.base_model`: embeddings and layers) at its own, lower rate while the
    MLM heads train at `learning_rate`. A new head on a pretrained body needs a high rate to become a masked LM in a
    few hundred steps, and the same rate on the body would overwrite what it knew before the head is any use (measured
    on multilingual-e5-small: benchmarks/step1_sweep.py, and README's real-body results)."""
    # Before the corpus is tokenised: a bad number is refused before the work, not after it.
    max_seq_length = check_run(model.config, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                               max_seq_length=max_seq_length, save_steps=training_kwargs.get("save_steps"))
    freezing.for_step1(model, train_word_embeddings=train_word_embeddings)
    groups = None
    if body_learning_rate is not None:
        check_positive_float(body_learning_rate=body_learning_rate)
        body = {id(p) for p in model.base_model.parameters()}
        trainable = [p for p in model.parameters() if p.requires_grad]
        decay = training_kwargs.get("weight_decay", 0.0)
        groups = []  # the heads' first: the progress bar and logs show the first group's rate, --learning-rate's
        for in_body, rate in ((False, learning_rate), (True, body_learning_rate)):
            for matrices in (True, False):  # like the Trainer's own groups: no weight decay on biases and norms
                params = [p for p in trainable if (id(p) in body) == in_body and (p.ndim >= 2) == matrices]
                if params:
                    groups.append({"params": params, "lr": rate, "weight_decay": decay if matrices else 0.0})
    return run_mlm_training(model, tokenizer, mlm_blocks(train_data, tokenizer, max_seq_length), output_dir,
                            max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                            parameter_groups=groups, **training_kwargs)
