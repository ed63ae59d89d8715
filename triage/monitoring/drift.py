"""The drift watch: two Bernoulli CUSUMs on audit verdicts, read as one e-detector. Pure.

Each audited auto-action of a category is right (1) or wrong (0). While the
promise holds, P(right) = p ≥ target p₀. A CUSUM tuned to one alternative p₁ < p₀
adds, per verdict y, the log-likelihood ratio

    log L(y) = y·log(p₁/p₀) + (1 − y)·log((1 − p₁)/(1 − p₀)),

and restarts from 0 whenever its sum would go negative: S_t = max(0, S_{t−1} + log L(y_t)).

One CUSUM cannot be quick for both a collapse and a slow drift. Tuned to a doubled
error rate (0.90 → 0.80) it needs a median of 23 verdicts to flag a collapse to 0.50,
since each error only adds log 2. So the watch runs two arms over the same verdicts:

- a **drift arm** tuned to twice the error rate (0.90 → 0.80), holding 80% of the level;
- a **collapse arm** tuned to six times the error rate (0.90 → 0.40), holding 20%.

Its statistic is max_j (S_j + log w_j), floored at 0, with weights w = (0.8, 0.2), and
it alarms at h = log(1/α): an arm alarms when S_j ≥ log(1/(w_j·α)).

Why this is safe to run after every single audit ("anytime-valid"): for every
p ≥ p₀ and every p₁ < p₀, E_p[L(y)] ≤ 1, so each arm's running product of L from
any start is a nonnegative supermartingale under the null, and each arm is an
e-detector (Shin, Ramdas & Rinaldo, 2023). The weighted sum Σ w_j·exp(S_j) is an
e-detector too (the property is linear), and it is at least exp(statistic), so the
average run length to a false alarm is at least 1/α verdicts, whatever the true
precision above target and however often it is looked at.

With α = 1/2000 (h = 7.60), simulated at a 0.90 target with p = 0.90 exactly (the worst
case the promise allows), it false-alarms in 5.0% of 2,000-verdict streams, and flags
drops to 0.85, 0.78 and 0.50 after medians of 458, 108 and 15 audited verdicts; the
single CUSUM of before (α = 1/1000): 3.6%, 379, 96 and 23 (benchmarks/drift_watch.py,
2,000 streams, prints both from the same streams).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "ARMS",
    "CusumArm",
    "WatchDesign",
    "cusum_design",
    "cusum_path",
    "first_alarm",
    "single_cusum_design",
]

# At least 2,000 audited verdicts between false alarms on average.
ALPHA = 5e-4
# (multiple of the error rate the arm is tuned to, its share of the level)
ARMS: tuple[tuple[float, float], ...] = ((2.0, 0.8), (6.0, 0.2))


@dataclass(frozen=True)
class CusumArm:
    """One CUSUM: tuned to precision `alternative`, holding `weight` of the level."""

    alternative: float
    weight: float
    step_right: float
    step_wrong: float

    @classmethod
    def tuned(cls, target: float, *, multiple: float, weight: float) -> CusumArm:
        error = 1 - target
        # `multiple` times the error rate, but stay a proper alternative for loose targets:
        # at most the error plus (1 − 1/multiple) of what is left (0.5 at 2× → 0.75).
        alternative_error = min(multiple * error, error + (1 - error) * (1 - 1 / multiple))
        alternative = 1 - alternative_error
        return cls(
            alternative=alternative,
            weight=weight,
            step_right=math.log(alternative / target),
            step_wrong=math.log(alternative_error / error),
        )

    def update(self, statistic: float, correct: bool) -> float:
        return max(0.0, statistic + (self.step_right if correct else self.step_wrong))


@dataclass(frozen=True)
class WatchDesign:
    target: float  # p₀: the promised precision
    arms: tuple[CusumArm, ...]
    threshold: float  # h = log(1/α)

    @property
    def alternative(self) -> float:
        """The precision the most sensitive arm (the first) is tuned to catch."""
        return self.arms[0].alternative

    def start(self) -> tuple[float, ...]:
        return tuple(0.0 for _ in self.arms)

    def update(self, sums: Sequence[float], correct: bool) -> tuple[float, ...]:
        return tuple(arm.update(s, correct) for arm, s in zip(self.arms, sums, strict=True))

    def statistic(self, sums: Sequence[float]) -> float:
        """The one figure shown and compared with the threshold: max_j (S_j + log w_j), ≥ 0."""
        return max(0.0, *(s + math.log(arm.weight) for arm, s in zip(self.arms, sums, strict=True)))

    def as_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "alternative": round(self.alternative, 4),
            "arms": [
                {"alternative": round(a.alternative, 4), "weight": a.weight} for a in self.arms
            ],
            "threshold": round(self.threshold, 4),
            "alpha": round(math.exp(-self.threshold), 8),
        }


def cusum_design(
    target: float,
    *,
    alpha: float = ALPHA,
    arms: Sequence[tuple[float, float]] = ARMS,
) -> WatchDesign:
    """The watch for a target precision: its arms, and the alarm at log(1/α)."""
    if not 0.5 <= target < 1:
        raise ValueError(f"target must be in [0.5, 1), got {target}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not arms or abs(sum(w for _, w in arms) - 1) > 1e-9 or any(m <= 1 for m, _ in arms):
        raise ValueError("arms need multiples above 1 and weights that sum to 1")
    return WatchDesign(
        target=target,
        arms=tuple(CusumArm.tuned(target, multiple=m, weight=w) for m, w in arms),
        threshold=math.log(1 / alpha),
    )


def single_cusum_design(target: float) -> WatchDesign:
    """The design before issue 18: one CUSUM tuned to a doubled error rate, α = 1/1000.
    Kept for the benchmark's same-run comparison."""
    return cusum_design(target, alpha=1e-3, arms=((2.0, 1.0),))


def cusum_path(outcomes: Iterable[bool], *, design: WatchDesign) -> list[float]:
    """The statistic after each verdict, in order."""
    path, sums = [], design.start()
    for correct in outcomes:
        sums = design.update(sums, correct)
        path.append(design.statistic(sums))
    return path


def first_alarm(outcomes: Iterable[bool], *, design: WatchDesign) -> int | None:
    """How many verdicts it took to flag the stream (1-based), or None if never."""
    sums = design.start()
    for count, correct in enumerate(outcomes, start=1):
        sums = design.update(sums, correct)
        if design.statistic(sums) >= design.threshold:
            return count
    return None
