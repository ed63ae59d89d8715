"""The numbers an admin reads, as one JSON-ready snapshot.

GET /api/metrics serves metrics_snapshot() as it is, `manage.py policy` prints
it, and the cockpit draws it. Add new sections here (live precision, drift) so
all three stay in step.
"""

from typing import Any

from triage.models import Category, ModelVersion, RoutingPolicy
from triage.monitoring.live import live_report
from triage.routing.automation import automation_of
from triage.routing.derive import (
    RuleReport,
    Settings,
    category_settings,
    derived,
    pooled_certification,
)
from triage.routing.frontier import frontier_now


def guarantee_statement(policy: RoutingPolicy) -> str:
    """The promise in one paragraph, with its scope, as the README states it."""
    confidence = f"{1 - policy.delta:.0%}"
    scope = {
        RoutingPolicy.Certification.FALLBACK: (
            "for each category with enough evidence on its own, and for each pool of thin "
            "categories sharing a target as a whole (a single category inside a pool may be "
            f"less precise); delta {policy.delta:g} is split across these scopes, so the chance "
            f"that any of the promises fails is at most {policy.delta:g}"
        ),
        RoutingPolicy.Certification.PER_CATEGORY: (
            "for each category on its own: the chance that any one category's promise fails "
            f"is at most {policy.delta:g}"
        ),
        RoutingPolicy.Certification.ALL_CATEGORIES: (
            f"for all categories at once: delta {policy.delta:g} is split across them"
        ),
        RoutingPolicy.Certification.POOLED: (
            "for the auto-actions of the categories following the global target as a whole "
            "(one threshold; a single category inside the pool may be less precise)"
        ),
    }[RoutingPolicy.Certification(policy.certification)]
    return (
        f"With {confidence} confidence, automatic actions are at least as precise as their "
        f"target, {scope}. Certified on the champion's out-of-fold predictions over all "
        "labelled examples, assuming new items resemble them and the served head (trained on "
        "all of them) is no less precise than the cross-fitted heads."
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _category_json(report: RuleReport, name: str) -> dict[str, Any]:
    rule = report.rule
    certified = rule.mode == "target_precision"
    return {
        "slug": report.slug,
        "name": name,
        "mode": rule.mode.value,
        "scope": report.scope or None,
        "pooled_with": [s for s in report.pool if s != report.slug],
        "delta": report.delta,
        "target": rule.target,
        "threshold": _round(rule.threshold),
        "certified_bound": _round(rule.lower_bound) if certified else None,
        "evidence_count": report.support,
        "automated_count": report.selected,
        "automation_share": _round(report.coverage),
        "evidence_precision": _round(report.precision),
        "why_not": rule.note if rule.threshold is None else None,
        "needed": report.needed,
    }


def metrics_snapshot() -> dict[str, Any]:
    """Per category and pooled: target, threshold, certified bound, evidence, automation."""
    policy = RoutingPolicy.current()
    champion = ModelVersion.objects.champion()
    found = derived(champion)
    evidence = found.evidence if champion else None
    categories = list(Category.objects.filter(is_active=True))
    reports = list(found.reports)
    names = {c.slug: c.name for c in categories}
    pooled: dict[str, Any] | None = None
    if evidence is not None and policy.target_precision is not None:
        members = [
            c.slug for c in categories if category_settings(c, policy)[0] == policy.target_precision
        ]
        result = pooled_certification(
            members, target=policy.target_precision, holdout=evidence, settings=Settings.of(policy)
        )
        pooled = {
            "in_force": policy.certification == RoutingPolicy.Certification.POOLED
            or any(r.scope == "pooled" and len(r.pool) == len(members) for r in reports),
            "categories": members,
            "target": result.target,
            "threshold": _round(result.threshold),
            "certified_bound": _round(result.lower_bound),
            "evidence_count": result.n_total,
            "automated_count": result.support,
            "automation_share": _round(result.coverage),
            "evidence_precision": _round(result.precision),
            "why_not": None if result.certified else result.reason,
            "needed": result.needed,
        }
    overall = automation_of(evidence, reports) if evidence is not None else None
    shape = frontier_now(champion) if champion is not None else None
    return {
        "policy": {
            "target_precision": policy.target_precision,
            "delta": policy.delta,
            "certification": policy.certification,
            "min_support": policy.min_support,
            "default_threshold": policy.default_threshold,
            "audit_rate": policy.audit_rate,
            "audit_floor": policy.audit_floor,
            "blind_review": policy.blind_review,
        },
        "guarantee": guarantee_statement(policy),
        "champion": None
        if champion is None
        else {
            "id": champion.pk,
            "kind": champion.kind,
            "macro_f1": _round(champion.macro_f1),
            "evidence": (champion.metrics or {}).get("measured_on", "holdout_split"),
            "evidence_count": 0 if evidence is None else len(evidence),
            "trained_on_examples": (champion.training_snapshot or {}).get("train"),
            "promoted_at": champion.promoted_at.isoformat() if champion.promoted_at else None,
        },
        "categories": [
            _category_json(r, names.get(r.slug, r.slug))
            | {"highest_certifiable": None if shape is None else shape.highest.get(r.slug)}
            for r in reports
        ],
        "pooled": pooled,
        "overall": None
        if overall is None
        else {
            "automation_share": _round(overall.coverage),
            "evidence_precision": _round(overall.precision),
        },
        # For reading the trade-off: each target's automation, the highest certifiable now.
        "frontier": None if shape is None else shape.as_json(),
        # What the audits see in production: live precision, automation, drift state.
        "live": live_report().as_json(),
    }
