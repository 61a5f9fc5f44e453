"""Extractive question answering features and predictions: SQuAD fine-tuning in step 3, MLQA evaluation in step 4.

The standard Hugging Face recipe (transformers' run_qa.py example): a context longer than the window becomes several
overlapping features (`stride` tokens shared between neighbours); training marks the answer's first and last token,
or the `<s>` (CLS) token when the answer is not in that window; evaluation keeps each feature's example id and the
character offsets of its context tokens, so the best span of any feature maps back to text of the context. It needs a
fast tokenizer (offset mappings, `sequence_ids`), e.g. XLM-R's or the one `train_target_tokenizer` builds, whose
pair template `<s> question </s></s> context </s>` puts the context in sequence 1.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..checks import InputError


def _tokenize(examples, tokenizer, max_length: int, stride: int):
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            f"{type(tokenizer).__name__} is not a fast tokenizer: extractive QA needs its offset mappings; "
            f"load one with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    if stride >= max_length:
        raise InputError(f"stride={stride} must be smaller than max_length={max_length}: the windows must advance")
    # As in run_qa.py the context, the sequence that is truncated and windowed, sits on the padding side: after the
    # question for tokenizers that pad on the right, like XLM-R's.
    question_first = tokenizer.padding_side == "right"
    # Some SQuAD questions start with runs of spaces, which would only eat the window.
    questions = [question.lstrip() for question in examples["question"]]
    contexts = list(examples["context"])
    encoding = tokenizer(
        questions if question_first else contexts,
        contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        # Every feature the same length: works with any collator, and start/end positions need no shifting.
        padding="max_length",
    )
    return encoding, (1 if question_first else 0)


def prepare_qa_train_features(examples, tokenizer, max_length: int = 384, stride: int = 128) -> dict:
    """Training features for a batch of SQuAD-layout examples (`question`, `context`, `answers`), for
    `dataset.map(..., batched=True, remove_columns=dataset.column_names)`.

    One example can give several features; each has `start_positions` and `end_positions`, the token indices of the
    first gold answer, or both the CLS index when that answer is not wholly inside the feature's window (or the
    example has no answer).
    """
    encoding, context_id = _tokenize(examples, tokenizer, max_length, stride)
    sample_map = encoding.pop("overflow_to_sample_mapping")
    offset_mapping = encoding.pop("offset_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(offset_mapping):
        span = _answer_span(offsets, encoding.sequence_ids(i), context_id, examples["answers"][sample_map[i]])
        if span is None:
            cls_index = encoding["input_ids"][i].index(tokenizer.cls_token_id)
            span = (cls_index, cls_index)
        starts.append(span[0])
        ends.append(span[1])
    return {**encoding, "start_positions": starts, "end_positions": ends}


def _answer_span(offsets, sequence_ids, context_id: int, answers) -> tuple[int, int] | None:
    """The token indices of the first gold answer, or None when it is not wholly inside this window."""
    if not answers["answer_start"]:
        return None
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    first = sequence_ids.index(context_id)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(context_id)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return None
    # The last token starting at or before the answer, then the first ending at or after it. "At or before" matters
    # for SentencePiece tokenizers: a lone "▁" piece carries the offsets of the character after it.
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def prepare_qa_eval_features(examples, tokenizer, max_length: int = 384, stride: int = 128) -> dict:
    """Evaluation features for a batch of SQuAD-layout examples (`id`, `question`, `context`), for
    `dataset.map(..., batched=True, remove_columns=dataset.column_names)`.

    Each feature keeps `example_id` (its example's id) and `offset_mapping`, None for every token outside the
    context, which is what `postprocess_qa_predictions` reads; drop both columns before passing features to the
    model.
    """
    encoding, context_id = _tokenize(examples, tokenizer, max_length, stride)
    sample_map = encoding.pop("overflow_to_sample_mapping")
    ids = list(examples["id"])
    encoding["example_id"] = [ids[sample] for sample in sample_map]
    encoding["offset_mapping"] = [
        [offset if part == context_id else None for offset, part in zip(offsets, encoding.sequence_ids(i))]
        for i, offsets in enumerate(encoding["offset_mapping"])
    ]
    return dict(encoding)


def postprocess_qa_predictions(
    examples, features, start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30
) -> dict[str, str]:
    """The predicted answer text of each example: {example id: text}.

    `examples` has `id` and `context`; `features` are its evaluation features (`example_id`, `offset_mapping`, see
    `prepare_qa_eval_features`), in the order of the rows of `start_logits` and `end_logits` (features x tokens).
    For every feature of an example, the `n_best` highest start and end logits are paired; the span with the highest
    start + end logit that lies in the context, ends after it starts and is at most `max_answer_length` tokens long
    wins. An example with no such span predicts "".
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    feature_example_ids, feature_offsets = list(features["example_id"]), list(features["offset_mapping"])
    if not len(start_logits) == len(end_logits) == len(feature_example_ids):
        raise InputError(
            f"{len(start_logits)} start and {len(end_logits)} end logit rows for {len(feature_example_ids)} features: "
            f"pass the logits of exactly these features, in their order"
        )
    features_of = defaultdict(list)
    for index, example_id in enumerate(feature_example_ids):
        features_of[example_id].append(index)

    predictions = {}
    for example_id, context in zip(examples["id"], examples["context"]):
        best_score, best_text = -np.inf, ""
        for index in features_of[example_id]:
            offsets = feature_offsets[index]
            starts = np.argsort(start_logits[index])[::-1][:n_best]
            ends = np.argsort(end_logits[index])[::-1][:n_best]
            for start in starts:
                for end in ends:
                    # Logits may be padded beyond the feature (e.g. by the Trainer's concatenation of batches).
                    if start >= len(offsets) or end >= len(offsets) or offsets[start] is None or offsets[end] is None:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    score = start_logits[index][start] + end_logits[index][end]
                    if score > best_score:
                        best_score, best_text = score, context[offsets[start][0] : offsets[end][1]]
        predictions[example_id] = best_text
    return predictions
