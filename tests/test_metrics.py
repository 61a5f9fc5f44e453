import json
import os
import subprocess
import sys

import datasets
import evaluate
import pytest
import torch

from hf_minimodel.tasks.metrics import METRICS, load_metric, majority_baseline, retrieval_accuracy


@pytest.fixture(scope="module")
def accuracy():
    return load_metric("accuracy", keep_in_memory=True)


@pytest.fixture(scope="module")
def squad():
    return load_metric("squad", keep_in_memory=True)


def qa_scores(squad, predictions, golds):
    """SQuAD scores of {id: prediction} against {id: [gold answers]}."""
    return squad.compute(
        predictions=[{"id": key, "prediction_text": text} for key, text in predictions.items()],
        references=[
            {"id": key, "answers": {"text": texts, "answer_start": [0] * len(texts)}} for key, texts in golds.items()
        ],
    )


def test_metrics_are_evaluate_modules(accuracy, squad):
    assert isinstance(accuracy, evaluate.Metric) and accuracy.name == "accuracy"
    assert isinstance(squad, evaluate.Metric) and squad.name == "squad"


def test_accuracy_is_the_fraction_of_correct_predictions(accuracy):
    assert accuracy.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1]) == {"accuracy": 0.75}


def test_accuracy_counts_or_weighs_on_request(accuracy):
    assert accuracy.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1], normalize=False) == {"accuracy": 3.0}
    weighted = accuracy.compute(predictions=[0, 1], references=[0, 0], sample_weight=[3.0, 1.0])
    assert weighted == {"accuracy": 0.75}


def test_accuracy_accumulates_batches(accuracy):
    accuracy.add_batch(predictions=[0, 1], references=[0, 1])
    accuracy.add_batch(predictions=[2, 2], references=[2, 0])
    assert accuracy.compute() == {"accuracy": 0.75}


def test_squad_scores_are_percentages_of_exact_and_token_matches(squad):
    assert qa_scores(squad, {"q": "Paris"}, {"q": ["Paris"]}) == {"exact_match": 100.0, "f1": 100.0}
    # One gold token among three predicted: precision 1/3, recall 1, F1 1/2.
    assert qa_scores(squad, {"q": "Paris in France"}, {"q": ["Paris"]}) == {"exact_match": 0.0, "f1": 50.0}
    assert qa_scores(squad, {"q": "Berlin"}, {"q": ["Paris"]}) == {"exact_match": 0.0, "f1": 0.0}


def test_squad_normalises_case_punctuation_articles_and_whitespace(squad):
    scores = qa_scores(squad, {"q": "  The   Eiffel-Tower!"}, {"q": ["eiffeltower"]})
    assert scores == {"exact_match": 100.0, "f1": 100.0}
    # Articles go only as whole words: "Theatre" keeps its "the".
    assert qa_scores(squad, {"q": "an apple"}, {"q": ["apple"]})["exact_match"] == 100.0
    assert qa_scores(squad, {"q": "Theatre"}, {"q": ["atre"]})["exact_match"] == 0.0


def test_squad_removes_unicode_punctuation_as_mlqa_does(squad):
    # «», „“, the em dash and the Chinese full stop are not in string.punctuation; SQuAD's script would keep them.
    predictions = {"fr": "«Paris»", "de": "„Berlin“", "es": "Madrid —", "zh": "北京。"}
    golds = {"fr": ["Paris"], "de": ["Berlin"], "es": ["Madrid"], "zh": ["北京"]}
    assert qa_scores(squad, predictions, golds) == {"exact_match": 100.0, "f1": 100.0}


def test_squad_scores_the_best_of_several_gold_answers(squad):
    golds = {"q": ["Paris", "the city of Paris", "capital"]}
    assert qa_scores(squad, {"q": "city of Paris"}, golds) == {"exact_match": 100.0, "f1": 100.0}
    # Against "the city of Paris" (3 tokens after normalisation): 2 shared of 2 predicted -> F1 0.8.
    assert qa_scores(squad, {"q": "of Paris"}, golds) == {"exact_match": 0.0, "f1": pytest.approx(80.0)}


def test_squad_matches_by_id_and_averages_over_references(squad):
    # evaluate wants as many predictions as references; a reference whose id has no prediction scores 0.
    scores = qa_scores(squad, {"b": "Rome", "c": "Paris"}, {"a": ["Paris"], "b": ["Rome"]})
    assert scores == {"exact_match": 50.0, "f1": 50.0}


def test_unknown_metric_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="unknown metric 'f1': hf_minimodel ships accuracy, squad"):
        load_metric("f1")
    assert METRICS == ("accuracy", "squad")


def test_metrics_load_offline_without_touching_the_network(tmp_path):
    # A fresh process with the Hub marked offline, an empty HF cache and every socket connection refused: loading
    # must come from the package alone.
    script = """
import json, socket

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.create_connection = refuse

from hf_minimodel.tasks.metrics import load_metric

accuracy = load_metric("accuracy").compute(predictions=[1, 0], references=[1, 1])
squad = load_metric("squad").compute(
    predictions=[{"id": "q", "prediction_text": "the answer"}],
    references=[{"id": "q", "answers": {"text": ["answer"], "answer_start": [0]}}],
)
print(json.dumps({**accuracy, **squad}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    env.pop("HF_MODULES_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"accuracy": 0.5, "exact_match": 100.0, "f1": 100.0}
    # evaluate imports the scripts from copies in its module cache, under HF_HOME.
    assert list((tmp_path / "hf_home" / "modules").rglob("squad.py"))


def test_majority_baseline_is_the_share_of_the_commonest_label():
    assert majority_baseline(datasets.Dataset.from_dict({"label": [2, 0, 2, 1, 2, 0]})) == 0.5


def test_retrieval_accuracy_is_one_for_identical_vectors():
    vectors = torch.eye(50) * 3.0  # scale must not matter: cosine similarity
    assert retrieval_accuracy(vectors, torch.eye(50), list(range(50))) == 1.0
    assert retrieval_accuracy(vectors, torch.eye(50), [1] * 50) == pytest.approx(1 / 50)


def test_retrieval_accuracy_of_random_vectors_is_chance():
    torch.manual_seed(0)
    queries, candidates = torch.randn(4000, 16), torch.randn(50, 16)
    gold = torch.randint(0, 50, (4000,))
    assert retrieval_accuracy(queries, candidates, gold) == pytest.approx(1 / 50, abs=0.01)


def test_retrieval_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one gold index per query"):
        retrieval_accuracy(torch.eye(4), torch.eye(4), [0, 1, 2])
