"""The cockpit's writes: save a category's rule, and re-route the tasks it now passes.

A re-route decides and writes through the classify path (triage.classify.deciding and
.persisting), as classification would have: the same policy, the same prediction, audit
sample, `item.routed` event and task handling. Its preview says, in items, what the
confirmation will do, and the confirmation is refused whole if the items changed.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from triage.classify.deciding import Routing, decide, policy_in_force
from triage.classify.persisting import Outcome, persist_routings
from triage.classify.waiting import queue_rules, waiting_tasks
from triage.cockpit.preview import Setting
from triage.models import (
    AuditLog,
    Category,
    ModelVersion,
    Prediction,
    ReviewTask,
    RoutingPolicy,
)
from triage.monitoring.tallies import prediction_counts
from triage.routing import policy as routing
from triage.routing.derive import rule_for_category
from triage.stats import clopper_pearson_lower


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


def reroute_candidates(*, category: Category, now: datetime | None = None) -> list[Routing]:
    """Open low-confidence tasks of this category that the current rule would now automate,
    each with the decision classification would take now (audit draw included).

    Only tasks whose item was scored by today's champion: the threshold is on that
    model's calibrated confidence. A target's threshold is the one certified on the
    evidence that waited like these items (triage.classify.waiting.queue_rules), as a
    new champion's re-route uses. Tasks an analyst holds under a live lease are left
    alone, so nobody's card disappears under them.
    """
    now = now or timezone.now()
    champion = ModelVersion.objects.champion()
    if champion is None:
        return []
    categories = {c.slug: c for c in Category.objects.all()}
    # As classification routes (today's audit rates, nothing of a suspended category), a
    # target certified on the evidence that waited like these items (classify.waiting).
    policy = policy_in_force(champion, categories, now=now, rules=queue_rules(champion))
    tasks = (
        waiting_tasks(now)
        .filter(reason=ReviewTask.Reason.LOW_CONFIDENCE)
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
        routed = decide(
            task.item,
            scored=routing.ScoredItem(label=category.slug, confidence=prediction.confidence),
            policy=policy,
            top_scores=prediction.scores,
            open_task=task,
        )
        if (
            routed.decision.route is routing.Route.AUTO
            and routed.decision.category == category.slug
        ):
            out.append(routed)
    return out


def items_key(candidates: list[Routing]) -> str:
    """Which items, and how each would go: what the admin confirms, in a short string."""
    parts = sorted(f"{r.item.pk}:{r.decision.audit:d}" for r in candidates)
    return hashlib.sha256(",".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ReroutePreview:
    """What a re-route would do, before the admin confirms it."""

    candidates: list[Routing]
    key: str
    outcome: Outcome
    per_day: float | None  # items of this category automated per day under the rule
    wrong_per_day: float | None  # of them expected wrong at the certified bound
    lower_bound: float | None

    @property
    def count(self) -> int:
        return len(self.candidates)


def reroute_preview(*, category: Category, now: datetime | None = None) -> ReroutePreview:
    now = now or timezone.now()
    candidates = reroute_candidates(category=category, now=now)
    audited = sum(1 for r in candidates if r.decision.audit)
    outcome = Outcome(acted_on=len(candidates) - audited, audited=audited)
    per_day, wrong, bound = daily_automation(category, now=now)
    return ReroutePreview(candidates, items_key(candidates), outcome, per_day, wrong, bound)


def daily_automation(
    category: Category, *, now: datetime
) -> tuple[float | None, float | None, float | None]:
    """(automated per day, expected wrong per day, the bound): the category's daily volume
    over the last week times the rule's coverage on the evidence, and that times one minus
    the certified lower bound on its precision (None when nothing bounds it)."""
    champion = ModelVersion.objects.champion()
    report = rule_for_category(category, version=champion)
    if report.coverage is None:
        return None, None, None
    week = prediction_counts(now - timedelta(days=7))  # from the tallies, not counted
    made = sum(n for (slug, _), n in week.items() if slug == category.slug)
    per_day = made / 7 * report.coverage
    bound = report.rule.lower_bound
    if bound is None and report.selected and report.precision is not None:
        # A raw threshold promises nothing; the bound certification would use, on its evidence.
        correct = round(report.precision * report.selected)
        bound = clopper_pearson_lower(correct, report.selected, RoutingPolicy.current().delta)
    wrong = per_day * (1 - bound) if bound is not None else None
    return per_day, wrong, bound


def reroute_waiting_tasks(
    *,
    category: Category,
    actor: str,
    expected: int | None = None,
    expected_key: str | None = None,
) -> Outcome:
    """Route the waiting items the category's rule now automates, through the classify
    write path; what happened, in items.

    As classification would have: the item takes its route and `item.routed` is emitted,
    and an audit draw keeps the task open as an audit sample instead of closing it.
    `expected` and `expected_key` are the count and the items the admin confirmed (the
    preview's): if either changed since, nothing is done and the new count is told.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = reroute_candidates(category=category, now=now)
        locked = set(
            ReviewTask.objects.select_for_update()
            .filter(pk__in=[r.open_task.pk for r in candidates if r.open_task])
            .filter(completed_at__isnull=True)
            .values_list("pk", flat=True)
        )
        still = [r for r in candidates if r.open_task is not None and r.open_task.pk in locked]
        shown = len(candidates) if expected is None else expected
        if len(still) != shown:
            # Fewer or more pass than the admin saw (or one was decided before the lock).
            raise RerouteChanged(
                f"the queue changed: {len(still)} tasks now pass, not {shown}; "
                "nothing was re-routed: check the count again"
            )
        if expected_key is not None and expected_key != items_key(still):
            raise RerouteChanged(
                f"the queue changed: {len(still)} tasks pass, but not the ones you saw; "
                "nothing was re-routed: check them again"
            )
        candidates = still
        champion = ModelVersion.objects.champion()
        categories = {c.slug: c for c in Category.objects.all()}
        outcome = persist_routings(candidates, champion=champion, categories=categories, now=now)
        AuditLog.record(
            actor=actor,
            action="reroute",
            target=f"category:{category.slug}",
            routed=outcome.routed,
            acted_on=outcome.acted_on,
            audit_samples=outcome.audited,
            items=[r.item.pk for r in candidates][:1000],
        )
    return outcome


class RerouteChanged(Exception):
    """The tasks that pass changed between the admin's look and the confirmation."""
