"""The drift watch: a Bernoulli CUSUM on audit verdicts, read as an e-detector. Pure.

Each audited auto-action of a category is right (1) or wrong (0). While the
promise holds, P(right) = p ≥ target p₀. We watch for a fall to p₁, the
precision at which the error rate has doubled: 1 − p₁ = 2(1 − p₀) (0.95 → 0.90).
Per verdict y the likelihood ratio of p₁ against p₀ is

    L(y) = (p₁/p₀)^y · ((1 − p₁)/(1 − p₀))^(1 − y),

and the CUSUM statistic is S_t = max(0, S_{t−1} + log L(y_t)); the category is
flagged when S_t ≥ h = log(1/α).

Why this is safe to run after every single audit ("anytime-valid"): for every
p ≥ p₀, E_p[L(y)] = p·p₁/p₀ + (1 − p)(1 − p₁)/(1 − p₀) ≤ 1, so the running
product of L from any start time is a nonnegative supermartingale under the
null, and Ville's inequality bounds the chance it ever reaches 1/α by α. The
CUSUM is the maximum of those products over start times, which makes it an
e-detector (Shin, Ramdas & Rinaldo, 2023): its average run length to a false
alarm is at least 1/α verdicts, whatever the true precision above target and
however often it is looked at. A naive test repeated after every audit has no
such guarantee: its false alarms accumulate with every look.

With α = 1/1000 (h = 6.91), simulated at p = p₀ = 0.95 exactly (the worst case
the promise allows), it false-alarms in 2.2% of 2,000-verdict streams; a drop
to 0.89 is flagged after a median of 203 audited verdicts (90% within 377;
benchmarks/drift_watch.py, 2,000 streams).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALPHA", "CusumDesign", "cusum_design", "cusum_path", "first_alarm"]

# One false alarm per 1,000 audited verdicts on average at the very least.
ALPHA = 1e-3


@dataclass(frozen=True)
class CusumDesign:
    target: float  # p₀: the promised precision
    alternative: float  # p₁: the precision the watch is tuned to catch
    threshold: float  # h = log(1/α)

    @property
    def step_right(self) -> float:
        return math.log(self.alternative / self.target)

    @property
    def step_wrong(self) -> float:
        return math.log((1 - self.alternative) / (1 - self.target))

    def update(self, statistic: float, correct: bool) -> float:
        return max(0.0, statistic + (self.step_right if correct else self.step_wrong))

    def as_json(self) -> dict[str, float]:
        return {
            "target": self.target,
            "alternative": round(self.alternative, 4),
            "threshold": round(self.threshold, 4),
            "alpha": round(math.exp(-self.threshold), 8),
        }


def cusum_design(target: float, *, alpha: float = ALPHA) -> CusumDesign:
    """The watch for a target precision: tuned to a doubled error rate, alarm at log(1/α)."""
    if not 0.5 <= target < 1:
        raise ValueError(f"target must be in [0.5, 1), got {target}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    error = 1 - target
    # Double the error rate, but stay a proper alternative for loose targets (0.5 → 0.25).
    alternative = 1 - min(2 * error, (1 + error) / 2)
    return CusumDesign(target=target, alternative=alternative, threshold=math.log(1 / alpha))


def cusum_path(outcomes: Iterable[bool], *, design: CusumDesign) -> list[float]:
    """The statistic after each verdict, in order."""
    path, statistic = [], 0.0
    for correct in outcomes:
        statistic = design.update(statistic, correct)
        path.append(statistic)
    return path


def first_alarm(outcomes: Iterable[bool], *, design: CusumDesign) -> int | None:
    """How many verdicts it took to flag the stream (1-based), or None if never."""
    statistic = 0.0
    for count, correct in enumerate(outcomes, start=1):
        statistic = design.update(statistic, correct)
        if statistic >= design.threshold:
            return count
    return None
