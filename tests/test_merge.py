"""Merging target-language embeddings into XLM-R models (the end of step 2, step 4's swap)."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    XLMRobertaModel,
)

from hf_minimodel import MiniModelAdapter
from hf_minimodel.merge import merge_embeddings, save_merged_model, to_stock_masked_lm
from hf_minimodel.xlmr import base_fingerprint

from conftest import TINY

WORDS = "the cat sat on a mat and dog ran to house in big small red blue".split()


def make_target_tokenizer(words=WORDS) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with XLM-R's special-token ids: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask> last."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{word: i + 4 for i, word in enumerate(words)}}
    vocab["<mask>"] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )


def target_embeddings(tokenizer, seed=3):
    generator = torch.Generator().manual_seed(seed)
    size = len(tokenizer)
    return torch.randn(size, TINY["hidden_size"], generator=generator), torch.randn(size, generator=generator)


def target_batch(tokenizer):
    return tokenizer(["the cat sat on a mat", "a big red dog"], padding=True, return_tensors="pt")


@pytest.fixture
def tokenizer():
    return make_target_tokenizer()


@pytest.fixture
def stock(tiny_xlmr_config):
    torch.manual_seed(1)
    return XLMRobertaForMaskedLM(tiny_xlmr_config).eval()


def test_merged_masked_lm_decoder_and_bias_are_tied(stock, tokenizer):
    embeddings, bias = target_embeddings(tokenizer)
    merge_embeddings(stock, embeddings, tokenizer, output_bias=bias)
    word_embeddings = stock.roberta.embeddings.word_embeddings
    assert word_embeddings.weight.shape == (len(tokenizer), TINY["hidden_size"])
    assert word_embeddings.padding_idx == tokenizer.pad_token_id
    torch.testing.assert_close(word_embeddings.weight, embeddings, rtol=0, atol=0)
    assert stock.lm_head.decoder.weight is word_embeddings.weight
    assert stock.lm_head.decoder.bias is stock.lm_head.bias
    torch.testing.assert_close(stock.lm_head.bias, bias, rtol=0, atol=0)
    assert stock(**target_batch(tokenizer)).logits.shape[-1] == len(tokenizer)


def test_merged_dual_model_ties_both_heads(tiny_dual, tokenizer):
    embeddings, bias = target_embeddings(tokenizer)
    merge_embeddings(tiny_dual, embeddings, tokenizer, output_bias=bias)
    weight = tiny_dual.roberta.embeddings.word_embeddings.weight
    assert tiny_dual.lm_head.decoder.weight is weight and tiny_dual.mini_lm_head.decoder.weight is weight
    assert tiny_dual.lm_head.decoder.bias is tiny_dual.lm_head.bias
    torch.testing.assert_close(tiny_dual.lm_head.bias, bias, rtol=0, atol=0)
    torch.testing.assert_close(tiny_dual.mini_lm_head.bias, bias, rtol=0, atol=0)
    out = tiny_dual(**target_batch(tokenizer))
    assert out.logits.shape[-1] == out.mini_logits.shape[-1] == len(tokenizer)


def test_merged_mini_model_is_tied_and_has_zero_bias_by_default(tiny_dual, tokenizer):
    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    embeddings, _ = target_embeddings(tokenizer)
    merge_embeddings(mini, embeddings, tokenizer)
    assert mini.lm_head.decoder.weight is mini.roberta.embeddings.word_embeddings.weight
    assert torch.count_nonzero(mini.lm_head.bias) == 0 and mini.lm_head.bias.shape == (len(tokenizer),)


def test_merge_fixes_the_config(tokenizer):
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**TINY, bos_token_id=None, eos_token_id=None))
    merge_embeddings(model, target_embeddings(tokenizer)[0], tokenizer)
    for config in (model.config, model.roberta.config):
        assert config.vocab_size == len(tokenizer) != TINY["vocab_size"]
        assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)


def test_merge_keeps_the_model_dtype(stock, tokenizer):
    stock.to(torch.bfloat16)
    embeddings, bias = target_embeddings(tokenizer)
    merge_embeddings(stock, embeddings, tokenizer, output_bias=bias)
    assert stock.roberta.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert stock.lm_head.bias.dtype == torch.bfloat16
    assert stock.lm_head.decoder.weight is stock.roberta.embeddings.word_embeddings.weight


def test_merge_keeps_frozen_embeddings_frozen(stock, tokenizer):
    stock.roberta.embeddings.word_embeddings.weight.requires_grad_(False)  # step 3 freezes them
    merge_embeddings(stock, target_embeddings(tokenizer)[0], tokenizer)
    assert not stock.roberta.embeddings.word_embeddings.weight.requires_grad


@pytest.mark.parametrize(
    "model_class",
    [XLMRobertaModel, XLMRobertaForSequenceClassification, XLMRobertaForQuestionAnswering],
)
def test_merge_into_a_task_model(model_class, tiny_xlmr_config, tokenizer):
    torch.manual_seed(4)
    model = model_class(tiny_xlmr_config).eval()
    layer_before = {k: v.clone() for k, v in model.state_dict().items() if "encoder.layer" in k}
    embeddings, _ = target_embeddings(tokenizer)
    merge_embeddings(model, embeddings, tokenizer)
    torch.testing.assert_close(model.get_input_embeddings().weight, embeddings, rtol=0, atol=0)
    for name, tensor in layer_before.items():
        assert torch.equal(model.state_dict()[name], tensor), name
    batch = target_batch(tokenizer)
    model(**batch)  # runs with the target ids
    assert model.config.vocab_size == len(tokenizer)


def test_merged_dual_model_reloads_as_a_stock_masked_lm_without_remote_code(tiny_dual, tokenizer, tmp_path):
    embeddings, bias = target_embeddings(tokenizer)
    merge_embeddings(tiny_dual, embeddings, tokenizer, output_bias=bias)
    stock = to_stock_masked_lm(tiny_dual)
    assert type(stock) is XLMRobertaForMaskedLM and not hasattr(stock, "mini_lm_head")
    assert stock.lm_head.decoder.weight is stock.roberta.embeddings.word_embeddings.weight
    path = save_merged_model(stock, tokenizer, tmp_path / "merged")
    assert not list(path.glob("*.py")) and (path / "model.safetensors").exists()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta" and "auto_map" not in config and "mini_num_layers" not in config

    loaded = AutoModelForMaskedLM.from_pretrained(path).eval()
    assert type(loaded) is XLMRobertaForMaskedLM
    assert loaded.lm_head.decoder.weight is loaded.roberta.embeddings.word_embeddings.weight
    batch = AutoTokenizer.from_pretrained(path)(["the cat sat on a mat", "a big red dog"], padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], target_batch(tokenizer)["input_ids"])
    expected = tiny_dual(**batch).logits
    torch.testing.assert_close(loaded(**batch).logits, expected, rtol=0, atol=0)


def test_to_stock_masked_lm_returns_a_stock_model_unchanged(stock):
    assert to_stock_masked_lm(stock) is stock


def test_a_dual_model_loaded_by_stock_transformers_merges_into_a_folder_without_our_fields(tiny_dual, tokenizer, tmp_path):
    """Without remote code our saved dual model loads as XLMRobertaForMaskedLM, its config still carrying auto_map
    and the mini-model fields: merged and saved, the folder must not name remote code it does not hold."""
    from hf_minimodel.registry import holds_mini_model

    tiny_dual.save_pretrained(tmp_path / "dual")
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "dual")
    assert type(loaded) is XLMRobertaForMaskedLM and loaded.config.auto_map
    stock = to_stock_masked_lm(loaded)
    assert stock is not loaded and not hasattr(stock.config, "auto_map") and not hasattr(stock.config, "mini_num_layers")
    merge_embeddings(stock, *target_embeddings(tokenizer)[:1], tokenizer)
    path = save_merged_model(stock, tokenizer, tmp_path / "merged")
    config = json.loads((path / "config.json").read_text())
    assert "auto_map" not in config and "mini_num_layers" not in config and not holds_mini_model(path)


def test_a_mini_model_converts_to_a_stock_masked_lm_with_the_same_logits(tiny_dual, batch):
    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    stock = to_stock_masked_lm(mini)
    assert type(stock) is XLMRobertaForMaskedLM and stock.config.num_hidden_layers == 2
    inputs, _ = batch
    torch.testing.assert_close(stock(**inputs).logits, mini(**inputs).logits, rtol=0, atol=0)


def test_embedding_shape_mismatch_names_both_shapes(stock, tokenizer):
    wrong = torch.zeros(len(tokenizer) + 1, TINY["hidden_size"])
    with pytest.raises(ValueError, match=rf"\({len(tokenizer) + 1}, 32\).*\({len(tokenizer)}, 32\)"):
        merge_embeddings(stock, wrong, tokenizer)
    assert stock.config.vocab_size == TINY["vocab_size"]  # refused before any change


def test_a_tokenizer_with_another_pad_id_is_refused(stock):
    tokenizer = make_target_tokenizer()
    tokenizer.pad_token = "<unk>"
    with pytest.raises(ValueError, match="pad token id is 3 but the model's is 1"):
        merge_embeddings(stock, torch.zeros(len(tokenizer), TINY["hidden_size"]), tokenizer)


def test_fingerprint_survives_layer_training_and_merging_but_not_new_positions(stock, tokenizer):
    fingerprint = base_fingerprint(stock)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    with torch.no_grad():
        stock.roberta.encoder.layer[1].attention.self.query.weight.add_(0.5)  # as step-3 fine-tuning does
    merge_embeddings(stock, target_embeddings(tokenizer)[0], tokenizer)
    assert base_fingerprint(stock) == fingerprint
    assert base_fingerprint(XLMRobertaForSequenceClassification(stock.config)) != fingerprint
    with torch.no_grad():
        stock.roberta.embeddings.position_embeddings.weight[5, 0] += 1e-3
    assert base_fingerprint(stock) != fingerprint


def test_fingerprint_is_the_same_for_the_mini_model_and_its_full_model(tiny_dual):
    assert base_fingerprint(MiniModelAdapter(tiny_dual).export_mini_model()) == base_fingerprint(tiny_dual)


def test_a_merged_model_saved_without_its_pack_has_a_card_that_claims_nothing(stock, tokenizer, tmp_path):
    from huggingface_hub import ModelCard

    merge_embeddings(stock, *target_embeddings(tokenizer)[:1], tokenizer)
    card = ModelCard((save_merged_model(stock, tokenizer, tmp_path / "merged") / "README.md").read_text())
    assert card.data.license == "unknown" and card.data.base_model is None and card.data.eval_results is None
    assert card.data.library_name == "transformers" and "No evaluation was recorded" in card.text
    assert "Not recorded: the model was saved without the language pack" in card.text


def test_an_embedding_model_saved_for_sentence_transformers_embeds_as_sentence_embeddings_does(stock, tokenizer, tmp_path):
    from hf_minimodel.pooling import sentence_embeddings

    merge_embeddings(stock, *target_embeddings(tokenizer)[:1], tokenizer)
    folder = save_merged_model(stock, tokenizer, tmp_path / "merged", sentence_transformers=True)
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"] == {"query": "query: ", "passage": "passage: "}
    from huggingface_hub import ModelCard

    card = ModelCard((folder / "README.md").read_text())
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "sentence-similarity"

    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(folder), device="cpu")
    texts = ["the cat sat on a mat", "a big red dog ran to the small house", "blue"]
    for prompt_name, prefix in (("query", "query: "), ("passage", "passage: ")):
        got = model.encode(texts, prompt_name=prompt_name, convert_to_tensor=True)
        expected = sentence_embeddings(stock, tokenizer, texts, prefix=prefix)
        assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.9999


def test_a_saved_models_fingerprint_is_read_without_loading_it(stock, tiny_dual, tmp_path):
    from hf_minimodel.xlmr import folder_fingerprint

    for name, model in (("stock", stock), ("dual", tiny_dual), ("body", stock.roberta)):  # "roberta.embeddings." or "embeddings."
        model.save_pretrained(tmp_path / name)
        assert folder_fingerprint(tmp_path / name) == base_fingerprint(model), name
    with torch.no_grad():
        stock.roberta.embeddings.LayerNorm.bias[3] += 1e-4  # any of the four tensors counts
    stock.save_pretrained(tmp_path / "moved")
    assert folder_fingerprint(tmp_path / "moved") == base_fingerprint(stock) != base_fingerprint(tiny_dual)


def test_a_mini_model_records_the_base_it_was_cut_from_and_a_stock_save_drops_it(tiny_dual, tmp_path):
    from hf_minimodel.configuration_minimodel import stock_config
    from hf_minimodel.modeling_minimodel import MiniModelForMaskedLM

    mini = MiniModelAdapter(tiny_dual).export_mini_model()
    assert mini.config.base_fingerprint == base_fingerprint(tiny_dual)
    mini.save_pretrained(tmp_path / "mini")
    assert json.loads((tmp_path / "mini" / "config.json").read_text())["base_fingerprint"] == base_fingerprint(tiny_dual)
    assert MiniModelForMaskedLM.from_pretrained(tmp_path / "mini").config.base_fingerprint == base_fingerprint(tiny_dual)
    assert not hasattr(stock_config(mini.config), "base_fingerprint")  # a merged or task model is not a mini-model


def test_the_base_check_names_both_fingerprints_and_the_way_out_in_the_readers_terms():
    from hf_minimodel.checks import InputError, speaking_to_the_command_line
    from hf_minimodel.xlmr import check_same_base

    check_same_base("abc", "abc", "the pack", "base")
    check_same_base(None, "abc", "the pack", "base")  # not known yet: checked once the model is loaded
    with pytest.raises(InputError, match="fingerprint is def but the pack was made for base model base with fingerprint abc.*check_base=False"):
        check_same_base("def", "abc", "the pack", "base")
    with speaking_to_the_command_line(), pytest.raises(InputError, match="records no base fingerprint.*pass --no-check-base"):
        check_same_base("def", None, "the pack", "base")
