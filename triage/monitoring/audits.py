"""Audit sampling: per-category rates with a weekly floor, and the samples' verdicts.

Sampling is stratified by the model's label. Each category is audited at the
policy's audit rate, raised for quiet categories so that about `audit_floor`
of its auto-actions are audited per week while volume allows:

    rate_c = min(1, max(audit_rate, audit_floor / V_c))

where V_c is the number of the category's auto-actions over the last 7 days, read
from the prediction tallies (triage.monitoring.tallies), not counted: the classify call
pays the same at any table size.
A category with V_c ≤ floor (including one with no history yet) has every
auto-action audited. The rate used is stored on each AuditSample, so live
precision can weight verdicts by its inverse.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from triage.models import Category, Prediction, RoutingPolicy
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.tallies import prediction_counts
from triage.routing import policy as routing

FLOOR_PERIOD = timedelta(days=7)


def audit_rate_for(*, base_rate: float, floor: int, weekly_volume: int) -> float:
    """The audit probability that meets the weekly floor, never below the base rate."""
    if floor <= 0:
        return base_rate
    if weekly_volume <= floor:
        return 1.0
    return min(1.0, max(base_rate, floor / weekly_volume))


def audit_rates(*, policy: RoutingPolicy, now: datetime | None = None) -> dict[str, float]:
    """Each active category's audit probability for the next items."""
    now = now or timezone.now()
    # From the tallies: whole hours, plus the first hour's part counted in the table.
    volumes = {
        slug: n
        for (slug, route), n in prediction_counts(now - FLOOR_PERIOD).items()
        if route == Prediction.Route.AUTO
    }
    return {
        slug: audit_rate_for(
            base_rate=policy.audit_rate,
            floor=policy.audit_floor,
            weekly_volume=volumes.get(slug, 0),
        )
        for slug in Category.objects.filter(is_active=True).values_list("slug", flat=True)
    }


def suspended_categories() -> frozenset[str]:
    return frozenset(
        CategoryWatch.objects.filter(suspended_at__isnull=False).values_list(
            "category__slug", flat=True
        )
    )


def live_routing_policy(
    base: routing.Policy, *, policy: RoutingPolicy, now: datetime | None = None
) -> routing.Policy:
    """The routing policy with today's audit rates and the drift watch's suspensions."""
    return replace(
        base,
        audit_rates=audit_rates(policy=policy, now=now),
        suspended=suspended_categories(),
    )


def record_audit_samples(
    *,
    predictions: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
    decisions: Sequence[routing.Decision],
) -> list[AuditSample]:
    """One AuditSample per audited prediction: the Prediction rows just written
    (triage.classify.persisting), their keys, and the decisions they record."""
    samples = [
        AuditSample(
            item_id=prediction["item_id"],
            prediction_id=key,
            category_id=prediction["label_id"],
            model_version_id=prediction["model_version_id"],
            probability=decision.audit_probability,
            sampled_at=prediction["created_at"],
        )
        for prediction, key, decision in zip(predictions, ids, decisions, strict=True)
        if decision.audit and decision.audit_probability
    ]
    return AuditSample.objects.bulk_create(samples)


def record_audit_verdict(
    *, item_id: int, audited_category: Category, now: datetime, held: bool = False
) -> AuditSample | None:
    """Store an audit's verdict on the item's open sample; None if it has none. A held
    verdict (a quarantined analyst's) counts nowhere until it is released."""
    sample = (
        AuditSample.objects.select_for_update()
        .filter(item_id=item_id, audited_at__isnull=True)
        .order_by("-id")
        .first()
    )
    if sample is None:
        return None
    sample.audited_at = now
    sample.audited_category = audited_category
    sample.correct = sample.category_id == audited_category.pk
    sample.held = held
    sample.save(update_fields=["audited_at", "audited_category", "correct", "held"])
    return sample


def amend_audit_verdict(*, item_id: int, audited_category: Category) -> AuditSample | None:
    """Change the verdict of the item's latest audited sample (the analyst changed their
    decision within the undo window); None if it has none."""
    sample = (
        AuditSample.objects.select_for_update()
        .select_related("category")
        .filter(item_id=item_id, audited_at__isnull=False)
        .order_by("-id")
        .first()
    )
    if sample is None:
        return None
    sample.audited_category = audited_category
    sample.correct = sample.category_id == audited_category.pk
    sample.save(update_fields=["audited_category", "correct"])
    return sample
