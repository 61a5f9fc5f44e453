"""Extractive question answering F1 and exact match (the MLQA score of the paper's step 4) as an `evaluate`
metric that loads without the Hub.

The inputs and output are those of the Hub's `evaluate-metric/squad`: predictions {"id", "prediction_text"},
references {"id", "answers": {"text": [...], "answer_start": [...]}}, scores in percent. Each prediction is scored
against every gold answer and keeps the best, then scores are averaged over the references.

Normalisation sits between the SQuAD v1.1 and the MLQA official scripts: lowercase, remove punctuation, remove the
English articles "a", "an", "the", and collapse whitespace, in that order; tokens are whitespace-separated words.
Punctuation is every character whose Unicode category starts with "P" (as MLQA's script does), not only ASCII
`string.punctuation` (as SQuAD's does), so "«Paris»" matches "Paris" and the score stays meaningful outside English.
Two MLQA details are left out, because the metric does not know the answer's language: the articles of Spanish,
German, Vietnamese and Arabic are not removed, and Chinese is not split into characters, so Chinese F1 is close to
exact match here and lower than MLQA's script reports. On English text with ASCII punctuation the scores equal
SQuAD v1.1's.
"""

import re
import string
import unicodedata
from collections import Counter

import datasets
import evaluate

_DESCRIPTION = """
Exact match and token F1 of extractive question answering, as in SQuAD v1.1 and MLQA: each prediction is compared
with every gold answer after normalisation (lowercase; Unicode punctuation, English articles and extra whitespace
removed), the best match counts, and both scores are averaged over the questions, in percent.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}, one per question.
    references: list of {"id": str, "answers": {"text": list of str, "answer_start": list of int}}; a question with
        several gold answers scores its best match. A reference whose id has no prediction scores 0.

Returns:
    exact_match (`float`): percent of questions whose normalised prediction equals a normalised gold answer.
    f1 (`float`): average over questions of the best token-overlap F1 with a gold answer, in percent.

Examples:
    >>> squad = hf_minimodel.tasks.metrics.load_metric("squad")
    >>> squad.compute(
    ...     predictions=[{"id": "q1", "prediction_text": "the Eiffel Tower!"}],
    ...     references=[{"id": "q1", "answers": {"text": ["Eiffel Tower"], "answer_start": [4]}}],
    ... )
    {'exact_match': 100.0, 'f1': 100.0}
"""

_CITATION = """
@inproceedings{rajpurkar2016squad,
  title={SQuAD: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of EMNLP},
  year={2016}
}
@inproceedings{lewis2020mlqa,
  title={MLQA: Evaluating Cross-lingual Extractive Question Answering},
  author={Lewis, Patrick and Oguz, Barlas and Rinott, Ruty and Riedel, Sebastian and Schwenk, Holger},
  booktitle={Proceedings of ACL},
  year={2020}
}
"""

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _is_punctuation(char):
    # MLQA's set: Unicode punctuation plus ASCII string.punctuation, whose "$", "+", "<", "^" ... are symbols (S*).
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text):
    text = "".join(char for char in text.lower() if not _is_punctuation(char))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction, gold):
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction, gold):
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                    "references": {
                        "id": datasets.Value("string"),
                        # Sequence of a dict is a dict of lists, the layout of the "answers" column of SQuAD and MLQA.
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
            reference_urls=[
                "https://rajpurkar.github.io/SQuAD-explorer/",
                "https://github.com/facebookresearch/MLQA/blob/main/mlqa_evaluation_v1.py",
            ],
        )

    def _compute(self, predictions, references):
        answers_by_id = {prediction["id"]: prediction["prediction_text"] for prediction in predictions}
        exact_match = f1 = 0.0
        for reference in references:
            golds = reference["answers"]["text"]
            if not golds:
                raise ValueError(
                    f"reference {reference['id']!r} has no gold answer: SQuAD-style scoring needs at least one "
                    f"answer text per question; drop unanswerable questions before scoring"
                )
            # As in the official scripts, a question without a prediction counts as answered wrongly.
            prediction = answers_by_id.get(reference["id"])
            if prediction is None:
                continue
            exact_match += max(float(exact_match_score(prediction, gold)) for gold in golds)
            f1 += max(f1_score(prediction, gold) for gold in golds)
        total = len(references)
        return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}
