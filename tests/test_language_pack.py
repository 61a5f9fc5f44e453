"""Language packs: what step 2 produces, saved, shared and applied to a model of the same base (step 4)."""

import copy
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, RepoUrl
from safetensors import safe_open
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification

from hf_minimodel.checks import InputError
from hf_minimodel.language_pack import LanguagePack
from hf_minimodel.xlmr import base_fingerprint
from hf_minimodel.saving import OutputExistsError

from conftest import TINY
from test_merge import make_target_tokenizer, target_batch, target_embeddings


@pytest.fixture
def base():
    torch.manual_seed(1)
    return XLMRobertaForMaskedLM(XLMRobertaConfig(**TINY)).eval()


@pytest.fixture
def pack(base):
    tokenizer = make_target_tokenizer()
    embeddings, bias = target_embeddings(tokenizer)
    metadata = {
        "language": "xx",
        "base_model": "FacebookAI/xlm-roberta-base",
        "base_fingerprint": base_fingerprint(base),
        "method": "minijoint",
        "mini_num_layers": 2,
        "train_steps": 10,
        "train_tokens": 12345,
        "train_flops": 1.5e12,
        "train_seconds": 3.2,
        "init": "random",
        "corpus": "a few test sentences",
    }
    return LanguagePack(tokenizer=tokenizer, embeddings=embeddings, output_bias=bias, metadata=metadata)


def test_round_trip_save_load_apply_is_bit_exact(pack, base, tmp_path):
    pack.save_pretrained(tmp_path / "pack")
    loaded = LanguagePack.from_pretrained(tmp_path / "pack")
    assert loaded.metadata == pack.metadata
    from_memory = pack.apply(copy.deepcopy(base))
    from_disk = loaded.apply(copy.deepcopy(base))
    for name, tensor in from_memory.state_dict().items():
        torch.testing.assert_close(from_disk.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    batch = target_batch(loaded.tokenizer)
    assert torch.equal(batch["input_ids"], target_batch(pack.tokenizer)["input_ids"])
    torch.testing.assert_close(from_disk(**batch).logits, from_memory(**batch).logits, rtol=0, atol=0)


def test_saved_files_are_safetensors_json_tokenizer_and_a_card(pack, tmp_path):
    path = pack.save_pretrained(tmp_path / "pack")
    names = {p.name for p in path.iterdir()}
    assert {"language_pack.safetensors", "language_pack.json", "README.md", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pkl"))]
    with safe_open(path / "language_pack.safetensors", framework="pt") as weights:
        assert set(weights.keys()) == {"word_embeddings", "output_bias"}
        assert weights.metadata()["language_pack_format"] == "1"
    metadata = json.loads((path / "language_pack.json").read_text())
    assert metadata["vocab_size"] == len(pack.tokenizer) and metadata["hidden_size"] == TINY["hidden_size"]
    assert metadata["created_with"].startswith("hf-minimodel ")


def test_model_card_has_hub_metadata_training_numbers_and_citation(pack, tmp_path):
    card = (pack.save_pretrained(tmp_path / "pack") / "README.md").read_text()
    front_matter = card.split("---\n")[1]
    assert "library_name: hf-minimodel" in front_matter and 'language: ["xx"]' in front_matter
    assert 'base_model: "FacebookAI/xlm-roberta-base"' in front_matter
    assert "- mini-model-adaptation\n- language-pack\n- xlm-roberta" in front_matter
    assert 'LanguagePack.from_pretrained("pack")' in card
    assert "| Training tokens | 12,345 |" in card and "1.5e+12 FLOPs" in card and "MiniJoint" in card
    assert "| corpus | a few test sentences |" in card  # free-form metadata
    assert "Marchisio, Kelly and Lewis, Patrick and Chen, Yihong and Artetxe, Mikel" in card
    assert "$" not in card  # every placeholder filled


def test_a_local_base_model_path_is_left_out_of_the_card_metadata(pack, tmp_path):
    pack.metadata["base_model"] = str(tmp_path)
    card = pack.model_card("me/pack")
    assert "base_model:" not in card.split("---\n")[1] and str(tmp_path) in card


def test_pack_without_output_bias_applies_a_zero_bias(pack, base, tmp_path):
    pack = LanguagePack(pack.tokenizer, pack.embeddings, None, pack.metadata)
    loaded = LanguagePack.from_pretrained(pack.save_pretrained(tmp_path / "pack"))
    assert loaded.output_bias is None
    model = loaded.apply(base)
    assert torch.count_nonzero(model.lm_head.bias) == 0


def test_a_task_model_fine_tuned_from_the_base_accepts_the_pack(pack, base, tmp_path):
    base.save_pretrained(tmp_path / "base")
    classifier = XLMRobertaForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=3).eval()
    with torch.no_grad():
        classifier.roberta.encoder.layer[0].output.dense.weight.mul_(1.1)  # step 3 fine-tunes the layers
    pack.apply(classifier)
    torch.testing.assert_close(classifier.get_input_embeddings().weight, pack.embeddings, rtol=0, atol=0)
    assert classifier(**target_batch(pack.tokenizer)).logits.shape == (2, 3)


def test_hidden_size_mismatch_is_refused(pack):
    other = XLMRobertaForMaskedLM(XLMRobertaConfig(**{**TINY, "hidden_size": 48}))
    with pytest.raises(ValueError, match="language pack has hidden size 32 but the model has 48: it was trained for another base model"):
        pack.apply(other)


def test_another_base_model_is_refused_unless_check_base_is_off(pack):
    torch.manual_seed(5)
    other = XLMRobertaForMaskedLM(XLMRobertaConfig(**TINY))
    expected, actual = pack.metadata["base_fingerprint"], base_fingerprint(other)
    with pytest.raises(ValueError) as error:
        pack.apply(other)
    message = str(error.value)
    assert expected in message and actual in message and "FacebookAI/xlm-roberta-base" in message
    assert "check_base=False" in message
    assert other.config.vocab_size == TINY["vocab_size"]  # refused before any change
    pack.apply(other, check_base=False)
    assert other.config.vocab_size == len(pack.tokenizer)


@pytest.mark.parametrize("name", ["language_pack.json", "language_pack.safetensors", "tokenizer_config.json"])
def test_a_missing_file_is_named(pack, tmp_path, name):
    path = pack.save_pretrained(tmp_path / "pack")
    (path / name).unlink()
    with pytest.raises(ValueError, match=f"has no {name}: not a complete language pack"):
        LanguagePack.from_pretrained(path)


def test_metadata_that_disagrees_with_the_tensors_is_refused(pack, tmp_path):
    path = pack.save_pretrained(tmp_path / "pack")
    metadata = json.loads((path / "language_pack.json").read_text())
    (path / "language_pack.json").write_text(json.dumps({**metadata, "vocab_size": 999}))
    with pytest.raises(ValueError, match=f"vocab_size=999 but the embeddings have vocab_size={len(pack.tokenizer)}"):
        LanguagePack.from_pretrained(path)


def test_embeddings_must_match_the_tokenizer(pack):
    with pytest.raises(ValueError, match="one row per token"):
        LanguagePack(pack.tokenizer, pack.embeddings[:-1], None, {})


def test_neither_a_folder_nor_a_hub_repository(tmp_path):
    with pytest.raises(OSError, match="is not a local folder, and downloading it"):
        LanguagePack.from_pretrained(tmp_path / "no" / "such" / "pack")


def test_saving_over_an_existing_pack_needs_overwrite(pack, tmp_path):
    pack.save_pretrained(tmp_path / "pack")
    with pytest.raises(OutputExistsError):
        pack.save_pretrained(tmp_path / "pack")
    pack.metadata["train_steps"] = 20
    pack.save_pretrained(tmp_path / "pack", overwrite=True)
    assert LanguagePack.from_pretrained(tmp_path / "pack").metadata["train_steps"] == 20


def test_push_to_hub_uploads_the_saved_pack(pack, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **kwargs):
        calls["create"] = dict(repo_id=repo_id, private=private, exist_ok=exist_ok)
        return RepoUrl(f"https://huggingface.co/me/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, commit_message=None, **kwargs):
        loaded = LanguagePack.from_pretrained(folder_path)  # the folder is a complete pack
        calls["upload"] = dict(repo_id=repo_id, metadata=loaded.metadata, card=(Path(folder_path) / "README.md").read_text())
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert pack.push_to_hub("xx-pack", private=True) == "commit-info"
    assert calls["create"] == dict(repo_id="xx-pack", private=True, exist_ok=True)
    assert calls["upload"]["repo_id"] == "me/xx-pack"
    assert calls["upload"]["metadata"] == pack.metadata
    assert 'LanguagePack.from_pretrained("me/xx-pack")' in calls["upload"]["card"]


def parsed_card(text):
    """The card as the Hub reads it: YAML front matter through huggingface_hub's own parser."""
    from huggingface_hub import ModelCard

    return ModelCard(text)


def test_card_without_evaluations_has_hub_fields_an_install_line_and_no_quality_figure(pack, tmp_path):
    card = parsed_card((pack.save_pretrained(tmp_path / "pack") / "README.md").read_text())
    data = card.data
    assert data.license == "unknown"  # nothing recorded, nothing guessed
    assert data.base_model == "FacebookAI/xlm-roberta-base" and data.language == ["xx"] and data.library_name == "hf-minimodel"
    assert data.eval_results is None and "model-index" not in card.content.split("---")[1]
    assert 'pip install "hf-minimodel>=0.1.0"' in card.text
    assert "No evaluation was recorded" in card.text
    assert "| Training compute | 1.5e+12 FLOPs |" in card.text and "| Training time | 3 s (0.00 h) |" in card.text
    assert "| Training device | n/a |" in card.text  # a pack made before the device was recorded


def test_card_with_evaluations_lists_them_in_model_index(pack, tmp_path):
    pack.metadata.update(license="mit", train_device="CPU (2 threads)")
    pack.add_evaluation("fill-mask", "bible", "loss", 4.25, split="test", language="xx", name="held-out MLM loss")
    pack.add_evaluation("text-classification", "bible-genre", "accuracy", 0.5, split="test", language="xx")
    path = pack.save_pretrained(tmp_path / "pack")
    card = parsed_card((path / "README.md").read_text())
    assert card.data.license == "mit" and card.data.base_model == "FacebookAI/xlm-roberta-base"
    results = {(r.task_type, r.dataset_type, r.metric_type): r for r in card.data.eval_results}
    loss = results["fill-mask", "bible", "loss"]
    assert loss.metric_value == 4.25 and loss.dataset_split == "test" and loss.dataset_config == "xx"
    assert loss.metric_name == "held-out MLM loss"
    assert results["text-classification", "bible-genre", "accuracy"].metric_value == 0.5
    assert card.data.model_name == "pack"
    assert "| fill-mask | bible | test | xx | held-out MLM loss | 4.25 |" in card.text
    assert "| Training device | CPU (2 threads) |" in card.text and "| Licence | mit |" in card.text
    assert LanguagePack.from_pretrained(path).metadata["evaluations"] == pack.metadata["evaluations"]


@pytest.mark.parametrize("value", [float("nan"), "0.5", True, None])
def test_an_evaluation_must_be_a_measured_number(pack, value):
    with pytest.raises(ValueError, match="is not a finite number: pass the figure that was measured"):
        pack.add_evaluation("fill-mask", "bible", "loss", value)
    assert pack.metadata.get("evaluations") is None


def test_the_base_models_licence_is_read_from_its_card_on_this_machine(tmp_path):
    from hf_minimodel.cards import base_license

    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# a base model\n")
    assert base_license(str(tmp_path)) == "mit"
    assert base_license(str(tmp_path / "elsewhere")) is None and base_license(None) is None
    assert base_license("nobody/not-in-the-cache") is None  # not cached: no download, no guess


# The metadata is a typed, versioned record (hf_minimodel.pack_metadata.PackMetadata).


def test_metadata_is_typed_and_still_a_mapping(pack, tmp_path):
    from hf_minimodel.language_pack import PackMetadata

    assert isinstance(pack.metadata, PackMetadata)
    assert pack.metadata.train_tokens == pack.metadata["train_tokens"] == 12345
    assert pack.metadata.extra == {"corpus": "a few test sentences"} and pack.metadata["corpus"] == "a few test sentences"
    saved = json.loads((pack.save_pretrained(tmp_path / "pack") / "language_pack.json").read_text())
    assert saved["format_version"] == 1 and saved["corpus"] == "a few test sentences" and saved["train_flops"] == 1.5e12
    assert LanguagePack.from_pretrained(tmp_path / "pack").metadata.extra == {"corpus": "a few test sentences"}


def edit_metadata(path, change):
    metadata = json.loads((path / "language_pack.json").read_text())
    change(metadata)
    (path / "language_pack.json").write_text(json.dumps(metadata))


def test_a_pack_from_a_newer_version_says_upgrade(pack, tmp_path):
    path = pack.save_pretrained(tmp_path / "pack")
    edit_metadata(path, lambda metadata: metadata.update(format_version=2))
    with pytest.raises(InputError, match=r"language_pack.json is a version-2 language pack, from a newer hf-minimodel.*upgrade"):
        LanguagePack.from_pretrained(path)


def test_a_pack_without_a_format_version_is_version_1(pack, tmp_path):
    path = pack.save_pretrained(tmp_path / "pack")
    edit_metadata(path, lambda metadata: metadata.pop("format_version"))
    assert LanguagePack.from_pretrained(path).metadata.format_version == 1


def test_a_missing_metadata_field_is_named(pack, tmp_path):
    path = pack.save_pretrained(tmp_path / "pack")
    edit_metadata(path, lambda metadata: (metadata.pop("method"), metadata.pop("train_flops")))
    with pytest.raises(InputError, match=r"language_pack.json has no method, train_flops fields: .*save the pack again"):
        LanguagePack.from_pretrained(path)


@pytest.mark.parametrize("field, value, kind", [("train_steps", "ten", "a whole number"), ("train_steps", True, "a whole number"),
                                                ("train_flops", "1e12", "a number"), ("language", 7, "a string or a list"),
                                                ("evaluations", {"accuracy": 1}, "a list")])
def test_a_metadata_field_of_the_wrong_type_is_named(pack, tmp_path, field, value, kind):
    path = pack.save_pretrained(tmp_path / "pack")
    edit_metadata(path, lambda metadata: metadata.update({field: value}))
    with pytest.raises(InputError, match=f"language_pack.json: {field} is .*, not {kind}: restore the file"):
        LanguagePack.from_pretrained(path)


def test_metadata_compares_copies_and_merges_like_the_dict_it_replaced(pack):
    import copy as copy_module

    as_dict = dict(pack.metadata)
    assert pack.metadata == as_dict and as_dict == pack.metadata
    assert ({"note": 1} | pack.metadata)["note"] == 1 and (pack.metadata | {"note": 1})["note"] == 1
    for duplicate in (pack.metadata.copy(), copy_module.copy(pack.metadata)):
        duplicate["corpus"] = "changed"
        assert pack.metadata["corpus"] == "a few test sentences"


def test_metadata_values_that_would_not_load_back_are_refused_when_the_pack_is_made(pack, tmp_path):
    ok = LanguagePack(pack.tokenizer, pack.embeddings, None, {**pack.metadata, "language": ["sw", "en"], "train_steps": 100.0})
    assert LanguagePack.from_pretrained(ok.save_pretrained(tmp_path / "ok")).metadata["language"] == ["sw", "en"]
    with pytest.raises(InputError, match=r"metadata train_steps='ten' is not a whole number"):
        LanguagePack(pack.tokenizer, pack.embeddings, None, {**pack.metadata, "train_steps": "ten"})
    pack.metadata["train_flops"] = "many"  # set after the pack was made: refused at save, nothing written
    with pytest.raises(InputError, match=r"metadata train_flops='many' is not a number"):
        pack.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
