"""Is the whole procedure honest as it runs: many walks, scopes that fall back, delta split?

Simulations with known true precision curves, as in tests/test_certification.py: n
confidences c ~ Uniform(0, 1), each prediction right with probability curve(c), so the
true precision of threshold t is the mean of the curve over [t, 1] (over a pool, weighted
by each category's share). A certification is wrong when a certified threshold's true
precision is below its target. Each scenario asserts the wrong rate stays within delta
(plus three binomial standard errors of sampling slack) and prints how often something is
certified and how much; a wrong rule (no union bound, no split across scopes) fails the
same check, and so does a fallback that carries its level past a failure, so the
check can fail.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from triage.routing.certify import (
    DEFAULT_WALKS,
    GEOMETRIC_ONLY,
    WalkDesign,
    certify_threshold,
    walk_sequence,
    walk_starts,
)
from triage.routing.derive import Settings, derive_rules
from triage.routing.evidence import HoldoutPredictions
from triage.stats import clopper_pearson_lower

DELTA = 0.05
Curve = Callable[[np.ndarray], np.ndarray]


def slack(trials: int, rate: float = DELTA) -> float:
    return 3 * float(np.sqrt(rate * (1 - rate) / trials))


def true_precision(curve: Curve, threshold: float) -> float:
    return float(curve(np.linspace(threshold, 1.0, 4001)).mean())


@dataclass(frozen=True)
class Outcome:
    wrong: float  # share of trials certifying a threshold below its target
    certified: float  # share of trials certifying anything
    coverage: float  # median share of the evidence automated


def run_walks(
    curve: Curve, *, n: int, target: float, trials: int, rule: Callable[..., float | None]
) -> Outcome:
    rng = np.random.default_rng(2026)
    wrong = certified = 0
    coverage = []
    for _ in range(trials):
        confidences = rng.random(n)
        correct = rng.random(n) < curve(confidences)
        threshold = rule(confidences, correct, target=target)
        coverage.append(0.0 if threshold is None else float((confidences >= threshold).mean()))
        if threshold is not None:
            certified += 1
            wrong += true_precision(curve, threshold) < target
    return Outcome(wrong / trials, certified / trials, float(np.median(coverage)))


def default_rule(confidences: np.ndarray, correct: np.ndarray, *, target: float) -> float | None:
    return certify_threshold(confidences, correct, target=target, delta=DELTA).threshold


def design_rule(design: WalkDesign) -> Callable[..., float | None]:
    def rule(confidences: np.ndarray, correct: np.ndarray, *, target: float) -> float | None:
        return certify_threshold(
            confidences, correct, target=target, delta=DELTA, design=design
        ).threshold

    return rule


def unsplit_rule(confidences: np.ndarray, correct: np.ndarray, *, target: float) -> float | None:
    """The wrong rule: every start of the default design walked at the full delta (no
    union bound), the lowest certified threshold kept."""
    singles = [WalkDesign((m,), ()) for m in DEFAULT_WALKS.multiples]
    singles += [WalkDesign((), (s,)) for s in DEFAULT_WALKS.shares]
    found = [design_rule(d)(confidences, correct, target=target) for d in singles]
    return min((t for t in found if t is not None), default=None)


def carried_past_failures_rule(
    confidences: np.ndarray, correct: np.ndarray, *, target: float
) -> float | None:
    """The wrong rule: the fallback sequence, but a failure keeps the level it had, so
    every walk that opens adds to it whatever happened before (up to the full delta at
    the last opening, after any number of failures)."""
    starts, level = walk_starts(len(confidences), target=target, delta=DELTA, min_support=30)
    grid, opens = walk_sequence(confidences, starts)
    found, walks = None, 0
    for t, opening in zip(grid, opens, strict=True):
        walks += int(opening)
        chosen = confidences >= t
        bound = clopper_pearson_lower(int(correct[chosen].sum()), int(chosen.sum()), walks * level)
        if walks and bound >= target:
            found = float(t)
    return found


def noisy_top(c: np.ndarray) -> np.ndarray:
    """The most confident 5% are 85% right, the next tier 95.5%, the rest 60%."""
    return np.where(c > 0.95, 0.85, np.where(c > 0.5, 0.955, 0.6))


def just_above_truth(c: np.ndarray) -> np.ndarray:
    """Threshold t is 0.90 + 0.05 t precise: a 94.5% target holds only above t = 0.9."""
    return 0.85 + 0.1 * c


def flat_just_under(c: np.ndarray) -> np.ndarray:
    """Every threshold is 89.8% precise: any certificate at 90% is wrong."""
    return np.full_like(c, 0.898)


WALK_SCENARIOS = {
    "noisy top at 90%": (noisy_top, 0.90, 2000),
    "target just above the truth (94.5%)": (just_above_truth, 0.945, 2000),
    "flat just under the target": (flat_just_under, 0.90, 2000),
    "flat 98.5% at a 99% target": (lambda c: np.full_like(c, 0.985), 0.99, 1000),
}


@pytest.mark.parametrize("name", WALK_SCENARIOS)
def test_walks_from_the_evidence_shares_are_wrong_at_most_delta_of_the_time(name: str) -> None:
    curve, target, n = WALK_SCENARIOS[name]
    trials = 800
    outcome = run_walks(curve, n=n, target=target, trials=trials, rule=default_rule)
    print(f"{name}: {outcome}")
    assert outcome.wrong <= DELTA + slack(trials), outcome


def test_a_noisy_top_no_longer_ends_every_walk() -> None:
    # Today's starts (2·n₀, 8·n₀, 32·n₀) all begin inside the noisy top; a start at a
    # share of the evidence begins below it. The power claim the new starts were chosen for.
    before = run_walks(noisy_top, n=2000, target=0.90, trials=300, rule=design_rule(GEOMETRIC_ONLY))
    after = run_walks(noisy_top, n=2000, target=0.90, trials=300, rule=default_rule)
    print(f"noisy top: geometric only {before}; with evidence shares {after}")
    assert before.certified < 0.5
    assert after.certified > 0.9 and after.coverage > 0.45


def test_walks_without_the_union_bound_fail_the_same_check() -> None:
    trials = 800
    outcome = run_walks(flat_just_under, n=2000, target=0.90, trials=trials, rule=unsplit_rule)
    print(f"no union bound: {outcome}")
    assert outcome.wrong > DELTA + slack(trials), outcome


def test_a_level_carried_past_failures_fails_the_same_check() -> None:
    # Where every threshold is wrong, the fallback passes nothing on, so its error stays
    # within delta (above); keeping the level through failures tests late candidates at
    # up to the full delta after many looks, and certifies wrong thresholds far more often.
    trials = 800
    outcome = run_walks(
        flat_just_under, n=2000, target=0.90, trials=trials, rule=carried_past_failures_rule
    )
    print(f"level carried past failures: {outcome}")
    assert outcome.wrong > DELTA + slack(trials), outcome


# --- Scopes: thick categories alone, thin ones pooled, delta split across the scopes ---


@dataclass(frozen=True)
class Desk:
    slug: str
    n: int
    curve: Curve


def draw_evidence(desks: Sequence[Desk], rng: np.random.Generator) -> HoldoutPredictions:
    """Each desk's predictions: confidences uniform, right with probability curve(c)."""
    labels = tuple(d.slug for d in desks)
    predicted, confidence, truth = [], [], []
    for k, desk in enumerate(desks):
        c = rng.random(desk.n)
        right = rng.random(desk.n) < desk.curve(c)
        predicted.append(np.full(desk.n, k))
        confidence.append(c)
        # A wrong prediction's truth is another desk (which one does not matter here).
        truth.append(np.where(right, k, (k + 1) % len(desks)))
    return HoldoutPredictions(
        labels, np.concatenate(predicted), np.concatenate(confidence), np.concatenate(truth)
    )


def scope_precision(desks: Sequence[Desk], slugs: Sequence[str], threshold: float) -> float:
    members = [d for d in desks if d.slug in slugs]
    right = sum(d.n * true_precision(d.curve, threshold) for d in members)
    return right / sum(d.n for d in members)


def run_policy(
    desks: Sequence[Desk], *, target: float, mode: str, trials: int, split: bool = True
) -> tuple[Outcome, dict[str, str]]:
    """(how often any scope's certificate is wrong, the scope each desk was certified in)."""
    settings = Settings(
        target=target, default_threshold=1.0, min_support=30, delta=DELTA, mode=mode
    )
    rng = np.random.default_rng(7)
    wrong = certified = 0
    coverage, scopes = [], {}
    for _ in range(trials):
        evidence = draw_evidence(desks, rng)
        reports = derive_rules(
            {d.slug: target for d in desks},
            thresholds={d.slug: 1.0 for d in desks},
            holdout=evidence,
            settings=settings,
        )
        if not split:  # the wrong rule: each scope at the full delta
            reports = derive_unsplit(desks, evidence, settings)
        scopes = {r.slug: r.scope for r in reports}
        failed = False
        automated = 0
        for r in reports:
            if r.rule.threshold is None:
                continue
            pool = r.pool or (r.slug,)
            failed |= scope_precision(desks, pool, r.rule.threshold) < target
            automated += r.selected
        wrong += failed
        certified += automated > 0
        coverage.append(automated / len(evidence))
    return Outcome(wrong / trials, certified / trials, float(np.median(coverage))), scopes


def derive_unsplit(desks: Sequence[Desk], evidence: HoldoutPredictions, settings: Settings) -> list:  # type: ignore[type-arg]
    from triage.routing.scopes import _scope_reports, certification_scopes

    counts = {d.slug: d.n for d in desks}
    scopes = certification_scopes(
        {d.slug: settings.target for d in desks}, counts=counts, settings=settings
    )
    reports = []
    for scope in scopes:
        unsplit = type(scope)(scope.kind, scope.slugs, scope.target, settings.delta)
        reports += _scope_reports(unsplit, evidence, settings)
    return reports


THICK_AND_THIN = [
    *(Desk(f"thick-{k}", 2000, flat_just_under) for k in "abcde"),
    Desk("thin-a", 60, lambda c: np.full_like(c, 0.80)),
    Desk("thin-b", 120, lambda c: np.full_like(c, 0.93)),
]


def test_a_thin_category_beside_thick_ones_is_pooled_and_the_policy_holds() -> None:
    trials = 500
    outcome, scopes = run_policy(THICK_AND_THIN, target=0.90, mode="fallback", trials=trials)
    print(f"thin beside thick: {outcome}, scopes {scopes}")
    assert scopes == {
        **{f"thick-{k}": "category" for k in "abcde"},
        "thin-a": "pooled",
        "thin-b": "pooled",
    }
    assert outcome.wrong <= DELTA + slack(trials), outcome


def test_scopes_at_the_full_delta_each_fail_the_policy_check() -> None:
    trials = 500
    outcome, _ = run_policy(
        THICK_AND_THIN, target=0.90, mode="fallback", trials=trials, split=False
    )
    print(f"scopes at the full delta: {outcome}")
    assert outcome.wrong > DELTA + slack(trials), outcome


CLEAN_SET = [
    # 200 evidence items per category; the top half 99.5% precise (its top four fifths
    # 99.9%, the rest 97.9%), the bottom half 80%.
    Desk(f"news-{k}", 200, lambda c: np.where(c > 0.6, 0.999, np.where(c > 0.5, 0.979, 0.8)))
    for k in range(5)
]


def test_a_clean_thin_set_certifies_a_high_target_by_pooling() -> None:
    fallback, scopes = run_policy(CLEAN_SET, target=0.99, mode="fallback", trials=300)
    per_category, _ = run_policy(CLEAN_SET, target=0.99, mode="per_category", trials=300)
    print(f"clean set at 99%: default {fallback}; per category {per_category}")
    assert set(scopes.values()) == {"pooled"}
    assert per_category.certified == 0.0
    assert fallback.coverage >= 0.40
    assert fallback.wrong <= DELTA + slack(300)
