"""Steps 3 and 4 on tiny models: fine-tuning with the embedding layer frozen, zero-shot evaluation with a pack."""

import copy
import json

import pytest
import torch
from datasets import Dataset

from hf_minimodel import MiniModelAdapter, MiniModelConfig, XLMRobertaForDualMLM
from hf_minimodel.cli import main
from hf_minimodel.sample import read_sample
from hf_minimodel.tasks import load_task
from hf_minimodel.tasks.bible_tasks import retrieval_task
from hf_minimodel.tasks.metrics import retrieval_accuracy
from hf_minimodel.tokenizer import train_target_tokenizer
from hf_minimodel.pooling import sentence_embeddings
from hf_minimodel.transfer import evaluate_retrieval, evaluate_zero_shot, finetune, load_task_model

FAST = dict(batch_size=4, max_seq_length=32, disable_tqdm=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    en = read_sample("en-kjv.train")[:300]
    fr = read_sample("fr-segond.train")[:300]
    en_tok = train_target_tokenizer(en, vocab_size=300, show_progress=False)
    fr_tok = train_target_tokenizer(fr, vocab_size=300, show_progress=False)
    torch.manual_seed(0)
    dual = XLMRobertaForDualMLM(MiniModelConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                intermediate_size=64, max_position_embeddings=40, mini_num_layers=1))
    adapter = MiniModelAdapter(dual)
    pack = adapter.train_embeddings(fr_tok, fr, tmp_path_factory.mktemp("step2"), mini_model=adapter.export_mini_model(),
                                    source_tokenizer=en_tok, language="fr", max_steps=2, learning_rate=1e-2, **FAST)
    return dual, en_tok, pack


def _genre(language, split, n=40):
    return load_task("bible-genre", language, split, max_examples=n)


def test_task_model_from_a_minijoint_model_keeps_its_body(setup):
    dual, _, _ = setup
    task = _genre("en", "train")
    model = load_task_model(dual, task.kind, task.label_names)
    assert type(model).__name__ == "XLMRobertaForSequenceClassification"
    assert model.config.num_labels == len(task.label_names) == 6 and model.config.id2label[0] == task.label_names[0]
    for name, tensor in dual.roberta.state_dict().items():
        assert torch.equal(model.roberta.state_dict()[name], tensor), name


@pytest.mark.parametrize("lora", [False, True])
def test_step3_trains_the_body_with_the_embedding_layer_frozen(setup, tmp_path, lora):
    dual, en_tok, _ = setup
    task = _genre("en", "train")
    model = load_task_model(dual, task.kind, task.label_names)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model, report = finetune(model, en_tok, task.dataset, tmp_path, lora=lora, max_steps=3, learning_rate=1e-2, **FAST)
    assert report.steps == 3
    assert not any("lora" in name for name in model.state_dict())  # LoRA merged back: a plain model
    for name, tensor in model.state_dict().items():
        moved = not torch.equal(tensor, before[name])
        if ".embeddings." in name:
            assert not moved, name
    assert not torch.equal(model.roberta.encoder.layer[0].attention.self.query.weight, before["roberta.encoder.layer.0.attention.self.query.weight"])
    assert not torch.equal(model.classifier.out_proj.weight, before["classifier.out_proj.weight"])


def test_step4_applies_the_pack_and_reports_accuracy_and_majority(setup, tmp_path):
    dual, en_tok, pack = setup
    task = _genre("en", "train")
    model, _ = finetune(load_task_model(dual, task.kind, task.label_names), en_tok, task.dataset, tmp_path, max_steps=2, **FAST)
    target = _genre("fr", "test", n=30)
    result = evaluate_zero_shot(model, target.dataset, pack=pack, max_seq_length=32)
    assert result["num_examples"] == 30 and 0 <= result["accuracy"] <= 1
    labels = list(target.dataset["label"])
    assert result["majority_baseline"] == pytest.approx(max(labels.count(k) for k in set(labels)) / 30)
    assert model.get_input_embeddings().weight.shape[0] == len(en_tok)  # the task model itself is untouched
    with pytest.raises(ValueError, match="pack=|tokenizer="):
        evaluate_zero_shot(model, target.dataset)


def test_step4_refuses_a_task_model_of_another_base(setup, tmp_path):
    dual, en_tok, pack = setup
    task = _genre("en", "train")
    other = load_task_model(dual, task.kind, task.label_names)
    with torch.no_grad():
        other.roberta.embeddings.position_embeddings.weight.add_(1.0)
    with pytest.raises(ValueError, match="fingerprint"):
        evaluate_zero_shot(other, _genre("fr", "test", n=10).dataset, pack=pack, max_seq_length=32)


def test_extractive_qa_steps_3_and_4(setup, tmp_path):
    dual, en_tok, pack = setup
    context = "In the beginning God created the heaven and the earth. And the earth was without form."
    answer = "the heaven and the earth"
    examples = Dataset.from_dict({
        "id": [str(i) for i in range(8)], "title": ["Genesis"] * 8, "context": [context] * 8,
        "question": ["What did God create?"] * 8,
        "answers": [{"text": [answer], "answer_start": [context.index(answer)]}] * 8,
    })
    model = load_task_model(dual, "qa")
    model, report = finetune(model, en_tok, examples, tmp_path, kind="qa", max_steps=2, doc_stride=8, **FAST)
    assert report.steps == 2
    result = evaluate_zero_shot(model, examples, tokenizer=en_tok, kind="qa", max_seq_length=32, doc_stride=8)
    assert set(result) >= {"f1", "exact_match", "num_examples"} and 0 <= result["f1"] <= 100


def test_finetune_and_evaluate_commands(setup, tmp_path, capsys):
    dual, en_tok, pack = setup
    dual.save_pretrained(tmp_path / "source")
    en_tok.save_pretrained(tmp_path / "source")
    pack.save_pretrained(tmp_path / "pack-fr")
    assert main(["finetune", "--model", str(tmp_path / "source"), "--task", "bible-genre", "--max-examples", "40",
                 "--steps", "2", "--batch-size", "4", "--max-seq-length", "32", "--output", str(tmp_path / "genre")]) == 0
    finetuned = capsys.readouterr()
    assert "{'loss'" not in finetuned.out and "{'loss'" not in finetuned.err  # a progress bar, not log dicts
    assert main(["evaluate", "--model", str(tmp_path / "genre"), "--task", "bible-genre", "--pack", str(tmp_path / "pack-fr"),
                 "--source-language", "en", "--max-examples", "30", "--max-seq-length", "32", "--output", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "majority" in table and "fr" in table and "minijoint" in table
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [(r["language"], r["method"]) for r in rows] == [("en", "source (no transfer)"), ("fr", "minijoint")]


def test_sentence_embeddings_ignore_padding(setup):
    dual, en_tok, _ = setup
    short, long = "In the beginning", "In the beginning God created the heaven and the earth and all that is in them"
    alone = sentence_embeddings(dual, en_tok, [short])
    batched = sentence_embeddings(dual, en_tok, [short, long])
    torch.testing.assert_close(batched[0], alone[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(2))


def test_retrieval_with_the_model_own_vocabulary_on_the_same_text_is_perfect(setup):
    dual, en_tok, _ = setup
    probe = retrieval_task("k", "k", "test", num_candidates=30)
    result = evaluate_retrieval(dual, en_tok, probe, tokenizer=en_tok, max_seq_length=32)
    assert result["retrieval_at_1"] == 1.0
    assert result["num_examples"] == result["num_candidates"] == 30 and result["chance"] == pytest.approx(1 / 30)


def test_retrieval_applies_the_pack_to_a_copy_for_the_target_side_only(setup):
    dual, en_tok, pack = setup
    before = {k: v.clone() for k, v in dual.state_dict().items()}
    probe = retrieval_task("k", "l", "test", num_candidates=30)
    result = evaluate_retrieval(dual, en_tok, probe, pack=pack, max_seq_length=32)
    assert 0.0 <= result["retrieval_at_1"] <= 1.0
    expected_queries = sentence_embeddings(dual, en_tok, probe.queries, max_seq_length=32)
    target_model = pack.apply(copy.deepcopy(dual))
    pool = sentence_embeddings(target_model, pack.tokenizer, probe.pool, max_seq_length=32)
    assert result["retrieval_at_1"] == retrieval_accuracy(expected_queries, pool, probe.gold)
    for name, tensor in dual.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the model itself keeps the source vocabulary


def test_cli_evaluates_retrieval_with_packs(setup, tmp_path):
    dual, en_tok, pack = setup
    dual.save_pretrained(tmp_path / "model")
    en_tok.save_pretrained(tmp_path / "model")
    pack.save_pretrained(tmp_path / "pack")
    code = main(["evaluate", "--model", str(tmp_path / "model"), "--task", "bible-retrieval", "--pack", str(tmp_path / "pack"),
                 "--num-candidates", "20", "--max-seq-length", "32", "--output", str(tmp_path / "r.json")])
    assert code == 0
    (row,) = json.loads((tmp_path / "r.json").read_text())
    assert row["language"] == "fr" and row["method"] == "minijoint" and row["num_candidates"] == 20
    assert 0.0 <= row["retrieval_at_1"] <= 1.0 and row["chance"] == pytest.approx(0.05)


def test_step4_leaves_the_task_model_exactly_as_it_was_even_for_a_vocabulary_of_another_size(setup, tmp_path):
    """The pack goes into a copy: every tensor of the task model (embeddings, body, head), its config and which
    parameters train stay as they were, with a target vocabulary of another size than the source's."""
    from hf_minimodel import LanguagePack
    from hf_minimodel.xlmr import base_fingerprint

    dual, en_tok, _ = setup
    ru_tok = train_target_tokenizer(read_sample("ru-synodal.train")[:300], vocab_size=200, show_progress=False)
    assert len(ru_tok) != len(en_tok)
    pack = LanguagePack(ru_tok, torch.randn(len(ru_tok), 32), torch.randn(len(ru_tok)), {"base_fingerprint": base_fingerprint(dual)})
    task = _genre("en", "train")
    model = load_task_model(dual, task.kind, task.label_names).eval()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    config = model.config.to_dict()
    result = evaluate_zero_shot(model, _genre("ru", "test", n=8).dataset, pack=pack, max_seq_length=32)
    assert result["num_examples"] == 8
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert after[name].shape == tensor.shape and torch.equal(after[name], tensor), name
    assert {name: p.requires_grad for name, p in model.named_parameters()} == trainable
    assert model.config.to_dict() == config and model.get_input_embeddings().num_embeddings == len(en_tok)
