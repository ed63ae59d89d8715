"""Confidence thresholds that let the model act on its own, per category.

An admin picks a target precision, say 95%. For one category we take the
held-out items the model *predicted* as that category, with their calibrated
confidences and whether each prediction was right. Automating every prediction
with confidence ``>= t`` has some precision on that held-out set, but a precision
measured on 40 items is a noisy estimate. So we demand that the *lower bound* of
a Wilson score interval on that precision clears the target: with small or
shaky evidence the model keeps asking a human.

Among thresholds that qualify we pick the lowest, because a lower threshold
automates more items. Pure numpy/scipy: no Django, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

__all__ = [
    "CoveragePoint",
    "ThresholdResult",
    "coverage_at_precision",
    "derive_threshold",
    "risk_coverage_curve",
    "wilson_lower_bound",
]


def wilson_lower_bound(successes: int, n: int, confidence: float = 0.95) -> float:
    """Lower end of the two-sided Wilson score interval for ``successes / n``.

    Unlike the normal approximation, Wilson behaves sensibly near 0% and 100%
    and for small ``n``: 10 out of 10 gives about 0.72, not 1.0. Returns 0.0
    when ``n == 0`` (no evidence supports any precision).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    bound = _wilson_lower_bounds(np.array([successes]), np.array([n]), _z_score(confidence))
    return float(bound[0])


@dataclass(frozen=True)
class ThresholdResult:
    """The derived threshold for one category and why.

    ``threshold`` is None when the category must never auto-act. The other
    numbers describe the automated held-out set (confidence >= threshold):
    ``support`` items with observed ``precision`` and Wilson ``lower_bound``,
    being ``coverage`` of all the category's held-out predictions. With no
    threshold nothing is automated: support 0, coverage 0.0, precision and
    lower_bound None. ``reason`` is a sentence for the admin.
    """

    threshold: float | None
    support: int
    precision: float | None
    lower_bound: float | None
    coverage: float
    reason: str


def derive_threshold(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    target_precision: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
) -> ThresholdResult:
    """Lowest confidence threshold whose precision lower bound meets the target.

    Candidates are the distinct confidence values; a candidate selects every
    prediction with confidence ``>= candidate``. It qualifies when the
    selection has at least ``min_support`` items and the Wilson lower bound of
    its precision (at ``confidence_level``) is ``>= target_precision``. The
    lower bound is not monotone in the threshold, so every candidate is
    checked, in O(n log n) overall.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}")
    curve = _Curve.build(confidences, correct, confidence_level)

    if curve.n_total < min_support:
        return _never(f"not enough held-out examples ({curve.n_total} < {min_support})")

    supported = curve.n_selected >= min_support
    qualifying = np.flatnonzero(supported & (curve.lower_bounds >= target_precision))
    if len(qualifying) == 0:
        best = float(curve.lower_bounds[supported].max())
        return _never(f"best achievable lower bound is {best:.1%} < target {target_precision:.1%}")

    # Candidates run from the highest threshold down, so the last qualifying
    # one is the lowest threshold, automating the most items.
    i = qualifying[-1]
    support = int(curve.n_selected[i])
    lower_bound = float(curve.lower_bounds[i])
    threshold = float(curve.thresholds[i])
    return ThresholdResult(
        threshold=threshold,
        support=support,
        precision=float(curve.successes[i]) / support,
        lower_bound=lower_bound,
        coverage=support / curve.n_total,
        reason=(
            f"lower bound {lower_bound:.1%} ≥ target {target_precision:.1%} "
            f"at threshold {threshold:.3f}"
        ),
    )


@dataclass(frozen=True)
class CoveragePoint:
    """One point of the risk-coverage curve: automate confidence >= threshold."""

    threshold: float
    coverage: float
    precision: float
    lower_bound: float


def risk_coverage_curve(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    confidence_level: float = 0.95,
    points: int = 20,
) -> list[CoveragePoint]:
    """Share automated vs precision as the threshold drops, down-sampled for display.

    Returns at most ``points`` points in order of increasing coverage (falling
    threshold), roughly evenly spaced in coverage; the last one is the lowest
    threshold, i.e. coverage 1.0. Empty input gives an empty list.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    curve = _Curve.build(confidences, correct, confidence_level)
    if curve.n_total == 0:
        return []
    # For each evenly spaced coverage goal take the first threshold reaching it;
    # thresholds sitting on ties can jump past several goals, hence unique().
    goals = np.ceil(np.arange(1, points + 1) / points * curve.n_total)
    picks = np.unique(np.searchsorted(curve.n_selected, goals, side="left"))
    return [
        CoveragePoint(
            threshold=float(curve.thresholds[i]),
            coverage=float(curve.n_selected[i]) / curve.n_total,
            precision=float(curve.successes[i] / curve.n_selected[i]),
            lower_bound=float(curve.lower_bounds[i]),
        )
        for i in picks
    ]


def coverage_at_precision(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    target_precision: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
) -> tuple[float, float | None]:
    """(share automated, precision achieved) at the derived threshold, for reports.

    ``(0.0, None)`` when nothing may be automated.
    """
    result = derive_threshold(
        confidences,
        correct,
        target_precision=target_precision,
        confidence_level=confidence_level,
        min_support=min_support,
    )
    return result.coverage, result.precision


@dataclass(frozen=True)
class _Curve:
    """Selected-set statistics for every candidate threshold, highest first.

    Entry ``i`` describes automating everything with confidence >=
    ``thresholds[i]``: ``n_selected[i]`` items, ``successes[i]`` of them right.
    """

    n_total: int
    thresholds: npt.NDArray[np.float64]
    n_selected: npt.NDArray[np.int64]
    successes: npt.NDArray[np.int64]
    lower_bounds: npt.NDArray[np.float64]

    @classmethod
    def build(
        cls, confidences: npt.ArrayLike, correct: npt.ArrayLike, confidence_level: float
    ) -> _Curve:
        conf = np.asarray(confidences, dtype=np.float64)
        right = np.asarray(correct, dtype=bool)
        if conf.ndim != 1 or right.ndim != 1:
            raise ValueError("confidences and correct must be 1-D arrays")
        if len(conf) != len(right):
            raise ValueError(
                f"confidences and correct differ in length ({len(conf)} != {len(right)})"
            )
        if not np.all(np.isfinite(conf)):
            raise ValueError("confidences must be finite")
        z = _z_score(confidence_level)

        # Sort once, descending: then "confidence >= t" is always a prefix and
        # the prefix counts come from cumulative sums.
        order = np.argsort(-conf, kind="stable")
        conf_sorted = conf[order]
        cum_successes = np.cumsum(right[order], dtype=np.int64)
        # Tied confidences are selected together, so a candidate's prefix must
        # end at the last copy of its value. The final item always ends one
        # (when there is a final item at all).
        is_last_copy = np.append(conf_sorted[1:] != conf_sorted[:-1], len(conf) > 0)
        ends = np.flatnonzero(is_last_copy)
        n_selected = (ends + 1).astype(np.int64)
        successes = cum_successes[ends]
        return cls(
            n_total=len(conf),
            thresholds=conf_sorted[ends],
            n_selected=n_selected,
            successes=successes,
            lower_bounds=_wilson_lower_bounds(successes, n_selected, z),
        )


def _never(reason: str) -> ThresholdResult:
    return ThresholdResult(
        threshold=None, support=0, precision=None, lower_bound=None, coverage=0.0, reason=reason
    )


def _z_score(confidence: float) -> float:
    """Two-sided critical value, e.g. 1.96 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {confidence}")
    return float(norm.ppf(1 - (1 - confidence) / 2))


def _wilson_lower_bounds(
    successes: npt.NDArray[np.int64], n: npt.NDArray[np.int64], z: float
) -> npt.NDArray[np.float64]:
    """Vectorised Wilson lower bound; 0.0 where n == 0.

    The single scalar entry point also goes through here, so a bound recomputed
    by ``wilson_lower_bound`` matches the one thresholds were chosen on bit for bit.
    """
    s = successes.astype(np.float64)
    m = n.astype(np.float64)
    safe_m = np.where(m > 0, m, 1.0)
    p = s / safe_m
    z2 = z * z
    centre = p + z2 / (2 * safe_m)
    margin = z * np.sqrt(p * (1 - p) / safe_m + z2 / (4 * safe_m * safe_m))
    bound = (centre - margin) / (1 + z2 / safe_m)
    # Rounding can push the bound a hair below 0 when p == 0.
    result: npt.NDArray[np.float64] = np.where(m > 0, np.maximum(bound, 0.0), 0.0)
    return result
