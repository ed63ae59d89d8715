"""Certified thresholds: fixed-sequence testing with an exact binomial bound."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from benchmarks._wilson import wilson_lower_bound, wilson_threshold
from triage.routing.certify import (
    candidate_grid,
    certify_threshold,
    risk_coverage_curve,
    walk_starts,
)
from triage.stats import clopper_pearson_lower, correct_needed

Sample = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]


@st.composite
def evidence(draw: st.DrawFn, max_size: int = 1500) -> Sample:
    """Confidences in [0, 1] (ties drawn often) and correctness rising with confidence.

    Drawn from a seed rather than value by value, so large sets stay fast.
    """
    n = draw(st.integers(0, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    confidences = rng.random(n)
    if draw(st.booleans()):  # heavy ties
        confidences = rng.choice([0.0, 0.5, 0.9, 0.99, 1.0], size=n)
    floor = draw(st.sampled_from([0.5, 0.9, 0.97, 0.99, 1.0]) | st.floats(0, 1))
    correct = rng.random(n) < floor + (1 - floor) * confidences
    return confidences, correct


targets = st.sampled_from([0.5, 0.8, 0.9, 0.95]) | st.floats(0.5, 0.97)


def sequence(
    confidences: npt.NDArray[np.float64], *, target: float, min_support: int
) -> tuple[list[float], list[float], float]:
    """The candidates, most conservative first (the longest walk's grid and every walk's
    first candidate), each walk's first candidate, and the level a walk opens with."""
    starts, level = walk_starts(
        len(confidences), target=target, delta=0.05, min_support=min_support
    )
    ordered = np.sort(confidences)[::-1]
    opening = [float(ordered[s - 1]) for s in starts if s <= len(confidences)]
    grid = sorted(set(candidate_grid(confidences, start=starts[0]).tolist()) | set(opening))
    return grid[::-1], opening, level


def fallback_reference(
    confidences: npt.NDArray[np.float64],
    correct: npt.NDArray[np.bool_],
    *,
    target: float,
    min_support: int,
) -> tuple[float | None, float | None]:
    """The fallback procedure written out plainly: (lowest certified threshold, its bound).

    One scalar Clopper-Pearson bound per test; the sequence is the longest walk's grid
    with every walk's first candidate added, each walk opening with delta / walks.
    """
    grid, opening, level = sequence(confidences, target=target, min_support=min_support)
    found: tuple[float | None, float | None] = (None, None)
    carried = 0.0
    for t in grid:
        alpha = carried + level * opening.count(t)
        if alpha == 0:
            continue
        chosen = confidences >= t
        bound = clopper_pearson_lower(int(correct[chosen].sum()), int(chosen.sum()), alpha)
        if bound >= target:
            found, carried = (t, bound), alpha
        else:
            carried = 0.0
    return found


@settings(max_examples=150, deadline=None)
@given(evidence(), targets, st.integers(1, 60))
def test_a_certified_threshold_is_the_fallback_procedures_lowest_pass(
    sample: Sample, target: float, min_support: int
) -> None:
    confidences, correct = sample
    result = certify_threshold(confidences, correct, target=target, min_support=min_support)
    expected, bound = fallback_reference(
        confidences, correct, target=target, min_support=min_support
    )
    event("never auto-acts" if result.threshold is None else "certified")
    if result.threshold is None:
        assert (result.support, result.coverage, result.precision) == (0, 0.0, None)
        assert expected is None
        return
    assert result.threshold == expected
    selected = confidences >= result.threshold
    assert result.support == int(selected.sum()) >= min_support
    assert result.lower_bound is not None and result.lower_bound >= target
    assert result.lower_bound == pytest.approx(bound)


@settings(max_examples=150, deadline=None)
@given(evidence(), targets, st.integers(1, 60))
def test_the_fallback_certifies_at_least_what_each_walk_alone_certifies(
    sample: Sample, target: float, min_support: int
) -> None:
    # The rule before: each walk alone at delta / walks on its own grid, the lowest
    # certified threshold kept (a union bound). On the same evidence the fallback
    # sequence never certifies less: at each walk's opening its level is at least that
    # walk's share, and it only grows while the tests pass.
    confidences, correct = sample
    result = certify_threshold(confidences, correct, target=target, min_support=min_support)
    grid, opening, level = sequence(confidences, target=target, min_support=min_support)

    def passes(t: float) -> bool:
        chosen = confidences >= t
        return clopper_pearson_lower(int(correct[chosen].sum()), int(chosen.sum()), level) >= target

    ends = []
    for first in opening:
        walk = [t for t in grid if t <= first]
        run = 0
        while run < len(walk) and passes(walk[run]):
            run += 1
        if run:
            ends.append(walk[run - 1])
    if ends:
        assert result.threshold is not None and result.threshold <= min(ends)


def test_walks_start_at_growing_sizes_and_evidence_shares_and_share_delta() -> None:
    # Too few items for a second walk: one, at the full delta, from the zero-error count.
    assert walk_starts(50, target=0.95, delta=0.05, min_support=30) == ([59], 0.05)
    starts, level = walk_starts(5000, target=0.95, delta=0.05, min_support=30)
    assert level == pytest.approx(0.05 / 6)
    n0 = correct_needed(0.95, 0.05 / 6)
    assert starts == sorted([n0, 4 * n0, 16 * n0, 250, 500, 1000])
    # Shares below the zero-error count do not start a walk; the level follows the count.
    starts, level = walk_starts(1000, target=0.99, delta=0.05, min_support=30)
    assert (starts, level) == ([correct_needed(0.99, 0.05)], 0.05)


def test_the_starts_depend_on_the_count_and_the_settings_only() -> None:
    for n in (0, 10, 100, 999, 5000, 123_456):
        assert walk_starts(n, target=0.9, delta=0.05, min_support=30) == walk_starts(
            n, target=0.9, delta=0.05, min_support=30
        )
        starts, level = walk_starts(n, target=0.9, delta=0.05, min_support=30)
        assert starts == sorted(starts) and level == pytest.approx(0.05 / len(starts))


@settings(max_examples=100, deadline=None)
@given(evidence(max_size=400), st.integers(0, 2**32 - 1))
def test_the_grid_is_chosen_from_confidences_alone(sample: Sample, seed: int) -> None:
    confidences, _ = sample
    shuffled = np.random.default_rng(seed).permutation(confidences)
    assert np.array_equal(candidate_grid(confidences, start=30), candidate_grid(shuffled, start=30))


def test_clopper_pearson_known_values() -> None:
    # n out of n right: the bound is delta ** (1 / n).
    assert clopper_pearson_lower(50, 50) == pytest.approx(0.05 ** (1 / 50))
    # Matches scipy.stats.binomtest(95, 100, alternative="greater").proportion_ci().
    assert clopper_pearson_lower(95, 100) == pytest.approx(0.89775, abs=1e-4)
    assert clopper_pearson_lower(0, 20) == 0.0
    assert clopper_pearson_lower(0, 0) == 0.0
    # A laxer delta gives a tighter (higher) bound.
    assert clopper_pearson_lower(95, 100, alpha=0.2) > clopper_pearson_lower(95, 100)


def test_evidence_needed_at_common_targets() -> None:
    # The arithmetic: about 60 error-free items for 95%, about 300 for 99%.
    assert correct_needed(0.95) == 59
    assert correct_needed(0.99) == 299
    assert correct_needed(0.9) == 29
    assert correct_needed(0.95, error_rate=0.06) is None  # observed 94% < target
    assert correct_needed(1.0) is None


@pytest.mark.parametrize(("target", "error_rate"), [(0.9, 0.05), (0.95, 0.02), (0.97, 0.01)])
def test_evidence_needed_is_the_smallest_count_whose_bound_clears(
    target: float, error_rate: float
) -> None:
    n = correct_needed(target, error_rate=error_rate)
    assert n is not None

    def bound(m: int) -> float:
        return clopper_pearson_lower(m - math.ceil(error_rate * m), m)

    assert bound(n) >= target
    assert bound(n - 2) < target  # within an item of the smallest (errors are whole)


def test_too_little_evidence_says_how_much_is_needed() -> None:
    result = certify_threshold(np.full(52, 0.99), np.ones(52, bool), target=0.99)
    assert result.threshold is None
    assert result.needed == 299  # the zero-error count: where the first walk starts
    assert "needs about 299 correct predictions above the threshold" in result.reason
    assert "at least 299 with no error" in result.reason
    assert "has 52 of 52" in result.reason


def test_more_evidence_cannot_fix_a_model_below_the_target() -> None:
    # Enough items, but the most confident ones are only 80% right.
    confidences = np.linspace(0.5, 1.0, 400)
    correct = np.arange(400) % 5 != 0
    result = certify_threshold(confidences, correct, target=0.9)
    assert result.threshold is None
    assert result.needed is None
    assert "more evidence will not certify it" in result.reason


def test_a_near_miss_says_how_many_more_would_do() -> None:
    # 97% right at the top against a 95% target: certifiable with more of the same.
    confidences = np.linspace(0.5, 1.0, 130)
    correct = np.arange(130) % 33 != 0
    result = certify_threshold(confidences, correct, target=0.95)
    assert result.threshold is None
    assert result.needed is not None and result.needed > 130
    assert f"needs about {result.needed} correct predictions" in result.reason


def test_perfect_classifier_automates_everything() -> None:
    confidences = np.linspace(0.4, 1.0, 200)
    result = certify_threshold(confidences, np.ones(200, bool), target=0.95)
    assert result.threshold == pytest.approx(0.4)
    assert (result.coverage, result.support, result.precision) == (1.0, 200, 1.0)
    assert result.lower_bound is not None and result.lower_bound >= 0.95


def test_the_walk_stops_at_the_first_failure() -> None:
    # A perfect top, then a bad patch, then a perfect tail: the pooled set at the
    # very bottom would pass again, but the walk stopped at the bad patch.
    confidences = np.linspace(1.0, 0.0, 1000)
    correct = np.ones(1000, bool)
    correct[300:380] = False
    result = certify_threshold(confidences, correct, target=0.9)
    full = clopper_pearson_lower(int(correct.sum()), 1000)
    assert full >= 0.9
    assert result.threshold is not None and result.threshold > confidences[400]


def test_ties_are_selected_together() -> None:
    confidences = np.concatenate([np.full(200, 0.9), np.full(200, 0.8)])
    correct = np.concatenate([np.ones(300, bool), np.zeros(100, bool)])
    result = certify_threshold(confidences, correct, target=0.9)
    assert result.threshold == 0.9
    assert result.support == 200


@pytest.mark.parametrize("target", [0.0, -0.1, 1.01, float("nan")])
def test_invalid_target_raises(target: float) -> None:
    with pytest.raises(ValueError, match="target precision"):
        certify_threshold(np.ones(50), np.ones(50, bool), target=target)


@pytest.mark.parametrize("delta", [0.0, 0.5, 0.7, -0.1])
def test_invalid_delta_raises(delta: float) -> None:
    with pytest.raises(ValueError, match="delta"):
        certify_threshold(np.ones(50), np.ones(50, bool), target=0.9, delta=delta)


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        certify_threshold(np.ones(50), np.ones(49, bool), target=0.9)


def test_the_old_wilson_rule_is_kept_for_comparison() -> None:
    assert wilson_lower_bound(95, 100) == pytest.approx(0.8883, abs=1e-4)
    confidences = np.linspace(0.4, 1.0, 200)
    old = wilson_threshold(confidences, np.ones(200, bool), target=0.95)
    assert old.threshold == pytest.approx(0.4)


def test_risk_coverage_curve_is_downsampled_and_ends_at_full_coverage() -> None:
    rng = np.random.default_rng(3)
    confidences = rng.random(1_000)
    correct = rng.random(1_000) < confidences
    curve = risk_coverage_curve(confidences, correct, points=20)
    assert len(curve) == 20
    coverages = [p.coverage for p in curve]
    assert coverages == sorted(coverages)
    assert coverages[0] == pytest.approx(0.05)
    assert coverages[-1] == 1.0
    assert all(p.lower_bound <= p.precision for p in curve)
    assert risk_coverage_curve(np.array([]), np.array([], bool)) == []
