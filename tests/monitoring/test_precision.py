"""Live precision: exact Clopper–Pearson, and inverse-probability weights across strata."""

import numpy as np
import pytest

from benchmarks._one_look import one_sided_lower
from triage.monitoring.precision import weighted_precision
from triage.stats import clopper_pearson_interval


def test_clopper_pearson_matches_known_values():
    assert clopper_pearson_interval(10, 10) == pytest.approx((0.69150, 1.0), abs=1e-5)
    assert clopper_pearson_interval(0, 10) == pytest.approx((0.0, 0.30850), abs=1e-5)
    assert clopper_pearson_interval(95, 100) == pytest.approx((0.88716, 0.98357), abs=1e-4)


def test_equal_probabilities_give_the_exact_interval():
    estimate = weighted_precision([True] * 95 + [False] * 5, probabilities=[0.05] * 100)
    assert estimate.method == "clopper-pearson"
    assert (estimate.audited, estimate.correct, estimate.precision) == (100, 95, 0.95)
    assert (estimate.lower, estimate.upper) == pytest.approx(clopper_pearson_interval(95, 100))


def test_nothing_audited_gives_no_precision_and_the_whole_interval():
    estimate = weighted_precision([], probabilities=[])
    assert estimate.precision is None
    assert (estimate.lower, estimate.upper) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("correct", "probabilities", "message"),
    [([True], [0.0], "probabilities"), ([True], [1.5], "probabilities"), ([True], [], "one")],
)
def test_bad_probabilities_are_refused(correct, probabilities, message):
    with pytest.raises(ValueError, match=message):
        weighted_precision(correct, probabilities=probabilities)


def _stratified_audits(rng):
    """A busy, precise category audited at 1% and a quiet, sloppy one audited at 50%."""
    correct, probability = [], []
    for volume, precision, rate in [(9000, 0.99, 0.01), (1000, 0.80, 0.5)]:
        audited = rng.random(volume) < rate
        right = rng.random(volume) < precision
        correct.extend(right[audited].tolist())
        probability.extend([rate] * int(audited.sum()))
    return correct, probability


TRUE_OVERALL = (9000 * 0.99 + 1000 * 0.80) / 10000  # 0.971


def test_weights_recover_overall_precision_where_strata_differ():
    """Pooling audits unweighted lets the quiet category dominate; weights undo that.

    Coverage of the 95% interval over 400 simulated weeks must be near nominal; the
    unweighted interval almost never covers the truth.
    """
    rng = np.random.default_rng(5)
    covered = naive_covered = 0
    for _ in range(400):
        correct, probability = _stratified_audits(rng)
        weighted = weighted_precision(correct, probabilities=probability)
        naive = weighted_precision(correct, probabilities=[1.0] * len(correct))
        covered += weighted.lower <= TRUE_OVERALL <= weighted.upper
        naive_covered += naive.lower <= TRUE_OVERALL <= naive.upper
    assert weighted.method != "clopper-pearson"
    assert covered / 400 >= 0.93
    assert naive_covered / 400 <= 0.05


def test_the_one_sided_bound_is_the_two_sided_interval_at_twice_the_level():
    estimate = weighted_precision([True] * 95 + [False] * 5, probabilities=[0.05] * 100)
    assert one_sided_lower(estimate, delta=0.05) == pytest.approx(
        clopper_pearson_interval(95, 100, 0.90)[0]
    )
    assert one_sided_lower(weighted_precision([], probabilities=[]), delta=0.05) == 0.0
