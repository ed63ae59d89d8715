"""Live precision from audit verdicts, with an exact 95% interval. Pure: no database.

Each audited auto-action is a Bernoulli trial: was the model right? With equal
audit probabilities the count of right answers is binomial and the
Clopper–Pearson interval is exact (its coverage is at least the nominal level
for every true precision and every n).

Audit probabilities are not equal: each category has its own rate, and a quiet
category's rate is raised to meet the weekly floor. A plain average of verdicts
would then over-represent the quiet categories. Each verdict is therefore
weighted by 1/probability (inverse-probability weighting; the Hájek ratio
estimator Σwᵢyᵢ / Σwᵢ), and the interval is Clopper–Pearson evaluated at Kish's
effective sample size n_eff = (Σw)² / Σw² with x_eff = p̂·n_eff. (This is not the
Korn–Graubard interval, which earlier versions named: Korn and Graubard (1998) adjust
the effective n by the design's degrees of freedom; this uses Kish's n as it is.) With
equal weights it is exactly Clopper–Pearson; with unequal weights it is approximate,
and benchmarks/live_precision.py measures its coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from triage.stats import clopper_pearson_interval, hajek_mean, kish_effective_n, mixture_lower

__all__ = ["PrecisionEstimate", "anytime_lower", "weighted_precision"]


@dataclass(frozen=True)
class PrecisionEstimate:
    """Precision of auto-actions estimated from audits.

    precision is None when nothing was audited. audited counts verdicts;
    correct counts the right ones; effective_n is Kish's effective sample size
    (equal to audited when all audit probabilities are equal).
    """

    audited: int
    correct: int
    precision: float | None
    lower: float
    upper: float
    effective_n: float
    method: str

    def as_json(self) -> dict[str, object]:
        return {
            "audited": self.audited,
            "correct": self.correct,
            "precision": None if self.precision is None else round(self.precision, 4),
            "interval": [round(self.lower, 4), round(self.upper, 4)],
            "effective_n": round(self.effective_n, 1),
            "method": self.method,
        }


CLOPPER_PEARSON = "clopper-pearson"
KISH = "ipw-hajek+clopper-pearson-at-kish-n-eff"


def weighted_precision(
    correct: Sequence[bool], *, probabilities: Sequence[float], confidence: float = 0.95
) -> PrecisionEstimate:
    """Precision of all auto-actions from audit verdicts drawn with these probabilities."""
    y = np.asarray(correct, dtype=bool)
    p = np.asarray(probabilities, dtype=float)
    if y.shape != p.shape:
        raise ValueError("one audit probability per verdict")
    if len(p) and (np.any(p <= 0) or np.any(p > 1)):
        raise ValueError("audit probabilities must be in (0, 1]")
    n, right = len(y), int(y.sum())
    if n == 0:
        return PrecisionEstimate(0, 0, None, 0.0, 1.0, 0.0, CLOPPER_PEARSON)
    w = 1.0 / p
    if np.allclose(w, w[0]):
        lower, upper = clopper_pearson_interval(right, n, confidence)
        return PrecisionEstimate(n, right, right / n, lower, upper, float(n), CLOPPER_PEARSON)
    estimate = hajek_mean(y, w)
    n_eff = kish_effective_n(w)
    lower, upper = clopper_pearson_interval(estimate * n_eff, n_eff, confidence)
    return PrecisionEstimate(n, right, estimate, lower, upper, n_eff, KISH)


def anytime_lower(estimate: PrecisionEstimate, *, delta: float) -> float:
    """A lower bound on precision that holds at every look at once, with probability at
    least 1 − δ: Robbins's uniform-mixture confidence sequence (triage.stats.mixture_lower)
    at the estimate's effective n (Kish's, when the audit probabilities differ).

    Audits accumulate and are read after every verdict; a one-look bound read that way
    would clear a target that is not met far more often than δ (the retired one-look
    bound is benchmarks/_one_look.py; tests/monitoring/test_audit_certificate.py shows
    it). 0.0 when nothing was audited.
    """
    if estimate.precision is None or estimate.effective_n <= 0:
        return 0.0
    n = estimate.effective_n
    return mixture_lower(min(estimate.precision * n, n), n, delta)
