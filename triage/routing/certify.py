"""Confidence thresholds that let the model act on its own, with a guarantee.

The promise to an admin: "automatic actions of this category are at least
``target`` precise". A threshold ``t`` automates every prediction of the
category with calibrated confidence ``>= t``. We *certify* ``t`` on labelled
evidence the model did not train on (out-of-fold predictions, see
triage.training.fit): with probability at least ``1 - delta`` over the evidence,
the true precision of every certified threshold is at least the target.

How (fixed-sequence testing, as in Learn-then-Test, Angelopoulos et al. 2021):

1. Candidate thresholds form a grid chosen from the confidences alone, before
   correctness is looked at: the most conservative keeps the most confident
   ``first_support`` items, later ones add items in even steps down to the
   least confident prediction.
2. They are tested from the most conservative down. Each test asks whether the
   exact one-sided Clopper-Pearson lower bound of precision clears the target.
   The first failure stops the walk; the last success is the threshold.
   Because the order is fixed in advance and we stop at the first failure, no
   multiple-testing correction is needed however long the grid is.
3. Several walks start at different sizes (triage.routing.walks): multiples of
   the zero-error count n₀ (n₀, 4·n₀, 16·n₀) and fixed shares of the scope's
   evidence (5%, 10%, 20%). They are tested as one fixed sequence with the
   fallback procedure (Wiens 2003; Wiens and Dmitrienko 2005): the candidates of
   all walks in one order, most conservative first, and each walk's opening
   candidate given delta / walks. A candidate is tested at the level it is given
   plus the level of the candidate before it if that one passed; a failure passes
   nothing on, and the search goes on at the next walk's opening. So a run of
   passes gathers the levels of the walks it goes through (up to delta), while
   one unlucky error among the most confident items (a noisy top) still leaves
   the later walks their own share. The fallback procedure bounds the chance of
   certifying any wrong threshold by delta under any dependence between the
   tests, and it certifies at least what testing each walk alone at delta /
   walks (a union bound, the rule before) certifies on the same candidates. The
   lowest certified threshold wins. The starts depend on the settings and the
   number of items only; the design was chosen by simulation
   (tests/test_certification*.py).

Assumptions: evidence items are exchangeable with the items the threshold will
be applied to, and, given the confidences, their correctness is independent.
The scope is one category, or a pool of categories certified together (the
promise then covers their auto-actions as a whole); which categories share a
scope, and at what share of delta, is triage.routing.scopes.

The old rule (take the lowest threshold whose two-sided 95% Wilson bound
passes, out of every distinct confidence) lives in benchmarks/_wilson.py, only
so benchmarks and tests can show why it was replaced: choosing among hundreds
of tests after seeing them certifies a wrong threshold more often than it says.

The bound itself and the evidence it needs are statistics (triage.stats); this
module is the certification policy built on them. Pure: no Django, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from triage.routing.walks import (
    DEFAULT_WALKS,
    GEOMETRIC_ONLY,
    WalkDesign,
    candidate_grid,
    enough_evidence,
    first_support,
    walk_sequence,
    walk_starts,
)
from triage.stats import clopper_pearson_lower_bounds, correct_needed

__all__ = [
    "DEFAULT_DELTA",
    "Certification",
    "CoveragePoint",
    "SelectionCurve",
    "candidate_grid",
    "certify_threshold",
    "first_support",
    "walk_sequence",
    "walk_starts",
    "enough_evidence",
    "WalkDesign",
    "DEFAULT_WALKS",
    "GEOMETRIC_ONLY",
    "risk_coverage_curve",
]

DEFAULT_DELTA = 0.05


@dataclass(frozen=True)
class Certification:
    """The certified threshold for one scope (a category, or pooled) and why.

    ``threshold`` None: never auto-act. ``support`` evidence items are selected
    (confidence >= threshold), ``successes`` of them correct, with exact lower
    bound ``lower_bound``; ``coverage`` is their share of the ``n_total``
    evidence items. ``needed`` is, when nothing could be certified, about how
    many correct predictions above the most conservative threshold would make
    the target certifiable (None when more evidence like this cannot help).
    """

    threshold: float | None
    target: float
    delta: float
    n_total: int
    support: int
    successes: int
    precision: float | None
    lower_bound: float | None
    coverage: float
    reason: str
    needed: int | None = None

    @property
    def certified(self) -> bool:
        return self.threshold is not None

    @classmethod
    def passed(
        cls,
        threshold: float,
        target: float,
        delta: float,
        n: int,
        *,
        support: int,
        successes: int,
        bound: float,
    ) -> Certification:
        """Threshold certified: ``successes`` of the ``support`` items above it right, with
        lower bound ``bound``."""
        return cls(
            threshold=threshold,
            target=target,
            delta=delta,
            n_total=n,
            support=support,
            successes=successes,
            precision=successes / support,
            lower_bound=bound,
            coverage=support / n,
            reason=(
                f"{successes} of {support} right above {threshold:.3f}: precision ≥ "
                f"{bound:.1%} with {1 - delta:.0%} confidence, target {target:.1%}"
            ),
        )

    @classmethod
    def never(
        cls, target: float, delta: float, n: int, reason: str, *, needed: int | None
    ) -> Certification:
        """No threshold: the scope never auto-acts, for ``reason``."""
        return cls(
            threshold=None,
            target=target,
            delta=delta,
            n_total=n,
            support=0,
            successes=0,
            precision=None,
            lower_bound=None,
            coverage=0.0,
            reason=reason,
            needed=needed,
        )


def certify_threshold(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    target: float,
    delta: float = DEFAULT_DELTA,
    min_support: int = 30,
    design: WalkDesign = DEFAULT_WALKS,
) -> Certification:
    """The lowest threshold certified by fixed-sequence testing (see the module doc)."""
    _check_target(target)
    _check_delta(delta)
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}")
    conf, right = _as_arrays(confidences, correct)
    n = len(conf)
    zero_error = correct_needed(target, delta)
    if zero_error is None:
        return Certification.never(
            target,
            delta,
            n,
            "a 100% target cannot be certified from a finite sample",
            needed=None,
        )
    starts, level = walk_starts(
        n, target=target, delta=delta, min_support=min_support, design=design
    )
    if n < starts[0]:
        return Certification.never(
            target,
            delta,
            n,
            f"needs about {starts[0]} correct predictions above the threshold "
            f"(at least {zero_error} with no error); has {int(right.sum())} of {n}",
            needed=starts[0],
        )
    grid, opens = walk_sequence(conf, starts, step=design.step)
    selected = conf[None, :] >= grid[:, None]
    support = selected.sum(axis=1)
    successes = (selected & right[None, :]).sum(axis=1)
    # bounds[k - 1, i]: candidate i's bound at k walks' share of delta.
    shares = np.arange(1, len(starts) + 1)[:, None]
    bounds = clopper_pearson_lower_bounds(successes[None, :], support[None, :], shares * level)
    best: tuple[float, int, int, float] | None = None
    carried = 0  # walks whose level the run of passes so far carries
    for i in range(len(grid)):
        walks = carried + int(opens[i])
        if not walks:
            continue  # between walks, after a failure: nothing to test with
        if bounds[walks - 1, i] >= target:
            # Candidates come most conservative first, so the last pass is the lowest.
            best = float(grid[i]), int(support[i]), int(successes[i]), float(bounds[walks - 1, i])
            carried = walks
        else:
            carried = 0  # a failure passes nothing on: the next walk opens with its own share
    first_test = int(successes[0]), int(support[0])
    if best is None:
        s0, n0 = first_test
        needed = correct_needed(target, level, error_rate=1 - s0 / n0)
        if needed is None:
            reason = (
                f"the {n0} most confident predictions are {s0 / n0:.1%} right, not above the "
                f"target {target:.1%}: more evidence will not certify it; it needs a better "
                "model or a lower target"
            )
        else:
            reason = (
                f"needs about {needed} correct predictions above the threshold "
                f"(at the observed {s0 / n0:.1%}); has {s0} of {n0}"
            )
        return Certification.never(target, delta, n, reason, needed=needed)
    threshold, sel, ok, bound = best
    return Certification.passed(threshold, target, delta, n, support=sel, successes=ok, bound=bound)


@dataclass(frozen=True)
class SelectionCurve:
    """Selected-set statistics at every distinct confidence, highest first.

    Threshold ``thresholds[i]`` selects ``n_selected[i]`` of the ``n_total`` items,
    ``successes[i]`` of them correct.
    """

    n_total: int
    thresholds: npt.NDArray[np.float64]
    n_selected: npt.NDArray[np.int64]
    successes: npt.NDArray[np.int64]

    @classmethod
    def build(cls, confidences: npt.ArrayLike, correct: npt.ArrayLike) -> SelectionCurve:
        conf, right = _as_arrays(confidences, correct)
        # Sorted descending, "confidence >= t" is a prefix; tied confidences are
        # selected together, so a candidate's prefix ends at the last copy of its value.
        order = np.argsort(-conf, kind="stable")
        conf_sorted = conf[order]
        cum_successes = np.cumsum(right[order], dtype=np.int64)
        is_last_copy = np.append(conf_sorted[1:] != conf_sorted[:-1], len(conf) > 0)
        ends = np.flatnonzero(is_last_copy)
        return cls(
            n_total=len(conf),
            thresholds=conf_sorted[ends],
            n_selected=(ends + 1).astype(np.int64),
            successes=cum_successes[ends],
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
    delta: float = DEFAULT_DELTA,
    points: int = 20,
) -> list[CoveragePoint]:
    """Share automated vs precision as the threshold drops, down-sampled for display.

    Returns at most ``points`` points in order of increasing coverage (falling
    threshold); the last one is coverage 1.0. The bound shown is the pointwise
    Clopper-Pearson bound: for display, not a certificate.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    curve = SelectionCurve.build(confidences, correct)
    if curve.n_total == 0:
        return []
    goals = np.ceil(np.arange(1, points + 1) / points * curve.n_total)
    picks = np.unique(np.searchsorted(curve.n_selected, goals, side="left"))
    bounds = clopper_pearson_lower_bounds(curve.successes[picks], curve.n_selected[picks], delta)
    return [
        CoveragePoint(
            threshold=float(curve.thresholds[i]),
            coverage=float(curve.n_selected[i]) / curve.n_total,
            precision=float(curve.successes[i] / curve.n_selected[i]),
            lower_bound=float(b),
        )
        for i, b in zip(picks, bounds, strict=True)
    ]


# --- Internals ------------------------------------------------------------------------


def _as_arrays(
    confidences: npt.ArrayLike, correct: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or right.ndim != 1:
        raise ValueError("confidences and correct must be 1-D arrays")
    if len(conf) != len(right):
        raise ValueError(f"confidences and correct differ in length ({len(conf)} != {len(right)})")
    if not np.all(np.isfinite(conf)):
        raise ValueError("confidences must be finite")
    return conf, right


def _check_target(target: float) -> None:
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")


def _check_delta(delta: float) -> None:
    if not 0 < delta < 0.5:
        raise ValueError(f"delta must be in (0, 0.5), got {delta}")
