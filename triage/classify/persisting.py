"""Persisting a batch of decisions: the one write path for routing an item.

For each decided item, in the caller's transaction: the prediction, the audit sample,
the item's status and final category, the `item.routed` event of an auto-action (the
outbox row subscribers hear from), the review task (a new one, or the one the item
already waited in), the rules' hit counters, and the tallies of predictions, item states
and open tasks (triage.monitoring.tallies), last, so their row locks are held only until
the commit. Classification and the cockpit's re-route both write through here, so
neither can forget a side effect.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triage.actions.events import EventType, NewEvent, emit_many, item_data
from triage.classify.deciding import Routing
from triage.models import Category, Item, ModelVersion, Prediction, ReviewTask, among
from triage.models.bulk import insert_values
from triage.monitoring.audits import record_audit_samples
from triage.monitoring.models import Tally
from triage.monitoring.tallies import Deltas, ItemState, item_state
from triage.routing import policy as routing
from triage.routing.rules import count_hits


@dataclass(frozen=True)
class Outcome:
    """What a batch of routings did, in items."""

    acted_on: int = 0  # auto-actions taken, not audited
    audited: int = 0  # auto-actions taken and also sent to a blind audit
    to_review: int = 0  # left for a person to decide

    @property
    def routed(self) -> int:
        return self.acted_on + self.audited

    def describe(self) -> str:
        """As the admin reads it: "79 re-routed: 0 acted on, 79 acted on and sent to audit"."""
        text = f"{self.acted_on} acted on, {self.audited} acted on and sent to audit"
        return text + (f", {self.to_review} left for review" if self.to_review else "")


def persist_routings(
    routings: Sequence[Routing],
    *,
    champion: ModelVersion | None,
    categories: Mapping[str, Category],
    now: datetime,
) -> Outcome:
    """Write every routing; call inside the transaction that holds the items' locks."""
    model_decided_by = f"model:v{champion.pk}" if champion else "model"
    predictions: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    decisions: list[routing.Decision] = []
    events: list[NewEvent] = []
    routed_to: dict[tuple[str, str], list[int]] = {}  # grouped UPDATEs, one per outcome
    to_review: list[int] = []
    rule_hits: Counter[str] = Counter()
    reopened: list[ReviewTask] = []
    closed: list[int] = []
    tasks_tally = Deltas()  # open tasks by reason
    # Items' moves, counted by kind: (status, category, decided_by) before, and the
    # (category, decided_by) of an auto-action after (None: to review).
    moves: Counter[tuple[str, int | None, str, tuple[str, str] | None]] = Counter()
    acted_on = audited = 0
    for r in routings:
        decision, item, scored = r.decision, r.item, r.scored
        if decision.rule:
            rule_hits[decision.rule] += 1
        if scored is not None:
            decisions.append(decision)
            predictions.append(_prediction(r, champion, categories, now))
        to: tuple[str, str] | None = None
        if decision.route is routing.Route.AUTO and decision.category:
            decided_by = f"rule:{decision.rule}" if decision.rule else model_decided_by
            to = (decision.category, decided_by)
            routed_to.setdefault(to, []).append(item.pk)
            events.append(_routed_event(r, categories, champion, decided_by, now))
            audited += decision.audit
            acted_on += not decision.audit
        else:
            to_review.append(item.pk)
        moves[(item.status, item.final_category_id, item.decided_by, to)] += 1
        wants_person = decision.route is routing.Route.REVIEW or decision.audit
        if r.open_task is not None:
            # The item already waits in a task: it becomes the audit, stays, or closes.
            if decision.audit:
                tasks_tally.task(r.open_task.reason, ReviewTask.Reason.AUDIT_SAMPLE)
                r.open_task.reason = ReviewTask.Reason.AUDIT_SAMPLE
                r.open_task.priority = 0
                reopened.append(r.open_task)
            elif not wants_person:
                tasks_tally.task(r.open_task.reason, None)
                closed.append(r.open_task.pk)
        elif wants_person:
            tasks.append(
                {
                    "item_id": item.pk,
                    "reason": _task_reason(decision),
                    "priority": 0 if decision.audit else 10,
                    "margin": 1.0 if decision.audit or scored is None else _margin(r.top_scores),
                    "created_at": now,
                }
            )
    # Rows, not model objects: nothing here reads a prediction or a task back but its key.
    prediction_ids = insert_values(Prediction, predictions)
    record_audit_samples(predictions=predictions, ids=prediction_ids, decisions=decisions)
    if to_review:
        Item.objects.filter(pk__in=among(to_review)).update(status=Item.Status.IN_REVIEW)
    for (slug, decided_by), ids in routed_to.items():
        Item.objects.filter(pk__in=among(ids)).update(
            status=Item.Status.ROUTED,
            final_category=categories[slug],
            decided_by=decided_by,
            decided_at=now,
        )
    insert_values(ReviewTask, tasks)
    if reopened:
        ReviewTask.objects.bulk_update(reopened, ["reason", "priority"])
    if closed:
        ReviewTask.objects.filter(pk__in=among(closed)).update(completed_at=now)
    emit_many(events)
    count_hits(rule_hits, now=now)
    for reason, n in Counter(task["reason"] for task in tasks).items():
        tasks_tally.task(None, reason, n)
    _tally(moves, predictions, categories, tasks_tally)
    return Outcome(acted_on=acted_on, audited=audited, to_review=len(to_review))


def _tally(
    moves: Mapping[tuple[str, int | None, str, tuple[str, str] | None], int],
    predictions: Sequence[Mapping[str, Any]],
    categories: Mapping[str, Category],
    deltas: Deltas,
) -> None:
    """The predictions made, and the items' moves from their state before to their route,
    added to `deltas` (the open tasks' already), applied in one statement. Alike rows are
    counted first and added once: a batch has a handful of kinds of move, not one each."""
    slugs = {c.pk: slug for slug, c in categories.items()}
    made = Counter((p["created_at"], p["label_id"], p["route"]) for p in predictions)
    for (at, label_id, route), n in made.items():
        deltas.made(Tally.Kind.PREDICTION, at, slugs[label_id], route, n)
    for (status, category_id, decided_by, to), n in moves.items():
        before = item_state(
            status=status,
            category=slugs[category_id] if category_id else None,
            decided_by=decided_by,
        )
        after: ItemState
        if to is not None:
            category, routed_by = to
            after = item_state(status=Item.Status.ROUTED, category=category, decided_by=routed_by)
        else:
            after = before._replace(status=Item.Status.IN_REVIEW)
        deltas.item(before, after, n)
    deltas.apply()


def _margin(top_scores: Sequence[Mapping[str, object]]) -> float:
    """The top confidence minus the second: small when the model is torn between two."""
    confidences = [float(s["confidence"]) for s in top_scores[:2]]  # type: ignore[arg-type]
    if not confidences:
        return 1.0
    second = confidences[1] if len(confidences) > 1 else 0.0
    return round(confidences[0] - second, 6)


def _prediction(
    r: Routing, champion: ModelVersion | None, categories: Mapping[str, Category], now: datetime
) -> dict[str, Any]:
    """The item's Prediction row."""
    assert r.scored is not None
    d = r.decision
    return {
        "item_id": r.item.pk,
        "model_version_id": champion.pk if champion else None,
        "label_id": categories[r.scored.label].pk,
        "confidence": r.scored.confidence,
        "scores": r.top_scores,
        "route": d.route.value,
        "reason": d.reason.value,
        "threshold": d.threshold,
        "mode": d.mode.value if d.mode else "",
        "lower_bound": d.lower_bound,
        "created_at": now,
    }


def _routed_event(
    r: Routing,
    categories: Mapping[str, Category],
    champion: ModelVersion | None,
    decided_by: str,
    now: datetime,
) -> NewEvent:
    d, scored = r.decision, r.scored
    assert d.category is not None
    category = categories[d.category]
    # A rule's decision is not the model's: no confidence to report.
    by_model = scored is not None and not d.rule
    return NewEvent(
        type=EventType.ITEM_ROUTED,
        item_id=r.item.pk,
        category_id=category.pk,
        occurred_at=now,
        data=item_data(
            r.item,
            category=category,
            decided_by=decided_by,
            reason=d.reason.value,
            confidence=scored.confidence if scored is not None and by_model else None,
            model_version=champion.pk if champion and by_model else None,
            rule=d.rule,
            audit=d.audit,
        ),
    )


def _task_reason(decision: routing.Decision) -> str:
    if decision.audit:
        return ReviewTask.Reason.AUDIT_SAMPLE
    reasons = {
        routing.Reason.RULE: ReviewTask.Reason.RULE,
        routing.Reason.MODEL_UNAVAILABLE: ReviewTask.Reason.MODEL_UNAVAILABLE,
        routing.Reason.CATEGORY_INACTIVE: ReviewTask.Reason.CATEGORY_INACTIVE,
        routing.Reason.COLD_START: ReviewTask.Reason.COLD_START,
        routing.Reason.SUSPENDED: ReviewTask.Reason.SUSPENDED,
    }
    return reasons.get(decision.reason, ReviewTask.Reason.LOW_CONFIDENCE)
