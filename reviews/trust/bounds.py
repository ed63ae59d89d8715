"""Exact one-sided binomial bounds (Clopper–Pearson), for rules that must not fire on luck.

A raw rate from five decisions says little: 3 agreements of 5 is 60%, yet an analyst
who agrees 90% of the time shows it about one time in twelve. The quarantine rules
compare bounds, not rates, so they act only once the evidence rules luck out at level
alpha. The assumption: an analyst's decisions are independent trials with one fixed
rate over the window (tests/reviews/test_quarantine.py simulates it).
"""

from scipy.stats import beta


def upper_bound(successes: int, *, trials: int, alpha: float) -> float:
    """The rate is at most this, with probability at least 1 - alpha (1.0 without data)."""
    if trials <= 0 or successes >= trials:
        return 1.0
    return float(beta.ppf(1 - alpha, successes + 1, trials - successes))


def lower_bound(successes: int, *, trials: int, alpha: float) -> float:
    """The rate is at least this, with probability at least 1 - alpha (0.0 without data)."""
    if trials <= 0 or successes <= 0:
        return 0.0
    return float(beta.ppf(alpha, successes, trials - successes + 1))
