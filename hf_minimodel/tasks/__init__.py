"""The transfer tasks by name: where each one's data comes from, in the source or a target language.

`bible-genre` and `bible-paraphrase` are real offline tasks built from the aligned Bible (like XNLI and PAWS-X);
`xnli`, `pawsx`, `squad` and `mlqa` are the paper's benchmarks, from the Hub or from local files with the same
columns (`source=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..checks import InputError

if TYPE_CHECKING:  # the task names below are read by `minimodel --help`, which imports no datasets
    from datasets import Dataset

TASKS = ("bible-genre", "bible-paraphrase", "xnli", "pawsx", "squad", "mlqa")
QA_TASKS = ("squad", "mlqa")  # extractive question answering; the others are classification
# Step 4 without step 3, for embedding models (`transfer.evaluate_retrieval`): no task model, so no `load_task`.
RETRIEVAL = "bible-retrieval"
# What step 3 trains on in the source language (MLQA has no training split: SQuAD is its English training set), and
# what step 4 evaluates in the target languages (SQuAD is English only).
SOURCE_TASKS = ("bible-genre", "bible-paraphrase", "xnli", "pawsx", "squad")
TARGET_TASKS = ("bible-genre", "bible-paraphrase", RETRIEVAL, "xnli", "pawsx", "mlqa")


def task_kind(name: str) -> str:
    """"qa" or "classification": the kind of model task `name` needs, known before its data is read."""
    return "qa" if name in QA_TASKS else "classification"


@dataclass
class TaskData:
    dataset: Dataset
    kind: str  # "classification" or "qa"
    metric: str  # the headline metric's key in evaluate_zero_shot's result
    label_names: list[str] | None = None


def load_task(name: str, language: str, split: str, *, source=None, max_examples: int | None = None, seed: int = 0) -> TaskData:
    """The data of task `name` in `language` (`split`: "train" or "test"); `source`: a local file for the Hub tasks."""
    if name == "bible-genre":
        from .bible_tasks import default_code, genre_task

        dataset = genre_task(default_code(language), split, max_examples=max_examples, seed=seed)
    elif name == "bible-paraphrase":
        from .bible_tasks import PARAPHRASE_PAIRS, paraphrase_task

        if language not in PARAPHRASE_PAIRS:
            raise InputError(f"bible-paraphrase needs two translations of one language: choose from {', '.join(sorted(PARAPHRASE_PAIRS))}")
        dataset = paraphrase_task(*PARAPHRASE_PAIRS[language], split, max_pairs=max_examples, seed=seed)
    elif name in ("xnli", "pawsx"):
        from .xtreme import load_pawsx, load_xnli

        dataset = (load_xnli if name == "xnli" else load_pawsx)(language, split=split, source=source)
    elif name in ("squad", "mlqa"):
        from .xtreme import load_mlqa, load_squad

        dataset = load_squad(split=split, source=source) if name == "squad" else load_mlqa(language, split=split, source=source)
    else:
        raise InputError(f"unknown task {name!r}: choose from {', '.join(TASKS)}")
    if name in ("xnli", "pawsx", "squad", "mlqa") and max_examples is not None and len(dataset) > max_examples:
        dataset = dataset.shuffle(seed=seed).select(range(max_examples))  # the Bible tasks subsample by verse id
    if task_kind(name) == "qa":
        return TaskData(dataset, "qa", "f1")
    return TaskData(dataset, "classification", "accuracy", dataset.features["label"].names)
