"""What users already saved keeps loading: artifacts made by an earlier version, loaded by today's code.

`tests/artifacts/<version>/` holds a dual model, its mini-model, a language pack and the merged model as that version
of hf-minimodel saved them (the dual and mini-model folders carry that version's remote-code files), with the logits
they gave (see `make_artifacts.py` there). CI runs this file on the newest and the oldest transformers the package
supports; a failure here means a change broke models and packs that exist on people's disks and on the Hub.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from hf_minimodel import LanguagePack, MiniModelForMaskedLM, XLMRobertaForDualMLM

from test_remote_code import load_in_blocked_process

GENERATIONS = sorted(p for p in (Path(__file__).parent / "artifacts").iterdir() if (p / "expected.safetensors").is_file())
# Float32 on the CPU; transformers may pick another attention kernel from one release to the next (eager, sdpa),
# which reorders sums: differences of ~1e-7 are expected, anything near the logits' scale is a broken model.
TOLERANCE = dict(rtol=0, atol=1e-5)


def test_there_are_artifacts_to_load():
    assert GENERATIONS, "no saved artifacts under tests/artifacts"


@pytest.fixture(params=GENERATIONS, ids=lambda p: p.name)
def saved(request, tmp_path):
    """A copy of one generation's folder (loading must not depend on writing next to the committed files)."""
    folder = tmp_path / request.param.name
    shutil.copytree(request.param, folder)
    return folder, load_file(folder / "expected.safetensors")


def source_inputs(expected):
    return {"input_ids": expected["source_input_ids"], "attention_mask": expected["source_attention_mask"]}


def target_inputs(expected):
    return {"input_ids": expected["target_input_ids"], "attention_mask": expected["target_attention_mask"]}


def test_dual_model_and_mini_model_load_through_the_package(saved):
    folder, expected = saved
    dual = XLMRobertaForDualMLM.from_pretrained(folder / "dual").eval()
    mini = MiniModelForMaskedLM.from_pretrained(folder / "mini").eval()
    with torch.no_grad():
        out = dual(**source_inputs(expected))
        torch.testing.assert_close(out.logits, expected["dual_logits"], **TOLERANCE)
        torch.testing.assert_close(out.mini_logits, expected["dual_mini_logits"], **TOLERANCE)
        torch.testing.assert_close(mini(**source_inputs(expected)).logits, expected["mini_logits"], **TOLERANCE)


@pytest.mark.parametrize("which", ["dual", "mini"])
def test_dual_model_and_mini_model_load_as_remote_code_without_the_package(saved, which, tmp_path):
    folder, expected = saved
    got = load_in_blocked_process(folder / which, source_inputs(expected), tmp_path)
    assert bool(got["config_class"])
    for auto in ("auto_model", "auto_mlm"):
        torch.testing.assert_close(got[f"{auto}.logits"], expected[f"{which}_logits"], **TOLERANCE)
    if which == "dual":
        torch.testing.assert_close(got["auto_mlm.mini_logits"], expected["dual_mini_logits"], **TOLERANCE)


def test_language_pack_tokenizes_and_applies_as_it_did(saved):
    folder, expected = saved
    pack = LanguagePack.from_pretrained(folder / "pack")
    target_text = json.loads((folder / "made_with.json").read_text())["target_text"]
    ids = pack.tokenizer([target_text, target_text.lower()], padding=True, return_tensors="pt")
    assert torch.equal(ids["input_ids"], expected["target_input_ids"])
    model = pack.apply(XLMRobertaForDualMLM.from_pretrained(folder / "dual")).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**target_inputs(expected)).logits, expected["merged_logits"], **TOLERANCE)


def test_merged_model_loads_in_stock_transformers(saved, tmp_path):
    folder, expected = saved
    tokenizer = AutoTokenizer.from_pretrained(folder / "merged")
    assert tokenizer.get_vocab() == LanguagePack.from_pretrained(folder / "pack").tokenizer.get_vocab()
    model = AutoModelForMaskedLM.from_pretrained(folder / "merged").eval()
    assert type(model).__name__ == "XLMRobertaForMaskedLM"
    with torch.no_grad():
        torch.testing.assert_close(model(**target_inputs(expected)).logits, expected["merged_logits"], **TOLERANCE)
    got = load_in_blocked_process(folder / "merged", target_inputs(expected), tmp_path, remote=False)
    assert not bool(got["config_class"])
    torch.testing.assert_close(got["auto_mlm.logits"], expected["merged_logits"], **TOLERANCE)
