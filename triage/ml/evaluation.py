"""Holdout metrics for a head: the numbers the promotion gate compares."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from .calibration import expected_calibration_error
from .heads import LinearHead


def holdout_metrics(head: LinearHead, vectors: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Scores on labelled examples. A true label the head cannot predict counts as an error."""
    probs = head.predict_proba(vectors)
    predicted = [head.labels[i] for i in probs.argmax(axis=1)]
    classes = sorted(set(head.labels) | set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    index = {label: i for i, label in enumerate(head.labels)}
    # ECE only over examples whose true label the head knows (others have no column).
    known = np.array([label in index for label in labels])
    ece = (
        expected_calibration_error(
            probs[known], np.array([index[label] for label in labels if label in index])
        )
        if known.any()
        else None
    )
    return {
        "n": len(labels),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(
            f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)
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
