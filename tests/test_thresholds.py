"""Tests for per-category auto-action thresholds."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from triage.thresholds import (
    coverage_at_precision,
    derive_threshold,
    risk_coverage_curve,
    wilson_lower_bound,
)

Sample = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]


@st.composite
def held_out_predictions(draw: st.DrawFn, max_size: int = 500) -> Sample:
    """Confidences in [0, 1] (with frequent ties) and correctness at a drawn accuracy.

    Correctness comes from a drawn seed and accuracy rather than one boolean per
    item, so high-accuracy sets that actually earn a threshold are common.
    """
    n = draw(st.integers(0, max_size))
    value = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
    confidences = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
    accuracy = draw(st.sampled_from([0.5, 0.9, 0.97, 0.99, 1.0]) | st.floats(0, 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    correct = rng.random(n) < accuracy
    return confidences, correct


targets = st.floats(0.5, 1.0, exclude_min=True, exclude_max=True)


@settings(max_examples=300, deadline=None)
@given(held_out_predictions(), targets, st.integers(1, 60))
def test_returned_threshold_meets_target_with_enough_support(
    sample: Sample, target: float, min_support: int
) -> None:
    confidences, correct = sample
    result = derive_threshold(
        confidences, correct, target_precision=target, min_support=min_support
    )
    event("never auto-acts" if result.threshold is None else "threshold found")
    if result.threshold is None:
        assert (result.support, result.coverage, result.precision) == (0, 0.0, None)
        return
    selected = confidences >= result.threshold
    support = int(selected.sum())
    successes = int(correct[selected].sum())
    assert support == result.support >= min_support
    assert wilson_lower_bound(successes, support) >= target
    assert result.lower_bound == wilson_lower_bound(successes, support)
    assert result.precision == pytest.approx(successes / support)
    assert result.coverage == pytest.approx(support / len(confidences))


@settings(max_examples=300, deadline=None)
@given(held_out_predictions(max_size=60), targets, st.integers(1, 10))
def test_returned_threshold_is_the_lowest_qualifying_candidate(
    sample: Sample, target: float, min_support: int
) -> None:
    confidences, correct = sample
    qualifying = [
        t
        for t in np.unique(confidences)
        if (confidences >= t).sum() >= min_support
        and wilson_lower_bound(int(correct[confidences >= t].sum()), int((confidences >= t).sum()))
        >= target
    ]
    expected = min(qualifying) if len(confidences) >= min_support and qualifying else None
    result = derive_threshold(
        confidences, correct, target_precision=target, min_support=min_support
    )
    assert result.threshold == expected


def test_too_few_examples_never_auto_acts() -> None:
    result = derive_threshold(np.full(12, 0.99), np.ones(12, bool), target_precision=0.5)
    assert result.threshold is None
    assert result.coverage == 0.0
    assert "not enough" in result.reason
    assert "12 < 30" in result.reason


def test_selected_set_needs_min_support_too() -> None:
    # Only the top 10 are reliably right; everything below is a coin flip.
    confidences = np.concatenate([np.full(10, 0.99), np.linspace(0.5, 0.9, 90)])
    correct = np.concatenate([np.ones(10, bool), np.arange(90) % 2 == 0])
    result = derive_threshold(confidences, correct, target_precision=0.7)
    assert result.threshold is None
    assert "best achievable lower bound" in result.reason
    assert "< target 70.0%" in result.reason


def test_perfect_classifier_automates_everything() -> None:
    confidences = np.linspace(0.4, 1.0, 200)
    result = derive_threshold(confidences, np.ones(200, bool), target_precision=0.95)
    assert result.threshold == pytest.approx(0.4)
    assert result.coverage == 1.0
    assert result.support == 200
    assert result.precision == 1.0
    assert result.lower_bound is not None and result.lower_bound >= 0.95
    assert "≥ target 95.0% at threshold 0.400" in result.reason


def test_ties_are_selected_together() -> None:
    # 40 right at 0.9 and then 40 at 0.8 of which 20 are wrong: the tie at 0.8
    # cannot be split to keep just its correct half.
    confidences = np.concatenate([np.full(40, 0.9), np.full(40, 0.8)])
    correct = np.concatenate([np.ones(60, bool), np.zeros(20, bool)])
    result = derive_threshold(confidences, correct, target_precision=0.9)
    assert result.threshold == 0.9
    assert result.support == 40
    assert result.coverage == 0.5


@pytest.mark.parametrize("target", [0.0, -0.1, 1.01, float("nan")])
def test_invalid_target_raises(target: float) -> None:
    with pytest.raises(ValueError, match="target_precision"):
        derive_threshold(np.ones(50), np.ones(50, bool), target_precision=target)


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        derive_threshold(np.ones(50), np.ones(49, bool), target_precision=0.9)


def test_wilson_known_values() -> None:
    assert wilson_lower_bound(95, 100) == pytest.approx(0.8883, abs=1e-4)
    assert wilson_lower_bound(10, 10) == pytest.approx(0.7225, abs=1e-4)
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(0, 20) == 0.0
    # A looser confidence level gives a tighter (higher) bound.
    assert wilson_lower_bound(95, 100, confidence=0.8) > wilson_lower_bound(95, 100)


def test_handles_100k_points_quickly() -> None:
    rng = np.random.default_rng(7)
    confidences = rng.random(100_000)
    correct = rng.random(100_000) < confidences
    start = time.perf_counter()
    result = derive_threshold(confidences, correct, target_precision=0.95)
    assert time.perf_counter() - start < 2.0
    assert result.threshold is not None
    # Correct with probability = confidence, so roughly the top 10%+ qualifies.
    assert 0.85 < result.threshold < 0.95


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
    assert curve[-1].threshold == confidences.min()
    assert all(p.lower_bound <= p.precision for p in curve)
    assert risk_coverage_curve(np.array([]), np.array([], bool)) == []


def test_coverage_at_precision_matches_derive_threshold() -> None:
    confidences = np.linspace(0.4, 1.0, 200)
    correct = confidences > 0.5
    result = derive_threshold(confidences, correct, target_precision=0.95)
    assert coverage_at_precision(confidences, correct, target_precision=0.95) == (
        result.coverage,
        result.precision,
    )
    assert coverage_at_precision(np.ones(5), np.ones(5, bool), target_precision=0.9) == (
        0.0,
        None,
    )
