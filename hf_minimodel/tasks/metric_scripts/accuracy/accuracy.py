"""Accuracy, the XNLI and PAWS-X score of the paper's step 4, as an `evaluate` metric that loads without the Hub.

The same inputs and output as the Hub's `evaluate-metric/accuracy`, computed without scikit-learn.
Load it with `hf_minimodel.tasks.metrics.load_metric("accuracy")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among all the examples processed:
Accuracy = (TP + TN) / (TP + TN + FP + FN).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): gold labels.
    normalize (`bool`, defaults to True): if False, return the number of correct predictions instead of the fraction.
    sample_weight (`list` of `float`, optional): a weight per example; None weighs them all equally.

Returns:
    accuracy (`float`): between 0.0 and 1.0, or the (weighted) count of correct predictions if normalize=False.

Examples:
    >>> accuracy = hf_minimodel.tasks.metrics.load_metric("accuracy")
    >>> accuracy.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1])
    {'accuracy': 0.75}
"""

_CITATION = """
@inproceedings{conneau2018xnli,
  title={XNLI: Evaluating Cross-lingual Sentence Representations},
  author={Conneau, Alexis and Rinott, Ruty and Lample, Guillaume and Williams, Adina and Bowman, Samuel R. and
          Schwenk, Holger and Stoyanov, Veselin},
  booktitle={Proceedings of EMNLP},
  year={2018}
}
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
            reference_urls=["https://huggingface.co/spaces/evaluate-metric/accuracy"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        correct = np.asarray(predictions) == np.asarray(references)
        weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if len(weights) != len(correct):
            raise ValueError(
                f"sample_weight has {len(weights)} weights for {len(correct)} predictions: pass one weight per example"
            )
        total = float(np.dot(correct, weights))
        if normalize:
            # An empty evaluation has no accuracy; NaN says so instead of a misleading 0.0 or a ZeroDivisionError.
            total = total / float(weights.sum()) if weights.sum() else float("nan")
        return {"accuracy": total}
