from functools import partial
from itertools import pairwise

import datasets
import numpy as np
import pytest

from hf_minimodel.tasks.qa import postprocess_qa_predictions, prepare_qa_eval_features, prepare_qa_train_features
from hf_minimodel.tokenizer import train_target_tokenizer

CONTEXT = "The Eiffel Tower stands in Paris, the capital of France, and Berlin is the capital of Germany."
QUESTION = "Where does the Eiffel Tower stand?"


@pytest.fixture(scope="module")
def tokenizer():
    # XLM-R's layout: <s>=0, <pad>=1, </s>=2, pairs as <s> question </s></s> context </s>.
    texts = [CONTEXT, QUESTION, "Which city is the capital of Germany?", "Paris and Berlin are capitals."] * 4
    return train_target_tokenizer(texts, vocab_size=200, show_progress=False)


def examples(*answers):
    """One example per (id, answer text) over the same context, in SQuAD's layout."""
    return datasets.Dataset.from_dict(
        {
            "id": [key for key, _ in answers],
            "question": [QUESTION] * len(answers),
            "context": [CONTEXT] * len(answers),
            "answers": [{"text": [text], "answer_start": [CONTEXT.index(text)]} for _, text in answers],
        }
    )


def features(dataset, prepare, tokenizer, **kwargs):
    prepare = partial(prepare, tokenizer=tokenizer, **kwargs)
    return dataset.map(prepare, batched=True, remove_columns=dataset.column_names)


def test_tokenizer_is_xlmr_shaped(tokenizer):
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id) == (0, 1, 2)
    ids = tokenizer("a", "b")["input_ids"]
    assert ids[0] == 0 and ids.count(2) == 3


def test_train_span_decodes_to_the_answer(tokenizer):
    train = features(examples(("q", "Paris"), ("g", "capital of Germany")), prepare_qa_train_features, tokenizer)
    assert len(train) == 2  # a short context is one feature per example
    for feature, answer in zip(train, ["Paris", "capital of Germany"]):
        span = feature["input_ids"][feature["start_positions"] : feature["end_positions"] + 1]
        assert tokenizer.decode(span).strip() == answer
        assert len(feature["input_ids"]) == 384  # padded to max_length


def test_windows_without_the_answer_point_at_cls(tokenizer):
    train = features(examples(("q", "France")), prepare_qa_train_features, tokenizer, max_length=40, stride=10)
    assert len(train) > 1  # the context does not fit one window
    spans = [(feature["start_positions"], feature["end_positions"]) for feature in train]
    outside = [feature for feature, span in zip(train, spans) if span == (0, 0)]
    inside = [feature for feature, span in zip(train, spans) if span != (0, 0)]
    assert outside and inside
    assert all(feature["input_ids"][0] == tokenizer.cls_token_id for feature in outside)
    for feature in inside:
        span = feature["input_ids"][feature["start_positions"] : feature["end_positions"] + 1]
        assert tokenizer.decode(span).strip() == "France"


def test_long_context_becomes_overlapping_windows(tokenizer):
    eval_features = features(examples(("q", "Paris")), prepare_qa_eval_features, tokenizer, max_length=40, stride=10)
    assert len(eval_features) > 2
    assert set(eval_features["example_id"][:]) == {"q"}
    windows = [[tuple(span) for span in offsets if span is not None] for offsets in eval_features["offset_mapping"]]
    # Neighbouring windows share `stride` context tokens, and together they cover the whole context.
    for before, after in pairwise(windows):
        assert before[-10:] == after[:10]
    assert windows[0][0][0] == 0 and windows[-1][-1][1] == len(CONTEXT)


def test_eval_offsets_are_none_outside_the_context(tokenizer):
    eval_features = features(examples(("q", "Paris")), prepare_qa_eval_features, tokenizer)
    feature = eval_features[0]
    question_end = feature["input_ids"].index(tokenizer.sep_token_id)
    assert all(offset is None for offset in feature["offset_mapping"][: question_end + 2])
    assert feature["offset_mapping"][question_end + 2] is not None
    padding = feature["input_ids"].index(tokenizer.pad_token_id)
    assert all(offset is None for offset in feature["offset_mapping"][padding - 1 :])


def logits_pointing_at(train_features, length):
    """Start and end logits that favour each training feature's gold span (CLS when the answer is elsewhere)."""
    start, end = np.zeros((len(train_features), length)), np.zeros((len(train_features), length))
    for row, feature in enumerate(train_features):
        start[row, feature["start_positions"]] = end[row, feature["end_positions"]] = 10.0
        if feature["start_positions"] == 0:
            start[row, 0] = end[row, 0] = 30.0  # a confident "not here", which postprocessing must skip
    return start, end


@pytest.mark.parametrize("max_length, stride", [(384, 128), (40, 10)])
def test_postprocess_recovers_the_gold_answers(tokenizer, max_length, stride):
    dataset = examples(("q", "Paris"), ("g", "capital of Germany"))
    kwargs = {"max_length": max_length, "stride": stride}
    train = features(dataset, prepare_qa_train_features, tokenizer, **kwargs)
    evaluation = features(dataset, prepare_qa_eval_features, tokenizer, **kwargs)
    start, end = logits_pointing_at(train, max_length)  # the same windows, in the same order
    predictions = postprocess_qa_predictions(dataset, evaluation, start, end)
    assert predictions == {"q": "Paris", "g": "capital of Germany"}


def test_postprocess_respects_max_answer_length(tokenizer):
    dataset = examples(("g", "capital of Germany"))
    train = features(dataset, prepare_qa_train_features, tokenizer)
    evaluation = features(dataset, prepare_qa_eval_features, tokenizer)
    start, end = logits_pointing_at(train, 384)
    span_length = train[0]["end_positions"] - train[0]["start_positions"] + 1
    predictions = postprocess_qa_predictions(dataset, evaluation, start, end, max_answer_length=span_length - 1)
    assert predictions["g"] != "capital of Germany"


def test_postprocess_rejects_logits_of_other_features(tokenizer):
    dataset = examples(("q", "Paris"))
    evaluation = features(dataset, prepare_qa_eval_features, tokenizer)
    with pytest.raises(ValueError, match="2 start and 2 end logit rows for 1 features"):
        postprocess_qa_predictions(dataset, evaluation, np.zeros((2, 384)), np.zeros((2, 384)))


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="not a fast tokenizer"):
        prepare_qa_train_features({"question": ["q"], "context": ["c"], "answers": []}, Slow())
