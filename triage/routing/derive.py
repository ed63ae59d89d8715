"""From the admin's settings and a model's evidence to routing rules.

A raw threshold is used as it is. A target precision becomes a threshold
*certified* on the model version's evidence (triage.routing.certify): calibrated
out-of-fold predictions on every labelled example, stored with the version, so
thresholds follow the model and changing a target re-derives them at once.

Certification scope is a policy setting (RoutingPolicy.certification):
- per category: each category's threshold is certified on that category's
  predictions at level delta; the promise holds for each category on its own;
- all categories: the same, with delta split evenly across the certified
  categories (Bonferroni), so the promise holds for all of them at once;
- pooled: one threshold, certified on the predictions of every category that
  follows the global target, so the promise covers those auto-actions as a
  whole. Where per-category evidence is thin this still automates. Categories
  with their own target or raw threshold keep their own rule.

A stored version's derivation (derived: its evidence, rules and routing policy) is
cached per process until the version, the policy or a category changes
(triage.routing.cache): classification, the admin's category list and the
cockpit read it without certifying again.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from triage.ml.heads import ArtifactError
from triage.models import Category, ModelVersion, RoutingPolicy
from triage.routing import cache
from triage.routing import policy as routing
from triage.routing.certify import DEFAULT_DELTA, Certification, certify_threshold
from triage.routing.evidence import HoldoutPredictions, load_evidence

logger = logging.getLogger(__name__)

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


def _raw_rule(slug: str, threshold: float, holdout: HoldoutPredictions | None) -> RuleReport:
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
        return _raw_rule(slug, threshold, holdout)
    if holdout is None:
        rule = routing.Rule(None, routing.Mode.TARGET_PRECISION, target, note=NO_EVIDENCE)
        return RuleReport(slug, rule, coverage=None, precision=None, scope=scope)
    confidences, correct = holdout.for_category(slug)
    result = certify_threshold(
        confidences, correct, target=target, delta=delta, min_support=min_support
    )
    return _certified_rule(slug, result, support=len(confidences), scope=scope)


def pooled_certification(
    slugs: Sequence[str], *, target: float, holdout: HoldoutPredictions, settings: Settings
) -> Certification:
    """One threshold certified on the predictions of all these categories together."""
    confidences, correct = holdout.for_categories(slugs)
    return certify_threshold(
        confidences, correct, target=target, delta=settings.delta, min_support=settings.min_support
    )


def derive_rules(
    targets: dict[str, float | None],
    *,
    thresholds: dict[str, float],
    holdout: HoldoutPredictions | None,
    settings: Settings,
) -> list[RuleReport]:
    """Every category's rule. ``targets[slug]`` None means a raw threshold.

    Categories whose target is the global one are the ones pooling applies to.
    """
    certified = [slug for slug, target in targets.items() if target is not None]
    pooled = [
        slug
        for slug in certified
        if settings.mode == Mode.POOLED and targets[slug] == settings.target
    ]
    delta = settings.delta
    if settings.mode == Mode.ALL_CATEGORIES and certified:
        delta = settings.delta / len(certified)
    reports: dict[str, RuleReport] = {}
    if pooled and holdout is not None and settings.target is not None:
        result = pooled_certification(
            pooled, target=settings.target, holdout=holdout, settings=settings
        )
        for slug in pooled:
            confidences, _ = holdout.for_category(slug)
            chosen = (
                confidences >= result.threshold
                if result.threshold is not None
                else np.zeros(len(confidences), dtype=bool)
            )
            reports[slug] = RuleReport(
                slug,
                routing.Rule(
                    result.threshold,
                    routing.Mode.TARGET_PRECISION,
                    settings.target,
                    lower_bound=result.lower_bound,
                    note=f"pooled over {len(pooled)} categories: {result.reason}",
                ),
                coverage=float(chosen.mean()) if len(chosen) else None,
                precision=result.precision,
                support=len(chosen),
                selected=int(chosen.sum()),
                needed=result.needed,
                scope="pooled",
            )
    for slug, target in targets.items():
        if slug in reports:
            continue
        reports[slug] = category_rule(
            slug,
            target=target,
            threshold=thresholds[slug],
            holdout=holdout,
            min_support=settings.min_support,
            delta=delta,
            scope="all categories" if settings.mode == Mode.ALL_CATEGORIES else "category",
        )
    return [reports[slug] for slug in targets]


def category_settings(category: Category, policy: RoutingPolicy) -> tuple[float | None, float]:
    """(target, raw threshold) of a saved category under this policy (routing.resolve_setting
    says which setting decides)."""
    return routing.resolve_setting(
        target=category.target_precision,
        threshold=category.threshold,
        global_target=policy.target_precision,
        global_threshold=policy.default_threshold,
    )


def reports_for(
    holdout: HoldoutPredictions | None, *, policy: RoutingPolicy | None = None
) -> list[RuleReport]:
    """Every active category's rule under the current policy, certified on this evidence.

    Not cached: for evidence that is not a stored version's (a candidate, a what-if).
    """
    policy = policy or RoutingPolicy.current()
    categories = list(Category.objects.filter(is_active=True))
    chosen = {c.slug: category_settings(c, policy) for c in categories}
    return derive_rules(
        {slug: target for slug, (target, _) in chosen.items()},
        thresholds={slug: threshold for slug, (_, threshold) in chosen.items()},
        holdout=holdout,
        settings=Settings.of(policy),
    )


@dataclass(frozen=True)
class Derived:
    """What the current policy derives for one model version: its evidence, each active
    category's rule, and the pure routing policy. Shared between callers: do not mutate."""

    evidence: HoldoutPredictions | None
    reports: tuple[RuleReport, ...]
    policy: routing.Policy


def derived(version: ModelVersion | None) -> Derived:
    """The derivation for this version, cached per process until the version, the routing
    policy or a category changes (triage.routing.cache); costs one query when nothing did.

    Evidence whose artifact is missing or changed certifies nothing: categories with a
    target never auto-act (their note says why), raw thresholds still apply. That is not
    cached, so a restored file is used at once.
    """
    try:
        return cache.cached(
            ("derived", *cache.version_key(version), *cache.inputs_key()),
            lambda: _derive(load_evidence(version) if version is not None else None),
        )
    except ArtifactError as exc:
        logger.exception("the evidence of %s cannot be loaded: nothing is certified on it", version)
        unavailable = _derive(None)
        note = f"the evidence of model {version} cannot be loaded: {exc}"
        reports = tuple(
            replace(r, rule=replace(r.rule, note=note)) if r.rule.note == NO_EVIDENCE else r
            for r in unavailable.reports
        )
        return replace(
            unavailable,
            reports=reports,
            policy=replace(unavailable.policy, rules=MappingProxyType(_rules(reports))),
        )


def _rules(reports: Sequence[RuleReport]) -> dict[str, routing.Rule]:
    return {report.slug: report.rule for report in reports}


def _derive(evidence: HoldoutPredictions | None) -> Derived:
    if evidence is not None:
        for array in (evidence.predicted, evidence.confidence, evidence.truth):
            array.flags.writeable = False  # shared by every caller of the cache
    policy = RoutingPolicy.current()
    reports = tuple(reports_for(evidence, policy=policy))
    return Derived(
        evidence=evidence,
        reports=reports,
        policy=routing.Policy(
            default=routing.Rule(policy.default_threshold),
            # Read-only: every caller shares this one.
            rules=MappingProxyType(_rules(reports)),
            audit_rate=policy.audit_rate,
        ),
    )


def rule_reports(version: ModelVersion | None) -> list[RuleReport]:
    """Every active category's rule under the current policy and this model version."""
    return list(derived(version).reports)


def rule_for_category(category: Category, *, version: ModelVersion | None) -> RuleReport:
    """This category's rule with this version, in context (pooling and a split delta depend
    on the other categories)."""
    for report in derived(version).reports:
        if report.slug == category.slug:
            return report
    return _raw_rule(category.slug, 1.0, None)


def routing_policy(version: ModelVersion | None) -> routing.Policy:
    """The pure routing policy for items scored by this version."""
    return derived(version).policy


def thresholds_snapshot(version: ModelVersion) -> dict[str, Any]:
    """The rules derived for a version, as stored on it for the record."""
    return {
        r.slug: {
            "mode": r.rule.mode.value,
            "scope": r.scope,
            "target": r.rule.target,
            "threshold": r.rule.threshold,
            "lower_bound": r.rule.lower_bound,
            "coverage": r.coverage,
            "precision": r.precision,
            "support": r.support,
            "needed": r.needed,
            "note": r.rule.note,
        }
        for r in rule_reports(version)
    }
