from pathlib import Path

import pytest
from transformers import AutoConfig, XLMRobertaConfig

from hf_minimodel import MiniModelConfig


def test_defaults_put_the_mini_model_at_a_third_of_the_depth():
    assert MiniModelConfig().mini_num_layers == 4
    assert MiniModelConfig(num_hidden_layers=24).mini_num_layers == 8
    assert MiniModelConfig(num_hidden_layers=2).mini_num_layers == 1


def test_accepts_every_xlm_roberta_keyword():
    config = MiniModelConfig(hidden_size=48, num_attention_heads=4, layer_norm_eps=1e-5, classifier_dropout=0.2, mini_num_layers=3)
    assert (config.hidden_size, config.layer_norm_eps, config.classifier_dropout) == (48, 1e-5, 0.2)
    assert isinstance(config, XLMRobertaConfig)


def test_built_from_an_existing_xlm_roberta_config():
    base = XLMRobertaConfig(vocab_size=777, hidden_size=64, num_hidden_layers=6, num_attention_heads=4)
    config = MiniModelConfig.from_base_config(base, mini_num_layers=2, mini_loss_weight=0.5)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (777, 64, 6)
    assert (config.mini_num_layers, config.mini_loss_weight) == (2, 0.5)
    assert config.to_dict()["model_type"] == "xlm-roberta"  # XLM-R's own: stock tools load what we save


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_hidden_layers=4, mini_num_layers=4), "not below the full model's depth"),
        (dict(num_hidden_layers=4, mini_num_layers=9), "not below the full model's depth"),
        (dict(mini_num_layers=0), "at least 1 layer"),
        (dict(mini_loss_weight=-0.1), "negative"),
        (dict(mini_num_new_layers=-1), "negative"),
    ],
)
def test_impossible_values_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MiniModelConfig(**kwargs)


def test_standalone_mini_model_config_counts_its_own_layers():
    full = MiniModelConfig(num_hidden_layers=12, mini_num_layers=4)
    mini = full.for_mini_model(num_new_layers=1)
    assert (mini.num_hidden_layers, mini.mini_num_layers, mini.mini_num_new_layers, mini.full_num_hidden_layers) == (5, 4, 1, 12)
    with pytest.raises(ValueError, match="for_mini_model"):
        MiniModelConfig(num_hidden_layers=3, mini_num_layers=4, full_num_hidden_layers=12)


def test_round_trips_through_save_and_reads_as_xlm_roberta_to_stock_tools(tmp_path):
    from hf_minimodel.registry import holds_mini_model

    MiniModelConfig(num_hidden_layers=6, mini_num_layers=2, mini_loss_weight=0.3).save_pretrained(tmp_path)
    loaded = MiniModelConfig.from_pretrained(tmp_path)
    assert type(loaded) is MiniModelConfig
    assert (loaded.mini_num_layers, loaded.mini_loss_weight) == (2, 0.3)
    stock = AutoConfig.from_pretrained(tmp_path)  # no trust_remote_code: the XLM-R config it is, fields kept
    assert type(stock) is XLMRobertaConfig and stock.mini_num_layers == 2
    assert holds_mini_model(tmp_path) and not holds_mini_model(Path(__file__).parent / "artifacts" / "v0.1.0" / "merged")
    # A stock task model loaded from one of ours keeps the fields when saved again: its architecture tells.
    stock.architectures = ["XLMRobertaForSequenceClassification"]
    stock.save_pretrained(tmp_path / "task")
    assert not holds_mini_model(tmp_path / "task")


def test_configs_saved_by_earlier_versions_load_as_ours_without_a_warning(caplog):
    """tests/artifacts/v0.1.0 declares the model type of its own that earlier versions wrote."""
    import json

    from transformers.utils import logging as hf_logging

    folder = Path(__file__).parent / "artifacts" / "v0.1.0" / "dual"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "xlm-roberta-minimodel"
    assert isinstance(AutoConfig.from_pretrained(folder), MiniModelConfig)  # registered on first use of the package
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            config = MiniModelConfig.from_pretrained(folder)
    finally:
        hf_logging.disable_propagation()
    assert config.mini_num_layers == 1
    assert "model of type" not in caplog.text
