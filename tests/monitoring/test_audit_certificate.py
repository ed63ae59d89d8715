"""Certifying the live threshold on audits alone, read after every verdict.

Audits accumulate and the cockpit, the API and the policy command read the bound after
each one. A threshold whose true precision is just under its target must be certified
on audits at most delta of the time over the whole stream of looks. The one-look exact
bound, read that way, fails the same check; the anytime-valid bound does not.
"""

import numpy as np

from benchmarks._one_look import one_sided_lower
from triage.monitoring.live import audit_certification
from triage.monitoring.precision import anytime_lower, weighted_precision

DELTA = 0.05
TARGET = 0.90
TRUE_PRECISION = 0.895
MIN_SUPPORT = 30
LOOKS = 400


def certified_somewhere(bound, rng: np.random.Generator, *, weighted: bool) -> bool:
    right = rng.random(LOOKS) < TRUE_PRECISION
    # Two strata sampled at different rates: the weighted (Kish) path.
    probabilities = (
        np.where(rng.random(LOOKS) < 0.5, 0.05, 0.2) if weighted else np.full(LOOKS, 0.05)
    )
    for n in range(MIN_SUPPORT, LOOKS + 1, 5):
        estimate = weighted_precision(right[:n], probabilities=probabilities[:n])
        if bound(estimate, delta=DELTA) >= TARGET:
            return True
    return False


def wrong_rate(bound, *, weighted: bool = False, trials: int = 400) -> float:
    rng = np.random.default_rng(99)
    return sum(certified_somewhere(bound, rng, weighted=weighted) for _ in range(trials)) / trials


def test_the_anytime_bound_certifies_a_threshold_below_target_rarely_over_every_look():
    assert wrong_rate(anytime_lower) <= DELTA


def test_the_one_look_bound_read_after_every_verdict_fails_the_same_check():
    assert wrong_rate(one_sided_lower) > 2 * DELTA


def test_a_threshold_well_above_target_is_certified_on_its_audits():
    rng = np.random.default_rng(1)
    right = rng.random(300) < 0.97
    check = audit_certification(
        weighted_precision(right, probabilities=np.full(300, 0.05)),
        target=TARGET,
        delta=DELTA,
        min_support=MIN_SUPPORT,
    )
    assert check["verified"] is True and check["lower_bound"] >= TARGET
    few = audit_certification(
        weighted_precision(right[:10], probabilities=np.full(10, 0.05)),
        target=TARGET,
        delta=DELTA,
        min_support=MIN_SUPPORT,
    )
    assert few["verified"] is None  # too few audits to say
