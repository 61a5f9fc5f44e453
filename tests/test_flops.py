"""The FLOPs model is checked against torch's own count of the matrix multiplies that really run."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from hf_minimodel import MiniModelConfig, XLMRobertaForDualMLM
from hf_minimodel.flops import mlm_step_flops
from hf_minimodel.modeling_minimodel import mlm_logits_and_loss

GEOMETRY = dict(vocab_size=300, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)


def _freeze(model, pattern):
    model.requires_grad_(pattern == "all")
    if pattern == "embeddings":  # step 2
        model.roberta.embeddings.word_embeddings.weight.requires_grad_(True)
    if pattern == "top_layer":  # MiniPost's step 1b: frozen bottom, trainable layer on top
        model.roberta.encoder.layer[-1].requires_grad_(True)


def _measured(model, step):
    with FlopCounterMode(display=False) as counter:
        step().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("pattern", ["embeddings", "all", "top_layer"])
def test_masked_lm_step_matches_torch_flop_counter(pattern):
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**GEOMETRY)).train()
    _freeze(model, pattern)
    ids = torch.randint(4, 300, (3, 24))
    labels = torch.full_like(ids, -100)
    labels[:, ::4] = 9

    def step():
        hidden = model.roberta(input_ids=ids).last_hidden_state
        return mlm_logits_and_loss(model.lm_head, hidden, labels, labelled_only=True)[1]

    assert mlm_step_flops(model, 3, 24, int((labels != -100).sum())) == _measured(model, step)


def test_dual_model_counts_both_heads():
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(**GEOMETRY, mini_num_layers=2)).train()
    ids = torch.randint(4, 300, (2, 16))
    labels = torch.full_like(ids, -100)
    labels[:, 1::3] = 5
    measured = _measured(model, lambda: model(input_ids=ids, labels=labels).loss)
    assert mlm_step_flops(model, 2, 16, int((labels != -100).sum())) == measured


def test_shallower_mini_model_costs_less():
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**GEOMETRY))
    _freeze(model, "embeddings")
    full = mlm_step_flops(model, 8, 128, 150)
    bottom = mlm_step_flops(model, 8, 128, 150, num_layers=1)
    assert bottom < full / 2


@pytest.mark.parametrize("mlm_probability", [0.15, 0.4])
def test_a_run_records_the_flops_of_its_steps_as_the_formula_counts_them(tmp_path, mlm_probability):
    """What a report (and a pack's train_flops) says a run cost: per step, mlm_step_flops at the step's batch shape
    and its number of masked positions (the head runs there only), summed. Every block is in every step here (one
    batch per epoch), so each step's masks are the collator's for that epoch and the sum can be counted by hand; at
    40% masked the count holds only if the run masked 40% too."""
    from hf_minimodel.sample import read_sample
    from hf_minimodel.tokenizer import train_target_tokenizer
    from hf_minimodel.blocks import mlm_blocks, mlm_collator
    from hf_minimodel.training import run_mlm_training

    texts = read_sample("en-kjv.train")[:40]
    tokenizer = train_target_tokenizer(texts, vocab_size=300, show_progress=False)
    blocks = mlm_blocks(texts, tokenizer, 16)
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**{**GEOMETRY, "vocab_size": len(tokenizer)}))
    _freeze(model, "top_layer")  # the trainable parameters decide the backward pass's cost
    report = run_mlm_training(model, tokenizer, blocks, tmp_path, max_steps=3, learning_rate=1e-3, batch_size=len(blocks),
                              mlm_probability=mlm_probability, disable_tqdm=True)
    collator, expected = mlm_collator(tokenizer, mlm_probability=mlm_probability, seed=0), 0
    for epoch in range(3):
        collator.epoch = epoch
        masked = int((collator([blocks[i] for i in range(len(blocks))])["labels"] != -100).sum())
        expected += mlm_step_flops(model, len(blocks), 16, masked)
    assert report.steps == 3 and report.flops == pytest.approx(expected, rel=1e-12)
    assert mlm_step_flops(model, len(blocks), 16, len(blocks) * 16) * 3 > report.flops * 1.2  # not the whole-row count
