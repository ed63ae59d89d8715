"""Is the certificate honest? Simulations with a known true precision curve.

An evidence set is n confidences c ~ Uniform(0, 1), each prediction right with
probability curve(c). The true precision of threshold t is the mean of curve
over [t, 1]. A certification is wrong when it returns a threshold whose true
precision is below the target. The rule promises a wrong rate of at most delta;
we allow three binomial standard errors of sampling slack on top.
"""

from collections.abc import Callable

import numpy as np
import pytest

from benchmarks._wilson import wilson_threshold
from triage.ml.heads import train_logistic_head
from triage.routing.certify import certify_threshold
from triage.routing.evidence import HoldoutPredictions
from triage.training.fit import cross_fit_head

DELTA = 0.05
Curve = Callable[[np.ndarray], np.ndarray]


def true_precision(curve: Curve, threshold: float) -> float:
    grid = np.linspace(threshold, 1.0, 4001)
    return float(curve(grid).mean())


def wrong_rate(
    rule: Callable[..., object], curve: Curve, *, n: int, target: float, trials: int, **kw: object
) -> tuple[float, float]:
    """(share of trials certifying a wrong threshold, share certifying any)."""
    rng = np.random.default_rng(12345)
    wrong = certified = 0
    for _ in range(trials):
        confidences = rng.random(n)
        correct = rng.random(n) < curve(confidences)
        result = rule(confidences, correct, target=target, **kw)
        threshold = result.threshold  # type: ignore[attr-defined]
        if threshold is not None:
            certified += 1
            wrong += true_precision(curve, threshold) < target
    return wrong / trials, certified / trials


def slack(trials: int, rate: float = DELTA) -> float:
    return 3 * float(np.sqrt(rate * (1 - rate) / trials))


SCENARIOS = {
    # No threshold truly reaches 90%: every certification is wrong.
    "just under the target everywhere": (lambda c: np.full_like(c, 0.895), 0.90),
    # True precision 0.9 + 0.1 t: thresholds above 0.5 reach 95%, lower ones do not.
    "rising, half the thresholds qualify": (lambda c: 0.8 + 0.2 * c, 0.95),
    # Calibrated-looking: precision above t is 0.75 + 0.25 t; 90% needs t >= 0.6.
    "steep, a minority qualifies": (lambda c: 0.5 + 0.5 * c, 0.90),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_certified_rule_is_wrong_at_most_delta_of_the_time(name: str) -> None:
    curve, target = SCENARIOS[name]
    trials = 2000
    wrong, _ = wrong_rate(
        certify_threshold, curve, n=1000, target=target, trials=trials, delta=DELTA
    )
    assert wrong <= DELTA + slack(trials), f"{name}: wrong {wrong:.3f}"


def test_the_old_wilson_rule_fails_the_same_check() -> None:
    # Same one-sided level (a two-sided 90% Wilson interval has a 5% lower tail).
    curve, target = SCENARIOS["just under the target everywhere"]
    trials = 2000
    wrong, _ = wrong_rate(
        wilson_threshold, curve, n=1000, target=target, trials=trials, confidence_level=0.90
    )
    assert wrong > DELTA + slack(trials), f"old rule wrong only {wrong:.3f}"


def test_a_target_no_threshold_reaches_is_rarely_certified_and_says_why() -> None:
    rng = np.random.default_rng(0)
    confidences = rng.random(1000)
    correct = rng.random(1000) < 0.85
    result = certify_threshold(confidences, correct, target=0.9)
    assert result.threshold is None
    assert "more evidence will not certify it" in result.reason


# --- Cross-fitting against the old holdout-only rule, on a fixed synthetic task ---------


def synthetic_task(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Five Gaussian clusters in 8 dimensions, overlapping enough for ~85% accuracy."""
    rng = np.random.default_rng(1000 + seed)
    means = np.random.default_rng(7).normal(size=(5, 8)) * 1.1
    y = rng.integers(0, 5, size=n)
    return means[y] + rng.normal(size=(n, 8)), y


def automated(
    head_probs: np.ndarray, thresholds: dict[int, float | None], truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    predicted, confidence = head_probs.argmax(axis=1), head_probs.max(axis=1)
    chosen = np.zeros(len(truth), dtype=bool)
    for k, t in thresholds.items():
        if t is not None:
            chosen |= (predicted == k) & (confidence >= t)
    return chosen, predicted == truth


def test_cross_fitting_certifies_more_than_the_holdout_and_keeps_the_error_rate() -> None:
    target, n, seeds = 0.90, 1000, 12
    x_fresh, y_fresh = synthetic_task(-1, 20_000)
    labels = [str(k) for k in range(5)]
    coverage = {"holdout + Wilson": [], "per category": [], "pooled": []}
    wrong_per_category = wrong_pooled = 0
    for seed in range(seeds):
        x, y = synthetic_task(seed, n)
        names = [str(k) for k in y]
        # Old: train on 80%, thresholds from the Wilson rule on the 20% holdout.
        cut = int(0.8 * n)
        old_fit = cross_fit_head(x[:cut], labels=names[:cut])
        holdout = HoldoutPredictions.from_scores(
            labels, old_fit.head.predict_proba(x[cut:]), names[cut:]
        )
        old = {
            k: wilson_threshold(*holdout.for_category(str(k)), target=target).threshold
            for k in range(5)
        }
        # New: cross-fit on all n; the served head is trained on all of them.
        fit = cross_fit_head(x, labels=names)
        evidence = HoldoutPredictions.from_scores(labels, fit.oof_probs, names)
        per_category = {
            k: certify_threshold(*evidence.for_category(str(k)), target=target).threshold
            for k in range(5)
        }
        pooled_t = certify_threshold(
            evidence.confidence, evidence.predicted == evidence.truth, target=target
        ).threshold
        pooled = dict.fromkeys(range(5), pooled_t)

        fresh_old = old_fit.head.predict_proba(x_fresh)
        fresh_new = fit.head.predict_proba(x_fresh)
        chosen, right = automated(fresh_old, old, y_fresh)
        coverage["holdout + Wilson"].append(chosen.mean())
        chosen, right = automated(fresh_new, per_category, y_fresh)
        coverage["per category"].append(chosen.mean())
        predicted = fresh_new.argmax(axis=1)
        for k, t in per_category.items():
            mask = chosen & (predicted == k)
            if t is not None and mask.any():
                wrong_per_category += right[mask].mean() < target
        chosen, right = automated(fresh_new, pooled, y_fresh)
        coverage["pooled"].append(chosen.mean())
        if chosen.any():
            wrong_pooled += right[chosen].mean() < target
    mean = {name: float(np.mean(v)) for name, v in coverage.items()}
    assert mean["per category"] > mean["holdout + Wilson"], mean
    assert mean["pooled"] > mean["holdout + Wilson"], mean
    # The served head (trained on all n) is measured on 20,000 fresh items: realised
    # precision below the target is a wrong certificate.
    assert wrong_per_category / (5 * seeds) <= DELTA + slack(5 * seeds)
    assert wrong_pooled / seeds <= DELTA + slack(seeds)


def test_the_served_head_is_not_less_precise_than_its_fold_heads() -> None:
    # The assumption cross-fitting adds, checked on the synthetic task.
    x, y = synthetic_task(0, 1000)
    names = [str(k) for k in y]
    fit = cross_fit_head(x, labels=names)
    fold = train_logistic_head(x[:800], names[:800])
    x_fresh, y_fresh = synthetic_task(-2, 20_000)
    served = (fit.head.predict_proba(x_fresh).argmax(axis=1) == y_fresh).mean()
    partial = (fold.predict_proba(x_fresh).argmax(axis=1) == y_fresh).mean()
    assert served >= partial - 0.005


def test_a_category_whose_most_confident_predictions_are_all_wrong_is_refused_with_a_reason():
    """Every top prediction wrong: no evidence can certify it, and saying so must not crash
    (it raised ValueError from the zero-error count, which classification would then hit)."""
    result = certify_threshold(np.linspace(0.5, 1.0, 200), np.zeros(200, dtype=bool), target=0.9)
    assert result.threshold is None
    assert "more evidence will not certify it" in result.reason
