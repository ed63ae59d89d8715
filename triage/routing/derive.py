"""From the admin's settings and a model's evidence to routing rules.

A raw threshold is used as it is. A target precision becomes a threshold
*certified* on the model version's evidence (triage.routing.certify): calibrated
out-of-fold predictions on every labelled example, stored with the version, so
thresholds follow the model and changing a target re-derives them at once.

Certification scope is a policy setting (RoutingPolicy.certification); which
categories are certified together, and at what share of delta, is
triage.routing.scopes (re-exported here for the callers that read rules):
- thin categories pooled (the default): a category with enough evidence for its
  target alone, the thin ones pooled by target, delta split across the scopes;
- per category: each alone at delta; the promise holds for each on its own;
- all categories: each alone, delta split evenly (Bonferroni);
- pooled: one threshold over every category that follows the global target.

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

from triage.ml.heads import ArtifactError
from triage.models import Category, ModelVersion, RoutingPolicy
from triage.routing import cache
from triage.routing import policy as routing
from triage.routing.evidence import HoldoutPredictions, load_evidence
from triage.routing.scopes import (
    NO_EVIDENCE,
    RuleReport,
    Scope,
    Settings,
    category_rule,
    certification_scopes,
    derive_rules,
    pooled_certification,
    raw_rule,
)

__all__ = [
    "NO_EVIDENCE",
    "Derived",
    "RuleReport",
    "Scope",
    "Settings",
    "category_rule",
    "category_settings",
    "certification_scopes",
    "derive_rules",
    "derive_from",
    "derived",
    "pooled_certification",
    "reports_for",
    "routing_policy",
    "rule_for_category",
    "rule_reports",
    "thresholds_snapshot",
]

logger = logging.getLogger(__name__)


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
            lambda: derive_from(load_evidence(version) if version is not None else None),
        )
    except ArtifactError as exc:
        logger.exception("the evidence of %s cannot be loaded: nothing is certified on it", version)
        unavailable = derive_from(None)
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


def derive_from(evidence: HoldoutPredictions | None) -> Derived:
    """What the current policy derives on this evidence, not cached (derived() caches a
    stored version's; triage.classify.waiting derives on a part of it)."""
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
    return raw_rule(category.slug, 1.0, None)


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
