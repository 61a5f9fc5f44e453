"""One freezing policy per step (hf_minimodel.freezing), exactly what each step trains."""

import torch
from transformers import XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification

from hf_minimodel import MiniModelAdapter, freezing


# The word embeddings, under each name they go by in a dual model (both MLM decoders are tied to them).
TIED = {"roberta.embeddings.word_embeddings.weight", "lm_head.decoder.weight", "mini_lm_head.decoder.weight"}


def ALL(model):
    return {name for name, _ in model.named_parameters(remove_duplicate=False)}


def names(model):
    return set(freezing.trainable_parameter_names(model))


def test_step1_trains_everything_or_everything_but_the_vocabulary(tiny_dual):
    freezing.for_step1(tiny_dual)
    assert names(tiny_dual) == ALL(tiny_dual)
    freezing.for_step1(tiny_dual, train_word_embeddings=False)
    assert names(tiny_dual) == ALL(tiny_dual) - TIED


def test_step1b_trains_the_new_layers_and_the_head_but_not_its_tied_decoder(tiny_dual):
    mini = MiniModelAdapter(tiny_dual).export_mini_model()  # 2 layers: freeze the first as MiniPost would
    freezing.for_step1b(mini, 1)
    trained = names(mini)
    assert {name.split(".")[3] for name in trained if name.startswith("roberta.encoder.layer.")} == {"1"}
    assert {"lm_head.dense.weight", "lm_head.layer_norm.weight", "lm_head.bias"} <= trained
    assert not any(name.startswith("roberta.embeddings") for name in trained)


def test_step2_trains_the_word_embeddings_and_every_head_bias_only(tiny_dual, tiny_xlmr_config):
    freezing.for_step2(tiny_dual)
    # lm_head.decoder.bias is XLM-R's alias of lm_head.bias
    assert names(tiny_dual) == TIED | {"lm_head.bias", "lm_head.decoder.bias", "mini_lm_head.bias"}
    stock = XLMRobertaForMaskedLM(tiny_xlmr_config)
    freezing.for_step2(stock)
    assert names(stock) == {"roberta.embeddings.word_embeddings.weight", "lm_head.decoder.weight", "lm_head.bias", "lm_head.decoder.bias"}


def test_step3_trains_all_but_the_embedding_layer(tiny_xlmr_config):
    torch.manual_seed(0)
    tiny_xlmr_config.num_labels = 3
    task = XLMRobertaForSequenceClassification(tiny_xlmr_config)
    task.requires_grad_(False)  # whatever came before, the policy decides
    freezing.for_step3(task)
    everything = ALL(task)
    assert names(task) == {name for name in everything if not name.startswith("roberta.embeddings.")}


def test_build_minipost_uses_the_step1b_policy(tiny_dual, tmp_path):
    """The library's step 1b trains exactly what the policy says (the mini-model it returns is unfrozen again)."""
    from hf_minimodel.sample import read_sample
    from hf_minimodel.tokenizer import train_target_tokenizer

    texts = read_sample("en-kjv.train")[:200]
    tokenizer = train_target_tokenizer(texts, vocab_size=tiny_dual.config.vocab_size, show_progress=False)
    before = {name: p.clone() for name, p in MiniModelAdapter(tiny_dual).build_minipost(
        tokenizer, texts, tmp_path / "a", mini_num_layers=1, max_steps=1, batch_size=2, max_seq_length=16,
        disable_tqdm=True, learning_rate=1e-9).named_parameters()}
    mini = MiniModelAdapter(tiny_dual).build_minipost(tokenizer, texts, tmp_path / "b", mini_num_layers=1, max_steps=2,
                                                      batch_size=2, max_seq_length=16, disable_tqdm=True, learning_rate=1e-2)
    moved = {name for name, p in mini.named_parameters() if not torch.equal(p, before[name])}
    assert moved and all(name.startswith(("roberta.encoder.layer.1.", "lm_head.")) for name in moved), moved
    assert "lm_head.decoder.weight" not in moved and "roberta.embeddings.word_embeddings.weight" not in moved
