"""The scores of the paper's step 4, shipped with the package so that they load offline.

`evaluate.load("accuracy")` fetches its script from the Hugging Face Hub on every fresh machine; these are the same
metrics as `evaluate` scripts inside the package, loaded from their path: accuracy for XNLI and PAWS-X, SQuAD-style
F1 and exact match for MLQA (see squad/squad.py for how its normalisation relates to MLQA's official script).
"""

from __future__ import annotations

from pathlib import Path

import evaluate

_HERE = Path(__file__).resolve().parent
METRICS = ("accuracy", "squad")


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """The metric `name` ("accuracy" or "squad") as an `evaluate` module, loaded from the package, never the Hub.

    `kwargs` go to `evaluate.load`, e.g. `keep_in_memory=True` or `experiment_id=` for distributed evaluation.
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}: hf_minimodel ships {', '.join(METRICS)}")
    # The path of the script itself, not its folder: evaluate then reads it as a local file and never asks the Hub.
    # It still copies the script into its module cache (HF_MODULES_CACHE, under HF_HOME) to import it from there.
    return evaluate.load(str(_HERE / name / f"{name}.py"), **kwargs)


__all__ = ["METRICS", "load_metric"]
