"""The cockpit's writes: save a category's rule, and re-route the tasks it now passes."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from triage.cockpit.preview import Setting
from triage.models import (
    AuditLog,
    Category,
    Item,
    ModelVersion,
    Prediction,
    ReviewTask,
    RoutingPolicy,
)
from triage.monitoring.audits import live_routing_policy, record_audit_samples
from triage.routing import policy as routing
from triage.routing.derive import routing_policy
from triage.routing.draws import audit_key


def _rule_fields(category: Category) -> dict[str, Any]:
    return {"target_precision": category.target_precision, "threshold": category.threshold}


def save_category_setting(*, category: Category, setting: Setting, actor: str) -> AuditLog:
    """Write a target precision (clearing any raw threshold), a raw threshold
    (clearing the target), or neither (the global policy applies), and log the
    values before and after."""
    with transaction.atomic():
        category = Category.objects.select_for_update().get(pk=category.pk)
        before = _rule_fields(category)
        category.target_precision = setting.target
        category.threshold = setting.threshold if setting.target is None else None
        category.full_clean()
        category.save(update_fields=["target_precision", "threshold"])
        return AuditLog.record_change(
            actor=actor,
            action="category",
            target=f"category:{category.slug}",
            before=before,
            after=_rule_fields(category),
        )


@dataclass(frozen=True)
class Reroute:
    task: ReviewTask
    prediction: Prediction
    decision: routing.Decision


def reroute_candidates(*, category: Category, now: datetime | None = None) -> list[Reroute]:
    """Open low-confidence tasks of this category that the current rule would now automate.

    Only tasks whose item was scored by today's champion: the threshold is on that
    model's calibrated confidence. Tasks an analyst holds under a live lease are
    left alone, so nobody's card disappears under them.
    """
    now = now or timezone.now()
    champion = ModelVersion.objects.champion()
    if champion is None:
        return []
    # As classification routes: today's audit rates, and nothing of a suspended category.
    policy = live_routing_policy(routing_policy(champion), policy=RoutingPolicy.current(), now=now)
    tasks = (
        ReviewTask.objects.open()
        .filter(reason=ReviewTask.Reason.LOW_CONFIDENCE, item__status=Item.Status.IN_REVIEW)
        .filter(Q(claimed_by__isnull=True) | Q(lease_expires_at__lt=now))
        .select_related("item")
        .order_by("id")
    )
    latest: dict[int, Prediction] = {}
    for p in Prediction.objects.filter(item__in=tasks.values("item")).order_by("id"):
        latest[p.item_id] = p
    out = []
    for task in tasks:
        prediction = latest.get(task.item_id)
        # The item's latest prediction must be this category's, by the champion.
        if (
            prediction is None
            or prediction.label_id != category.pk
            or prediction.model_version_id != champion.pk
        ):
            continue
        scored = routing.ScoredItem(label=category.slug, confidence=prediction.confidence)
        decision = routing.decide(
            scored, policy, draw=routing.audit_draw(task.item.external_id, key=audit_key())
        )
        if decision.route is routing.Route.AUTO:
            out.append(Reroute(task, prediction, decision))
    return out


def reroute_waiting_tasks(*, category: Category, actor: str, expected: int | None = None) -> int:
    """Route the waiting items the category's rule now automates; returns how many.

    As classification would have: the item takes its route, and an audit draw keeps
    the task open as an audit sample instead of closing it. `expected` is the count
    the admin confirmed; if the queue changed since, nothing is done.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = reroute_candidates(category=category, now=now)
        if expected is not None and expected != len(candidates):
            raise RerouteChanged(
                f"the queue changed: {len(candidates)} tasks now pass, not {expected}; "
                "check the count again"
            )
        champion = ModelVersion.objects.champion()
        locked = set(
            ReviewTask.objects.select_for_update()
            .filter(pk__in=[c.task.pk for c in candidates], completed_at__isnull=True)
            .values_list("pk", flat=True)
        )
        candidates = [c for c in candidates if c.task.pk in locked]
        predictions = []
        for c in candidates:
            d = c.decision
            prediction = Prediction.objects.create(
                item=c.task.item,
                model_version=champion,
                label=category,
                confidence=c.prediction.confidence,
                scores=c.prediction.scores,
                route=Prediction.Route.AUTO,
                reason=d.reason.value,
                threshold=d.threshold,
                mode=d.mode.value if d.mode else "",
                lower_bound=d.lower_bound,
                created_at=now,
            )
            predictions.append(prediction)
            if d.audit:
                c.task.reason = ReviewTask.Reason.AUDIT_SAMPLE
                c.task.priority = 0
                c.task.save(update_fields=["reason", "priority"])
            else:
                c.task.completed_at = now
                c.task.save(update_fields=["completed_at"])
        # Audited re-routes count in live precision like any other audit sample.
        record_audit_samples(predictions=predictions, decisions=[c.decision for c in candidates])
        Item.objects.filter(pk__in=[c.task.item_id for c in candidates]).update(
            status=Item.Status.ROUTED,
            final_category=category,
            decided_by=f"model:v{champion.pk}" if champion else "model",
            decided_at=now,
        )
        AuditLog.record(
            actor=actor,
            action="reroute",
            target=f"category:{category.slug}",
            routed=len(candidates),
            audit_samples=sum(1 for c in candidates if c.decision.audit),
            items=[c.task.item_id for c in candidates][:1000],
        )
    return len(candidates)


class RerouteChanged(Exception):
    """The set of tasks that pass changed between the admin's look and the confirmation."""
