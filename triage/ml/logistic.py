"""The one logistic-regression fit behind every linear head (embedding or TF-IDF)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def fit_logistic(
    x: Any, labels: Sequence[str], *, c: float
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(classes, weights, bias) of a multinomial logistic regression on features `x`
    (dense or sparse), one row of weights per class, as float32."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"need at least two categories to train a head, got {classes}")
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for label in labels])
    model = LogisticRegression(C=c, max_iter=2000)
    # One thread: on a machine whose cores are busy (web, workers, the database), the
    # solver's OpenMP/BLAS threads spin-wait on each other; measured 5x faster on 2 busy
    # cores at 10,000 and 100,000 examples (benchmarks/scale.py).
    with threadpool_limits(limits=1):
        model.fit(x, y)
    weights, bias = model.coef_, model.intercept_
    if len(classes) == 2:
        # sklearn keeps one row for two classes; expand so softmax sees both.
        weights = np.vstack([-weights[0] / 2, weights[0] / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return (
        tuple(classes),
        np.ascontiguousarray(weights, dtype=np.float32),
        np.ascontiguousarray(bias, dtype=np.float32),
    )
