import pytest
import torch
import torch.nn.functional as F

from hf_minimodel import MiniModelAdapter, MiniModelConfig, MiniModelForMaskedLM, XLMRobertaForDualMLM
from transformers import XLMRobertaForMaskedLM

from conftest import TINY


def test_output_shapes(tiny_dual, batch):
    inputs, _ = batch
    out = tiny_dual(**inputs)
    assert out.logits.shape == out.mini_logits.shape == (3, 12, TINY["vocab_size"])
    assert out.loss is None and out.mini_loss is None


def test_joint_loss_is_full_plus_weighted_mini(batch):
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(**TINY, mini_num_layers=2, mini_loss_weight=0.25)).eval()
    inputs, labels = batch
    out = model(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, out.full_loss + 0.25 * out.mini_loss)


def test_losses_at_labelled_positions_equal_the_full_computation(tiny_dual, batch):
    inputs, labels = batch
    dense = tiny_dual(**inputs)  # no labels: every position goes through both heads
    sparse = tiny_dual(**inputs, labels=labels)
    vocab = TINY["vocab_size"]
    torch.testing.assert_close(sparse.full_loss, F.cross_entropy(dense.logits.view(-1, vocab), labels.view(-1)))
    torch.testing.assert_close(sparse.mini_loss, F.cross_entropy(dense.mini_logits.view(-1, vocab), labels.view(-1)))
    assert sparse.logits.shape == (int((labels != -100).sum()), vocab)


def test_labelled_only_can_be_switched_off(batch):
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(**TINY, mini_num_layers=2, mlm_head_on_labelled_only=False)).eval()
    inputs, labels = batch
    assert model(**inputs, labels=labels).logits.shape == (3, 12, TINY["vocab_size"])


def test_mini_only_stops_after_the_mini_model(tiny_dual, batch):
    inputs, labels = batch
    ran = []
    hooks = [layer.register_forward_hook(lambda m, i, o, n=n: ran.append(n)) for n, layer in enumerate(tiny_dual.roberta.encoder.layer)]
    out = tiny_dual(**inputs, labels=labels, mini_only=True)
    for hook in hooks:
        hook.remove()
    assert ran == [0, 1]
    assert out.logits is None
    torch.testing.assert_close(out.loss, out.mini_loss)
    torch.testing.assert_close(out.mini_logits, tiny_dual(**inputs, labels=labels).mini_logits)


def test_both_decoders_are_tied_to_the_word_embeddings(tiny_dual, tmp_path):
    embeddings = tiny_dual.roberta.embeddings.word_embeddings.weight
    assert tiny_dual.lm_head.decoder.weight is embeddings
    assert tiny_dual.mini_lm_head.decoder.weight is embeddings
    tiny_dual.save_pretrained(tmp_path)
    loaded = XLMRobertaForDualMLM.from_pretrained(tmp_path)
    embeddings = loaded.roberta.embeddings.word_embeddings.weight
    assert loaded.lm_head.decoder.weight is embeddings and loaded.mini_lm_head.decoder.weight is embeddings
    for name, tensor in tiny_dual.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_stock_checkpoint_loads_with_only_the_secondary_head_new(stock_checkpoint, batch):
    path, stock = stock_checkpoint
    model, info = XLMRobertaForDualMLM.from_pretrained(path, mini_num_layers=2, output_loading_info=True)
    assert info["missing_keys"] and all(key.startswith("mini_lm_head.") for key in info["missing_keys"])
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    model.eval()
    inputs, _ = batch
    torch.testing.assert_close(model(**inputs).logits, stock(**inputs).logits, rtol=0, atol=0)
    # The new head starts as a copy of the primary head (a warm start, see the class docstring).
    torch.testing.assert_close(model.mini_lm_head.dense.weight, stock.lm_head.dense.weight)
    torch.testing.assert_close(model.mini_lm_head.bias, stock.lm_head.bias)


def test_exported_mini_model_reproduces_the_mini_path(tiny_dual, batch):
    with torch.no_grad():  # give the mini head values of its own, distinct from a fresh init
        tiny_dual.mini_lm_head.bias.normal_()
        tiny_dual.mini_lm_head.dense.weight.normal_(std=0.1)
    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    assert isinstance(mini, MiniModelForMaskedLM)
    assert mini.config.num_hidden_layers == 2 and mini.config.full_num_hidden_layers == 4
    inputs, labels = batch
    torch.testing.assert_close(mini(**inputs).logits, tiny_dual(**inputs).mini_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(mini(**inputs, labels=labels).loss, tiny_dual(**inputs, labels=labels).mini_loss, rtol=0, atol=1e-6)


def test_mini_model_saves_as_safetensors_and_reloads(tiny_dual, batch, tmp_path):
    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    mini.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = MiniModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert loaded.lm_head.decoder.weight is loaded.roberta.embeddings.word_embeddings.weight
    inputs, _ = batch
    torch.testing.assert_close(loaded(**inputs).logits, mini(**inputs).logits, rtol=0, atol=0)


def test_mini_model_weights_read_as_a_stock_masked_lm(tiny_dual, batch, tmp_path):
    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    mini.save_pretrained(tmp_path)
    stock = XLMRobertaForMaskedLM.from_pretrained(tmp_path).eval()
    inputs, _ = batch
    torch.testing.assert_close(stock(**inputs).logits, mini(**inputs).logits, rtol=0, atol=0)


def test_export_needs_the_dual_model(stock_checkpoint):
    _, stock = stock_checkpoint
    with pytest.raises(TypeError, match="build_minipost"):
        MiniModelAdapter(stock).export_mini_model()


def test_models_refuse_the_wrong_kind_of_config():
    full = MiniModelConfig(**TINY, mini_num_layers=2)
    with pytest.raises(ValueError, match="for_mini_model"):
        MiniModelForMaskedLM(full)
    with pytest.raises(ValueError, match="MiniModelForMaskedLM"):
        XLMRobertaForDualMLM(full.for_mini_model())
    with pytest.raises(ValueError, match="MiniPost"):
        XLMRobertaForDualMLM(MiniModelConfig(**TINY, mini_num_layers=2, mini_num_new_layers=1))


def test_depth_passed_at_load_time_is_checked(stock_checkpoint):
    path, _ = stock_checkpoint
    with pytest.raises(ValueError, match="not below the full model's depth"):
        XLMRobertaForDualMLM.from_pretrained(path, mini_num_layers=4)
