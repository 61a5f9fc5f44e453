"""The scores of the paper's step 4, shipped with the package so that they load offline.

`evaluate.load("accuracy")` fetches its script from the Hugging Face Hub on every fresh machine; these are the same
metrics as `evaluate` scripts inside the package, loaded from their path: accuracy for XNLI and PAWS-X, SQuAD-style
F1 and exact match for MLQA (see metric_scripts/squad/squad.py for how its normalisation relates to MLQA's official
script).

Beside them, two plain functions: `majority_baseline`, the score a classifier must beat, and `retrieval_accuracy`,
accuracy@1 of the Bible retrieval probe.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import evaluate
import torch

from ..checks import InputError

_HERE = Path(__file__).resolve().parent / "metric_scripts"
METRICS = ("accuracy", "squad")


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """The metric `name` ("accuracy" or "squad") as an `evaluate` module, loaded from the package, never the Hub.

    `kwargs` go to `evaluate.load`, e.g. `keep_in_memory=True` or `experiment_id=` for distributed evaluation.
    """
    if name not in METRICS:
        raise InputError(f"unknown metric {name!r}: hf_minimodel ships {', '.join(METRICS)}")
    # The path of the script itself, not its folder: evaluate then reads it as a local file and never asks the Hub.
    # It still copies the script into its module cache (HF_MODULES_CACHE, under HF_HOME) to import it from there.
    return evaluate.load(str(_HERE / name / f"{name}.py"), **kwargs)


def majority_baseline(dataset: datasets.Dataset) -> float:
    """Accuracy of always answering the most frequent label: the score a task model must beat."""
    labels = list(dataset["label"])
    if not len(labels):
        raise InputError("majority_baseline needs a dataset with at least one example")
    return Counter(labels).most_common(1)[0][1] / len(labels)


def retrieval_accuracy(query_vectors: torch.Tensor, candidate_vectors: torch.Tensor, gold) -> float:
    """Accuracy@1: the share of queries whose most cosine-similar candidate is `gold[i]`.

    `query_vectors` is (queries, dim), `candidate_vectors` (candidates, dim), e.g. mean-pooled encoder states of
    `RetrievalProbe.queries` and `.pool`.
    """
    gold = torch.as_tensor(gold, device=query_vectors.device)
    if query_vectors.ndim != 2 or candidate_vectors.ndim != 2 or query_vectors.shape[1] != candidate_vectors.shape[1]:
        raise InputError(
            f"expected (queries, dim) and (candidates, dim) vectors, got {tuple(query_vectors.shape)} and "
            f"{tuple(candidate_vectors.shape)}"
        )
    if gold.shape != (query_vectors.shape[0],):
        raise InputError(f"need one gold index per query: {query_vectors.shape[0]} queries, gold {tuple(gold.shape)}")
    queries = torch.nn.functional.normalize(query_vectors.float(), dim=-1)
    candidates = torch.nn.functional.normalize(candidate_vectors.float(), dim=-1)
    return (queries @ candidates.T).argmax(dim=-1).eq(gold).float().mean().item()


__all__ = ["METRICS", "load_metric", "majority_baseline", "retrieval_accuracy"]
