"""The retired threshold rule, kept outside the product so benchmarks can compare against it.

The old rule took the lowest distinct confidence whose two-sided 95% Wilson bound
passes. Every candidate is tested and the best-looking one kept, so the stated
confidence does not hold (tests/test_certification.py measures how often it certifies
a wrong threshold). The product certifies with triage.routing.certify instead.

Imported by benchmarks/quality.py and benchmarks/replay.py (as ``_wilson``, with
benchmarks/ on sys.path) and by the tests (as ``benchmarks._wilson``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from triage.routing.certify import Certification, SelectionCurve

__all__ = ["wilson_lower_bound", "wilson_threshold"]


def wilson_lower_bound(successes: int, n: int, confidence: float = 0.95) -> float:
    """Lower end of the two-sided Wilson score interval for ``successes / n``."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    bound = _wilson_lower_bounds(np.array([successes]), np.array([n]), _z_score(confidence))
    return float(bound[0])


def wilson_threshold(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    target: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
) -> Certification:
    """The replaced rule: the lowest distinct confidence whose Wilson bound passes."""
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    curve = SelectionCurve.build(confidences, correct)
    delta = (1 - confidence_level) / 2
    if curve.n_total < min_support:
        return Certification.never(target, delta, curve.n_total, "not enough evidence", needed=None)
    bounds = _wilson_lower_bounds(curve.successes, curve.n_selected, _z_score(confidence_level))
    qualifying = np.flatnonzero((curve.n_selected >= min_support) & (bounds >= target))
    if len(qualifying) == 0:
        return Certification.never(target, delta, curve.n_total, "no threshold passes", needed=None)
    i = qualifying[-1]
    sel, ok = int(curve.n_selected[i]), int(curve.successes[i])
    return Certification(
        threshold=float(curve.thresholds[i]),
        target=target,
        delta=delta,
        n_total=curve.n_total,
        support=sel,
        successes=ok,
        precision=ok / sel,
        lower_bound=float(bounds[i]),
        coverage=sel / curve.n_total,
        reason="Wilson bound passes (old rule)",
    )


def _z_score(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {confidence}")
    return float(norm.ppf(1 - (1 - confidence) / 2))


def _wilson_lower_bounds(
    successes: npt.NDArray[np.int64], n: npt.NDArray[np.int64], z: float
) -> npt.NDArray[np.float64]:
    s = successes.astype(np.float64)
    m = n.astype(np.float64)
    safe_m = np.where(m > 0, m, 1.0)
    p = s / safe_m
    z2 = z * z
    centre = p + z2 / (2 * safe_m)
    margin = z * np.sqrt(p * (1 - p) / safe_m + z2 / (4 * safe_m * safe_m))
    bound = (centre - margin) / (1 + z2 / safe_m)
    result: npt.NDArray[np.float64] = np.where(m > 0, np.maximum(bound, 0.0), 0.0)
    return result
