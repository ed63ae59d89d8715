"""Classify and route: score received items, decide each by the routing policy, and
persist the prediction, audit sample, status, event or review task in one transaction."""

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from django.db import DatabaseError, transaction
from django.utils import timezone

from triage.actions.events import EventType, NewEvent, emit_many, item_data
from triage.classify.scoring import (
    ClassificationError,
    Scores,
    version_scores,
    zero_shot_scores,
)
from triage.models import Category, Item, ModelVersion, Prediction, ReviewTask, RoutingPolicy
from triage.monitoring.audits import live_routing_policy, record_audit_samples
from triage.monitoring.instruments import observe_classify
from triage.monitoring.models import Alert
from triage.routing import policy as routing
from triage.routing.derive import routing_policy
from triage.routing.draws import audit_key
from triage.routing.rules import active_item_rules, count_hits

logger = logging.getLogger(__name__)

TOP_K = 3


def classify_items(*, item_ids: Sequence[int], unscored: bool = False) -> int:
    """Score and route received items with the champion; returns how many were routed.

    The admins' rules decide first, then the model. If scoring fails (a missing or
    tampered artifact, an encoder error, a label with no category) the items go to
    review with reason model_unavailable and admins get an alert: an item is never
    left in `received`. `unscored` skips the model (the stuck sweep's last resort).
    Each auto-routed item gets an `item.routed` event in the routing transaction.

    Safe to run twice on the same ids (a redelivered task): items already past
    `received` are skipped, and rows are locked while they are routed.
    """
    started = time.perf_counter()
    items = list(Item.objects.pending().filter(pk__in=list(item_ids)).order_by("pk"))
    if not items:
        return 0
    champion = ModelVersion.objects.champion()
    categories = {c.slug: c for c in Category.objects.all()}
    # Scoring (embedding) is the slow part; it happens outside the routing transaction.
    scores, failure = (None, "") if unscored else _score(champion, items, categories)
    now = timezone.now()
    policy = replace(
        live_routing_policy(routing_policy(champion), policy=RoutingPolicy.current(), now=now),
        item_rules=active_item_rules(),
        inactive=frozenset(slug for slug, c in categories.items() if not c.is_active),
    )
    row_of = {item.pk: row for row, item in enumerate(items)}
    by_pk = {item.pk: item for item in items}
    model_decided_by = f"model:v{champion.pk}" if champion else "model"

    with transaction.atomic():
        locked = list(
            Item.objects.pending()
            .select_for_update(skip_locked=True)
            .filter(pk__in=[item.pk for item in items])
            .values_list("pk", flat=True)
        )
        # decisions[i] is the decision behind predictions[i] (for the audit records).
        predictions, decisions, tasks, events = [], [], [], []
        # Grouped UPDATEs (one per outcome) rather than bulk_update's per-row CASE.
        routed_to: dict[tuple[str, str], list[int]] = {}
        to_review: list[int] = []
        rule_hits: Counter[str] = Counter()
        for item_id in locked:
            item = by_pk[item_id]
            scored, top = None, []
            if scores is not None:
                row = scores.probs[row_of[item_id]]
                top = list(np.argsort(-row)[:TOP_K])
                scored = routing.ScoredItem(
                    label=scores.labels[top[0]],
                    confidence=float(row[top[0]]),
                    cold_start=champion is None,
                )
            decision = routing.decide_item(
                text=item.text,
                metadata=item.metadata,
                scored=scored,
                policy=policy,
                draw=routing.audit_draw(item.external_id, key=audit_key()),
            )
            if decision.rule:
                rule_hits[decision.rule] += 1
            if scores is not None and scored is not None:
                decisions.append(decision)
                predictions.append(
                    Prediction(
                        item_id=item_id,
                        model_version=champion,
                        label=categories[scored.label],
                        confidence=scored.confidence,
                        scores=[
                            {"label": scores.labels[i], "confidence": round(float(row[i]), 6)}
                            for i in top
                        ],
                        route=decision.route.value,
                        reason=decision.reason.value,
                        threshold=decision.threshold,
                        mode=decision.mode.value if decision.mode else "",
                        lower_bound=decision.lower_bound,
                        created_at=now,
                    )
                )
            if decision.route is routing.Route.AUTO and decision.category:
                decided_by = f"rule:{decision.rule}" if decision.rule else model_decided_by
                routed_to.setdefault((decision.category, decided_by), []).append(item_id)
                category = categories[decision.category]
                events.append(
                    NewEvent(
                        type=EventType.ITEM_ROUTED,
                        item_id=item_id,
                        category_id=category.pk,
                        occurred_at=now,
                        data=item_data(
                            item,
                            category=category,
                            decided_by=decided_by,
                            reason=decision.reason.value,
                            # A rule's decision is not the model's: no confidence to report.
                            confidence=scored.confidence if scored and not decision.rule else None,
                            model_version=(
                                champion.pk if champion and scored and not decision.rule else None
                            ),
                            rule=decision.rule,
                            audit=decision.audit,
                        ),
                    )
                )
            else:
                to_review.append(item_id)
            if decision.route is routing.Route.REVIEW or decision.audit:
                tasks.append(
                    ReviewTask(
                        item_id=item_id,
                        reason=_task_reason(decision),
                        priority=0 if decision.audit else 10,
                        created_at=now,
                    )
                )
        Prediction.objects.bulk_create(predictions)
        record_audit_samples(predictions=predictions, decisions=decisions)
        Item.objects.filter(pk__in=to_review).update(status=Item.Status.IN_REVIEW)
        for (slug, decided_by), routed_ids in routed_to.items():
            Item.objects.filter(pk__in=routed_ids).update(
                status=Item.Status.ROUTED,
                final_category=categories[slug],
                decided_by=decided_by,
                decided_at=now,
            )
        ReviewTask.objects.bulk_create(tasks)
        emit_many(events)
        count_hits(rule_hits, now=now)
        if failure and locked:
            Alert.raise_alert(
                kind="model_unavailable",
                message=f"Scoring failed; items went to review instead: {failure}",
                count=len(locked),
            )
    observe_classify(seconds=time.perf_counter() - started, items=len(locked))
    return len(locked)


def _score(
    champion: ModelVersion | None, items: list[Item], categories: dict[str, Category]
) -> tuple[Scores | None, str]:
    """The champion's scores for the items, or None and why it could not score them."""
    try:
        scores = version_scores(champion, items=items) if champion else zero_shot_scores(items)
        unmapped = sorted(set(scores.labels) - set(categories))
        if unmapped:
            raise ClassificationError(
                f"the model's label(s) {', '.join(map(repr, unmapped))} have no category"
            )
    except DatabaseError:
        # The database, not the model, failed (a dropped connection reading the embedding
        # cache): the task retries; sending the items to review unscored would be wrong.
        raise
    except Exception as exc:
        # Any failure here (corrupt file, encoder crash, bad label map) must not leave
        # items in `received` to be re-queued forever: log it, and people decide.
        logger.exception("scoring %d item(s) failed; sending them to review", len(items))
        return None, f"{type(exc).__name__}: {exc}"
    return scores, ""


def give_up_on(item_ids: Sequence[int], *, alert_kind: str, message: str) -> int:
    """The last resort for items that could not be classified: to review unscored, and an
    admin alert in the same transaction; how many were sent."""
    with transaction.atomic():
        sent = classify_items(item_ids=item_ids, unscored=True)
        if sent:
            Alert.raise_alert(kind=alert_kind, message=message, count=sent)
    return sent


def _task_reason(decision: routing.Decision) -> str:
    if decision.audit:
        return ReviewTask.Reason.AUDIT_SAMPLE
    if decision.reason is routing.Reason.RULE:
        return ReviewTask.Reason.RULE
    if decision.reason is routing.Reason.MODEL_UNAVAILABLE:
        return ReviewTask.Reason.MODEL_UNAVAILABLE
    if decision.reason is routing.Reason.CATEGORY_INACTIVE:
        return ReviewTask.Reason.CATEGORY_INACTIVE
    if decision.reason is routing.Reason.COLD_START:
        return ReviewTask.Reason.COLD_START
    if decision.reason is routing.Reason.SUSPENDED:
        return ReviewTask.Reason.SUSPENDED
    return ReviewTask.Reason.LOW_CONFIDENCE
