"""The statistics the product's promises rest on, in one place. Pure: no Django, no database.

- Clopper–Pearson bounds for a binomial proportion: one-sided lower and upper, and the
  two-sided interval. They are exact: the stated level holds for every true proportion
  and every n, which a normal approximation (Wald, Wilson) does not promise for the
  small counts and extreme rates a precision target lives at.
- How many predictions a one-sided lower bound needs to clear a target (``correct_needed``):
  what the cockpit tells an admin when a target cannot be certified yet.
- The Hájek estimator of a mean from a weighted sample, and Kish's effective sample size
  of those weights: live precision from audits drawn with unequal probabilities.
- ``hash_draw``: a number in [0, 1) fixed by an item's id, for draws that must come out
  the same on every run (the audit sample, the train/holdout split).
- Anytime-valid tests and bounds for a rate watched after every trial (quarantine): the
  mixture e-values ``rate_below_e_value`` / ``rate_above_e_value`` and Robbins's mixture
  confidence bounds ``mixture_lower`` / ``mixture_upper``. A Clopper–Pearson bound holds
  at one look fixed in advance; checked after every decision, its error accumulates
  (an honest analyst at the floor, looked at after each of 270 checks, is excluded in
  about 13% of runs at α = 1%). These hold over every look at once (Ville's inequality).

Conventions: ``alpha`` is the error level of one bound (a one-sided bound holds with
probability at least 1 − alpha); a two-sided interval at ``confidence`` puts
(1 − confidence) / 2 in each tail. Counts may be fractional (an effective sample size
times an estimate). With no trials a lower bound is 0 and an upper bound 1: the bound
says nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaincc, betaln
from scipy.stats import beta

__all__ = [
    "clopper_pearson_interval",
    "clopper_pearson_lower",
    "clopper_pearson_lower_bounds",
    "clopper_pearson_upper",
    "correct_needed",
    "hajek_mean",
    "hash_draw",
    "kish_effective_n",
    "mixture_lower",
    "mixture_upper",
    "rate_above_e_value",
    "rate_below_e_value",
]


def clopper_pearson_lower(successes: float, n: float, alpha: float = 0.05) -> float:
    """The proportion is at least this with probability at least 1 − alpha.

    0.0 when there is no success (and so with no trials).
    """
    _check_counts(successes, n)
    if successes <= 0:
        return 0.0
    return float(beta.ppf(alpha, successes, n - successes + 1))


def clopper_pearson_upper(successes: float, n: float, alpha: float = 0.05) -> float:
    """The proportion is at most this with probability at least 1 − alpha.

    1.0 when every trial succeeded (and so with no trials).
    """
    _check_counts(successes, n)
    if successes >= n:
        return 1.0
    return float(beta.ppf(1 - alpha, successes + 1, n - successes))


def clopper_pearson_interval(
    successes: float, n: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided exact interval: each end is the one-sided bound at (1 − confidence) / 2."""
    tail = (1 - confidence) / 2
    return (
        clopper_pearson_lower(successes, n, tail),
        clopper_pearson_upper(successes, n, tail),
    )


def clopper_pearson_lower_bounds(
    successes: npt.ArrayLike, n: npt.ArrayLike, alpha: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """``clopper_pearson_lower`` element by element, for many candidate sets at once.

    ``alpha`` is one level or an array of them, broadcast against the counts. The
    arguments are not checked: callers pass counts they computed themselves.
    """
    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    some = s > 0
    # Where there is no success the bound is 0; the placeholder 1s keep ppf quiet there.
    bound = beta.ppf(alpha, np.where(some, s, 1.0), np.where(some, m - s + 1, 1.0))
    result: npt.NDArray[np.float64] = np.where(some, bound, 0.0)
    return result


def correct_needed(target: float, alpha: float = 0.05, *, error_rate: float = 0.0) -> int | None:
    """Fewest predictions, with this observed error rate, whose lower bound clears ``target``.

    With no errors this is the smallest n with ``alpha ** (1/n) >= target``, e.g.
    59 for 95% and 299 for 99% at alpha 0.05. None when the observed precision
    ``1 - error_rate`` is not above the target: no amount of such evidence helps.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    if target == 1.0 or 1 - error_rate <= target:
        return None
    if error_rate == 0:
        return math.ceil(math.log(alpha) / math.log(target))

    def passes(n: int) -> bool:
        return clopper_pearson_lower(n - math.ceil(error_rate * n), n, alpha) >= target

    high = 1
    while not passes(high):
        high *= 2
        if high > 10**9:
            return None
    low = high // 2
    # Smallest passing n in (low, high]; the bound is close enough to monotone in n
    # at a fixed error rate for a bisection to land within an item or two.
    while high - low > 1:
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid
    return high


def hajek_mean(values: npt.ArrayLike, weights: npt.ArrayLike) -> float:
    """The Hájek (ratio) estimator Σwᵢyᵢ / Σwᵢ of the mean of ``values``.

    With weights 1/probability of being sampled it estimates the population mean from a
    sample drawn with unequal probabilities.
    """
    y = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    return float((w * y).sum() / w.sum())


def kish_effective_n(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size (Σw)² / Σw²: n for equal weights, less the more they vary."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / (w**2).sum())


def hash_draw(key: str, *, salt: str = "", secret: bytes = b"") -> float:
    """A number in [0, 1), uniform over keys, fixed by the sha256 of ``salt + key``.

    Different salts give independent draws for the same key (an item's audit draw
    says nothing about its split). With a ``secret`` it is the HMAC-SHA256 instead:
    whoever chooses the keys (external ids) without the secret cannot choose the draws.
    """
    message = (salt + key).encode()
    if secret:
        digest = hmac.new(secret, message, hashlib.sha256).digest()
    else:
        digest = hashlib.sha256(message).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _log_likelihood(successes: float, n: float, rate: float) -> float:
    failures = n - successes
    return float(
        (successes * math.log(rate) if successes else 0.0)
        + (failures * math.log1p(-rate) if failures else 0.0)
    )


def rate_below_e_value(successes: float, n: float, null: float) -> float:
    """Evidence that the rate is below ``null``: an e-value, valid at every n at once.

    The likelihood of the trials under a rate drawn uniformly from [0, null), over their
    likelihood at ``null``. For any true rate ≥ null, each alternative's likelihood ratio
    is a nonnegative supermartingale in n, and so is their mixture; by Ville's inequality
    the chance it *ever* reaches 1/α is at most α, however often it is looked at. Reject
    "rate ≥ null" when it is ≥ 1/α.
    """
    _check_counts(successes, n)
    if not 0 < null < 1:
        raise ValueError(f"null rate must be in (0, 1), got {null}")
    a, b = successes + 1, n - successes + 1
    mass = float(betainc(a, b, null))  # share of Beta(a, b) below null
    if mass <= 0:
        return 0.0
    log_e = betaln(a, b) + math.log(mass) - math.log(null) - _log_likelihood(successes, n, null)
    return math.exp(min(log_e, 700.0))


def rate_above_e_value(successes: float, n: float, null: float) -> float:
    """Evidence that the rate is above ``null`` (``rate_below_e_value`` mirrored). A null
    of 1 or more cannot be exceeded: 0."""
    _check_counts(successes, n)
    if null >= 1:
        return 0.0
    if null <= 0:
        raise ValueError(f"null rate must be in (0, 1), got {null}")
    a, b = successes + 1, n - successes + 1
    mass = float(betaincc(a, b, null))  # share of Beta(a, b) above null
    if mass <= 0:
        return 0.0
    log_e = betaln(a, b) + math.log(mass) - math.log1p(-null) - _log_likelihood(successes, n, null)
    return math.exp(min(log_e, 700.0))


def mixture_upper(successes: float, n: float, alpha: float) -> float:
    """Robbins's anytime-valid upper bound: with probability at least 1 − alpha, the rate
    is at most this at *every* n of the sequence (uniform-mixture confidence sequence)."""
    _check_counts(successes, n)
    if successes >= n:
        return 1.0
    log_mix = float(betaln(successes + 1, n - successes + 1))
    level = math.log(1 / alpha)

    def outside(rate: float) -> bool:
        return log_mix - _log_likelihood(successes, n, rate) >= level

    low, high = successes / n, 1.0
    if not outside(1 - 1e-12):
        return 1.0
    for _ in range(60):  # bisection to ~1e-18: the mixture ratio rises above the estimate
        mid = (low + high) / 2
        low, high = (low, mid) if outside(mid) else (mid, high)
    return high


def mixture_lower(successes: float, n: float, alpha: float) -> float:
    """Robbins's anytime-valid lower bound (``mixture_upper`` of the failures, mirrored)."""
    _check_counts(successes, n)
    return 1.0 - mixture_upper(n - successes, n, alpha)


def _check_counts(successes: float, n: float) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
