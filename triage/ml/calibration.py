"""Probability calibration for the classifier's scores.

A classifier's softmax output is only useful for routing if "0.9" really means
"right nine times out of ten". Neural classifiers tend to be over-confident, so
we apply *temperature scaling* (Guo et al., 2017, "On Calibration of Modern
Neural Networks"): divide every logit by one scalar ``T`` fitted on held-out
data. It cannot change which class wins, only how sure the model claims to be,
which is exactly what the routing thresholds depend on.

Calibration quality is measured with the top-label *expected calibration error*
(ECE) and shown to admins as a reliability table. Deliberately numpy/scipy only:
this module must stay importable without torch or Django.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

__all__ = [
    "ReliabilityBin",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_table",
    "softmax",
]

# Search range for T. Below 0.05 or above 20 the scores are degenerate anyway
# (near one-hot or near uniform); bounding keeps the optimiser well-behaved.
_MIN_TEMPERATURE = 0.05
_MAX_TEMPERATURE = 20.0


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature``; each row sums to 1."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    # Subtracting the row maximum leaves the result unchanged but keeps exp()
    # from overflowing on large logits.
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    result: npt.NDArray[np.float64] = exps / exps.sum(axis=-1, keepdims=True)
    return result


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Fit the temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)``.

    ``T > 1`` softens over-confident scores, ``T < 1`` sharpens timid ones and
    ``T == 1`` means the scores were already calibrated.
    """
    scores = _as_2d(logits, "logits")
    targets = _as_labels(labels, scores)
    true_logit = scores[np.arange(len(targets)), targets]

    def nll(log_t: float) -> float:
        t = np.exp(log_t)
        # log-softmax via logsumexp stays finite even where softmax underflows to 0.
        log_norm = logsumexp(scores / t, axis=1)
        return float(np.mean(log_norm - true_logit / t))

    # Optimising log T rather than T makes the search symmetric around 1
    # (halving and doubling are equally far) and enforces T > 0 for free.
    result = minimize_scalar(
        nll,
        bounds=(np.log(_MIN_TEMPERATURE), np.log(_MAX_TEMPERATURE)),
        method="bounded",
    )
    return float(np.exp(result.x))


def expected_calibration_error(
    probs: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 15
) -> float:
    """Top-label ECE: the count-weighted mean |accuracy - confidence| over bins.

    Each prediction's confidence is its largest probability; predictions are
    grouped into ``n_bins`` equal-width bins on [0, 1]. 0 means perfectly
    calibrated.
    """
    confidences, correct = _top_label(probs, labels)
    if len(confidences) == 0:
        raise ValueError("probs must contain at least one row")
    bins = _bin_index(confidences, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sums = np.bincount(bins, weights=confidences, minlength=n_bins)
    correct_sums = np.bincount(bins, weights=correct, minlength=n_bins)
    # Per-bin |sum(correct) - sum(confidence)| / N equals weight * |acc - conf|
    # without dividing by empty bins.
    return float(np.abs(correct_sums - conf_sums).sum() / counts.sum())


@dataclass(frozen=True)
class ReliabilityBin:
    """One row of a reliability diagram: confidences in (lower, upper]."""

    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_table(
    probs: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 10
) -> list[ReliabilityBin]:
    """Per-bin mean confidence vs accuracy, for display; empty bins are skipped."""
    confidences, correct = _top_label(probs, labels)
    bins = _bin_index(confidences, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    table = []
    for b in np.unique(bins):
        members = bins == b
        table.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=int(members.sum()),
                mean_confidence=float(confidences[members].mean()),
                accuracy=float(correct[members].mean()),
            )
        )
    return table


def _as_2d(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_classes), got shape {array.shape}")
    return array


def _as_labels(labels: npt.ArrayLike, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    targets = np.asarray(labels)
    if targets.shape != (scores.shape[0],):
        raise ValueError(
            f"labels must have shape ({scores.shape[0]},) to match the scores, got {targets.shape}"
        )
    if len(targets) and not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {targets.dtype}")
    if len(targets) and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]})")
    return targets.astype(np.intp)


def _top_label(
    probs: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Confidence of each top prediction and whether it was right (as 0.0/1.0)."""
    scores = _as_2d(probs, "probs")
    targets = _as_labels(labels, scores)
    confidences = scores.max(axis=1)
    correct = (scores.argmax(axis=1) == targets).astype(np.float64)
    return confidences, correct


def _bin_index(confidences: npt.NDArray[np.float64], n_bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bin of each confidence; bins are (lower, upper], the first closed."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left" puts a value equal to an edge in the bin below it, so 1.0
    # lands in the last bin and 0.0 in the first.
    return np.searchsorted(inner_edges, confidences, side="left")
