import builtins
import os

import pytest
import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from hf_minimodel import MiniModelConfig, XLMRobertaForDualMLM

TINY = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


@pytest.fixture
def tiny_xlmr_config():
    return XLMRobertaConfig(**TINY)


@pytest.fixture
def tiny_dual():
    torch.manual_seed(0)
    return XLMRobertaForDualMLM(MiniModelConfig(**TINY, mini_num_layers=2)).eval()


@pytest.fixture
def stock_checkpoint(tmp_path, tiny_xlmr_config):
    """A stock XLMRobertaForMaskedLM saved the way any Hub checkpoint is."""
    torch.manual_seed(1)
    model = XLMRobertaForMaskedLM(tiny_xlmr_config).eval()
    path = tmp_path / "stock"
    model.save_pretrained(path)
    return path, model


@pytest.fixture
def gensim_fails(monkeypatch):
    """`gensim_fails(error)`: from then on, importing gensim raises `error`, as if it were missing (ImportError) or
    installed but broken (anything else)."""
    real_import = builtins.__import__

    def fail_with(error):
        def guarded(name, *args, **kwargs):
            if name.startswith("gensim"):
                raise error
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", guarded)

    return fail_with


@pytest.fixture
def batch():
    torch.manual_seed(2)
    input_ids = torch.randint(4, TINY["vocab_size"], (3, 12))
    input_ids[:, 0] = 0
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0
    input_ids[1, 8:] = 1  # padding
    labels = torch.full_like(input_ids, -100)
    labels[0, 3], labels[0, 5], labels[2, 7], labels[1, 2] = 11, 12, 13, 14
    return dict(input_ids=input_ids, attention_mask=attention_mask), labels


def pytest_collection_modifyitems(config, items):
    """`.ci/run` runs the suite twice, on the newest and the oldest transformers, inside a 15-minute budget on two
    cores. Tests marked `newest_only` are slow and exercise nothing that differs between the two halves (the same
    datasets and torch, and paths the other tests already cover on both): the oldest half skips them."""
    if os.environ.get("MINIMODEL_CI_HALF") != "oldest":
        return
    skip = pytest.mark.skip(reason="slow, and not specific to the transformers version: CI runs it in the newest half")
    for item in items:
        if "newest_only" in item.keywords:
            item.add_marker(skip)
