"""Held-out metrics: the numbers the promotion gate compares and `evaluate` prints."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from triage.ml.calibration import expected_calibration_error


def score_metrics(labels: Sequence[str], probs: np.ndarray, truth: Sequence[str]) -> dict[str, Any]:
    """Scores on labelled examples. A true label the model cannot predict counts as an error."""
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    classes = sorted(set(labels) | set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    index = {label: i for i, label in enumerate(labels)}
    # ECE only over examples whose true label the model knows (others have no column).
    known = np.array([label in index for label in truth])
    ece = (
        expected_calibration_error(
            probs[known], np.array([index[label] for label in truth if label in index])
        )
        if known.any()
        else None
    )
    return {
        "n": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(
            f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)
        ),
        "ece": ece,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(classes)
        },
    }
