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
