"""Certification scopes: which categories are certified together, at what share of delta,
and each category's rule on a model's evidence.

Pure given its inputs (no database): triage.routing.derive feeds it the saved policy
and the champion's evidence; the what-if, the frontier and the benchmarks feed it theirs.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from triage.models import RoutingPolicy
from triage.routing import policy as routing
from triage.routing.certify import (
    DEFAULT_DELTA,
    Certification,
    certify_threshold,
    enough_evidence,
)
from triage.routing.evidence import HoldoutPredictions

Mode = RoutingPolicy.Certification


@dataclass(frozen=True)
class RuleReport:
    """A category's rule, with what it would have done on the evidence."""

    slug: str
    rule: routing.Rule
    coverage: float | None  # share of this category's evidence predictions automated
    precision: float | None  # their precision
    support: int = 0  # evidence predictions of this category (the bound's n is `selected`)
    selected: int = 0  # how many of them the threshold automates
    needed: int | None = None  # correct predictions needed when the target cannot be certified
    scope: str = ""  # "category", "all categories" or "pooled"
    pool: tuple[str, ...] = ()  # the categories certified together, when pooled
    delta: float | None = None  # the scope's share of delta, when certified


@dataclass(frozen=True)
class Settings:
    """The policy numbers certification needs, detached from the database row."""

    target: float | None
    default_threshold: float
    min_support: int
    delta: float
    mode: str

    @classmethod
    def of(cls, policy: RoutingPolicy) -> "Settings":
        return cls(
            target=policy.target_precision,
            default_threshold=policy.default_threshold,
            min_support=policy.min_support,
            delta=policy.delta,
            mode=policy.certification,
        )


NO_EVIDENCE = "no evidence for this model: cannot derive a threshold"


def raw_rule(slug: str, threshold: float, holdout: HoldoutPredictions | None) -> RuleReport:
    confidences, correct = (
        holdout.for_category(slug) if holdout else (np.zeros(0), np.zeros(0, dtype=bool))
    )
    chosen = confidences >= threshold
    return RuleReport(
        slug,
        routing.Rule(threshold, routing.Mode.THRESHOLD),
        coverage=float(chosen.mean()) if len(chosen) else None,
        precision=float(correct[chosen].mean()) if chosen.any() else None,
        support=len(chosen),
        selected=int(chosen.sum()),
    )


def _certified_rule(
    slug: str, result: Certification, *, support: int, scope: str, selected: int | None = None
) -> RuleReport:
    rule = routing.Rule(
        result.threshold,
        routing.Mode.TARGET_PRECISION,
        result.target,
        lower_bound=result.lower_bound,
        note=result.reason,
    )
    return RuleReport(
        slug,
        rule,
        coverage=result.coverage if support else None,
        precision=result.precision,
        support=support,
        selected=result.support if selected is None else selected,
        needed=result.needed,
        scope=scope,
        delta=result.delta,
    )


def category_rule(
    slug: str,
    *,
    target: float | None,
    threshold: float,
    holdout: HoldoutPredictions | None,
    min_support: int,
    delta: float = DEFAULT_DELTA,
    scope: str = "category",
) -> RuleReport:
    """One category's rule, certified on its own predictions."""
    if target is None:
        return raw_rule(slug, threshold, holdout)
    if holdout is None:
        rule = routing.Rule(None, routing.Mode.TARGET_PRECISION, target, note=NO_EVIDENCE)
        return RuleReport(slug, rule, coverage=None, precision=None, scope=scope)
    confidences, correct = holdout.for_category(slug)
    result = certify_threshold(
        confidences, correct, target=target, delta=delta, min_support=min_support
    )
    return _certified_rule(slug, result, support=len(confidences), scope=scope)


def pooled_certification(
    slugs: Sequence[str],
    *,
    target: float,
    holdout: HoldoutPredictions,
    settings: Settings,
    delta: float | None = None,
) -> Certification:
    """One threshold certified on the predictions of all these categories together."""
    confidences, correct = holdout.for_categories(slugs)
    return certify_threshold(
        confidences,
        correct,
        target=target,
        delta=settings.delta if delta is None else delta,
        min_support=settings.min_support,
    )


@dataclass(frozen=True)
class Scope:
    """Categories certified together under one target, at one share of delta."""

    kind: str  # "category", "all categories" or "pooled"
    slugs: tuple[str, ...]
    target: float
    delta: float


def certification_scopes(
    targets: dict[str, float | None], *, counts: dict[str, int], settings: Settings
) -> list[Scope]:
    """Which categories are certified together, and at what level.

    A function of the settings and the evidence counts only, never of whether a test
    passed: choosing a scope after seeing its result would void the bound.
    - per category: each category alone at delta (each promise on its own);
    - all categories: each alone, delta split across them;
    - pooled: the categories following the global target in one scope, at delta;
    - thin categories pooled (the default): a category with enough evidence for its
      target (certify.enough_evidence) alone, the others pooled with the thin
      categories that share its target; delta split across all the scopes, so the
      whole policy fails with probability at most delta.
    Categories with a raw threshold are in no scope.
    """
    certified = [slug for slug, target in targets.items() if target is not None]
    groups: list[tuple[str, tuple[str, ...], float]] = []
    if settings.mode == Mode.POOLED and settings.target is not None:
        pooled = tuple(sorted(s for s in certified if targets[s] == settings.target))
        if pooled:
            groups.append(("pooled", pooled, settings.target))
        groups += [("category", (s,), targets[s]) for s in certified if s not in pooled]  # type: ignore[misc]
        return [Scope(kind, slugs, target, settings.delta) for kind, slugs, target in groups]
    if settings.mode == Mode.FALLBACK:
        thin: dict[float, list[str]] = {}
        for slug in certified:
            target = targets[slug]
            assert target is not None
            if counts.get(slug, 0) >= enough_evidence(target, settings.delta, settings.min_support):
                groups.append(("category", (slug,), target))
            else:
                thin.setdefault(target, []).append(slug)
        groups += [
            ("pooled" if len(slugs) > 1 else "category", tuple(sorted(slugs)), target)
            for target, slugs in thin.items()
        ]
    else:
        kind = "all categories" if settings.mode == Mode.ALL_CATEGORIES else "category"
        groups = [(kind, (s,), targets[s]) for s in certified]  # type: ignore[misc]
    split = settings.mode in (Mode.FALLBACK, Mode.ALL_CATEGORIES) and groups
    delta = settings.delta / len(groups) if split else settings.delta
    return [Scope(kind, slugs, target, delta) for kind, slugs, target in groups]


def _scope_reports(
    scope: Scope, holdout: HoldoutPredictions, settings: Settings
) -> list[RuleReport]:
    if len(scope.slugs) == 1 and scope.kind != "pooled":
        (slug,) = scope.slugs
        return [
            category_rule(
                slug,
                target=scope.target,
                threshold=1.0,
                holdout=holdout,
                min_support=settings.min_support,
                delta=scope.delta,
                scope=scope.kind,
            )
        ]
    result = pooled_certification(
        scope.slugs, target=scope.target, holdout=holdout, settings=settings, delta=scope.delta
    )
    reports = []
    for slug in scope.slugs:
        confidences, _ = holdout.for_category(slug)
        chosen = (
            confidences >= result.threshold
            if result.threshold is not None
            else np.zeros(len(confidences), dtype=bool)
        )
        reports.append(
            RuleReport(
                slug,
                routing.Rule(
                    result.threshold,
                    routing.Mode.TARGET_PRECISION,
                    scope.target,
                    lower_bound=result.lower_bound,
                    note=f"pooled over {len(scope.slugs)} categories: {result.reason}",
                ),
                coverage=float(chosen.mean()) if len(chosen) else None,
                precision=result.precision,
                support=len(chosen),
                selected=int(chosen.sum()),
                needed=result.needed,
                scope="pooled",
                pool=scope.slugs,
                delta=scope.delta,
            )
        )
    return reports


def derive_rules(
    targets: dict[str, float | None],
    *,
    thresholds: dict[str, float],
    holdout: HoldoutPredictions | None,
    settings: Settings,
) -> list[RuleReport]:
    """Every category's rule. ``targets[slug]`` None means a raw threshold.

    Certified categories are grouped into scopes (certification_scopes) and each scope
    certified at its share of delta.
    """
    reports: dict[str, RuleReport] = {}
    if holdout is not None:
        counts = {
            slug: int((holdout.predicted == k).sum()) for k, slug in enumerate(holdout.labels)
        }
        for scope in certification_scopes(targets, counts=counts, settings=settings):
            reports.update((r.slug, r) for r in _scope_reports(scope, holdout, settings))
    for slug, target in targets.items():
        if slug in reports:
            continue
        reports[slug] = category_rule(
            slug,
            target=target,
            threshold=thresholds[slug],
            holdout=holdout,
            min_support=settings.min_support,
            delta=settings.delta,
        )
    return [reports[slug] for slug in targets]
