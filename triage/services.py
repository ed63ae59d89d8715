"""Multi-step writes for intake: ingest, import history, classify-and-route.

Retraining, the promotion gate and roll back live in triage.training.
"""

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from reviews.models import ReviewTask, TrainingExample, split_for

from . import routing
from .intake import ItemIn
from .models import Category, Item, ModelVersion, Prediction, RoutingPolicy
from .monitoring.audits import live_routing_policy, record_audit_samples
from .policy import routing_policy
from .scoring import IN_CHUNK, version_scores, zero_shot_scores

logger = logging.getLogger(__name__)

TOP_K = 3
# Tries of one ingest transaction: concurrent batches that share new ids can collide
# (unique-index waits, deadlocks) more than once under load.
INGEST_ATTEMPTS = 4
# PostgreSQL's SQLSTATEs for errors that roll back a transaction which may then succeed.
TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_transient(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back, retry it."""
    return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


class IngestConflict(Exception):
    """An external id arrived again with different text: ingest is idempotent, not an update."""

    def __init__(self, conflicts: Sequence[tuple[int, str]]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(
            "; ".join(
                f"item {index}: external_id {eid!r} already exists with different text"
                for index, eid in conflicts
            )
        )


class NotConfigured(Exception):
    """The system cannot accept items yet (for example, no categories exist)."""


@dataclass(frozen=True)
class IngestResult:
    created: list[Item]
    existing: list[Item]

    @property
    def items(self) -> list[Item]:
        return self.created + self.existing


def _existing_by_external_id(external_ids: Iterable[str]) -> dict[str, Item]:
    ids = list(external_ids)
    found: dict[str, Item] = {}
    for start in range(0, len(ids), IN_CHUNK):
        for item in Item.objects.filter(external_id__in=ids[start : start + IN_CHUNK]):
            found[item.external_id] = item
    return found


def find_conflicts(
    items: Sequence[ItemIn], existing: dict[str, Item] | None = None
) -> list[tuple[int, str]]:
    """(index, external_id) of items whose id is stored, or repeated, with other text."""
    if existing is None:
        existing = _existing_by_external_id(i.external_id for i in items)
    seen: dict[str, str] = {}
    conflicts: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        stored = existing.get(item.external_id)
        earlier = seen.setdefault(item.external_id, item.text)
        if (stored is not None and stored.text != item.text) or earlier != item.text:
            conflicts.append((index, item.external_id))
    return conflicts


def _split_new_and_existing(items: Sequence[ItemIn]) -> tuple[list[ItemIn], dict[str, Item]]:
    """New items (deduplicated), and the stored ones; raise on any text conflict."""
    existing = _existing_by_external_id(i.external_id for i in items)
    conflicts = find_conflicts(items, existing)
    if conflicts:
        raise IngestConflict(conflicts)
    new = {i.external_id: i for i in items if i.external_id not in existing}
    return list(new.values()), existing


def _queue_classification(item_ids: list[int]) -> Callable[[], None]:
    from .tasks import classify_items

    def queue_classification() -> None:
        classify_items.delay(item_ids)

    return queue_classification


def ingest_items(*, items: Sequence[ItemIn], source: str = Item.Source.API) -> IngestResult:
    """Store items, then queue their classification once the rows are committed.

    The same external id with the same text returns the stored item; with
    different text the whole batch is refused and nothing is written.
    """
    if not Category.objects.filter(is_active=True).exists():
        raise NotConfigured(
            "no active categories: an admin must create at least one before items can be routed"
        )
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                new, existing = _split_new_and_existing(items)
                # Inserted in id order: two batches that share new ids then wait on each
                # other's first shared id instead of each holding one the other needs.
                created = Item.objects.bulk_create(
                    Item(external_id=i.external_id, text=i.text, metadata=i.metadata, source=source)
                    for i in sorted(new, key=lambda i: i.external_id)
                )
                ids = [item.pk for item in created]
                chunk = settings.TRIAGE_CLASSIFY_CHUNK
                for start in range(0, len(ids), chunk):
                    # robust: the items are stored whatever happens next; a failed
                    # hand-off is logged and the sweep (classify_stuck) retries it.
                    transaction.on_commit(
                        _queue_classification(ids[start : start + chunk]), robust=True
                    )
            break
        except IntegrityError:
            # A concurrent request stored one of these ids between our read and
            # write; read again so it is reported as existing (or a conflict).
            if attempt == INGEST_ATTEMPTS:
                raise
        except OperationalError as exc:
            # A deadlock or serialization failure rolled the whole batch back: nothing
            # was written, so trying again is safe. Anything else is not transient.
            if not is_transient(exc) or attempt == INGEST_ATTEMPTS:
                raise
            logger.warning("ingest: %s; retrying (attempt %d)", exc, attempt + 1)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    by_id = {i.external_id: i for i in created} | existing
    ordered = list(dict.fromkeys(i.external_id for i in items))
    return IngestResult(
        created=[by_id[e] for e in ordered if e not in existing],
        existing=[by_id[e] for e in ordered if e in existing],
    )


def import_history(*, items: Sequence[ItemIn], categories: dict[str, Category]) -> IngestResult:
    """Store labelled rows as already-resolved items plus "import" training examples."""
    now = timezone.now()
    with transaction.atomic():
        new, existing = _split_new_and_existing(items)
        created = Item.objects.bulk_create(
            Item(
                external_id=i.external_id,
                text=i.text,
                metadata=i.metadata,
                source=Item.Source.IMPORT,
                status=Item.Status.RESOLVED,
                final_category=categories[i.label or ""],
                decided_by="import",
                decided_at=now,
            )
            for i in new
        )
        TrainingExample.objects.bulk_create(
            TrainingExample(
                item=item,
                text=item.text,
                category=item.final_category,
                source=TrainingExample.Source.IMPORT,
                split=split_for(item.external_id),
            )
            for item in created
        )
    return IngestResult(created=created, existing=list(existing.values()))


def classify_items(*, item_ids: Sequence[int]) -> int:
    """Score and route received items with the champion; returns how many were routed.

    Safe to run twice on the same ids (a redelivered task): items already past
    `received` are skipped, and rows are locked while they are routed.
    """
    items = list(
        Item.objects.pending().filter(pk__in=list(item_ids)).only("pk", "text").order_by("pk")
    )
    if not items:
        return 0
    champion = ModelVersion.objects.champion()
    # Scoring (embedding) is the slow part; it happens outside the routing transaction.
    scores = version_scores(champion, items) if champion else zero_shot_scores(items)
    now = timezone.now()
    policy = live_routing_policy(routing_policy(champion), policy=RoutingPolicy.current(), now=now)
    by_slug = Category.objects.in_bulk(list(scores.labels), field_name="slug")
    row_of = {item.pk: row for row, item in enumerate(items)}
    decided_by = f"model:v{champion.pk}" if champion else "model"

    with transaction.atomic():
        locked = list(
            Item.objects.pending()
            .select_for_update(skip_locked=True)
            .filter(pk__in=[item.pk for item in items])
            .values_list("pk", "external_id")
        )
        predictions, decisions, tasks = [], [], []
        # Grouped UPDATEs (one per outcome) rather than bulk_update's per-row CASE.
        routed_to: dict[str, list[int]] = {}
        to_review: list[int] = []
        for item_id, external_id in locked:
            row = scores.probs[row_of[item_id]]
            top = np.argsort(-row)[:TOP_K]
            label = scores.labels[top[0]]
            scored = routing.ScoredItem(
                label=label, confidence=float(row[top[0]]), cold_start=champion is None
            )
            decision = routing.decide(scored, policy, draw=routing.audit_draw(external_id))
            decisions.append(decision)
            predictions.append(
                Prediction(
                    item_id=item_id,
                    model_version=champion,
                    label=by_slug[label],
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
            if decision.route is routing.Route.AUTO:
                routed_to.setdefault(label, []).append(item_id)
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
        for label, routed_ids in routed_to.items():
            Item.objects.filter(pk__in=routed_ids).update(
                status=Item.Status.ROUTED,
                final_category=by_slug[label],
                decided_by=decided_by,
                decided_at=now,
            )
        ReviewTask.objects.bulk_create(tasks)
    return len(locked)


def stuck_item_ids(*, older_than: timedelta, limit: int = 10_000) -> list[int]:
    """Items still `received` well after ingest: their classification was lost or failed."""
    cutoff = timezone.now() - older_than
    return list(
        Item.objects.pending()
        .filter(received_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def _task_reason(decision: routing.Decision) -> str:
    if decision.audit:
        return ReviewTask.Reason.AUDIT_SAMPLE
    if decision.reason is routing.Reason.COLD_START:
        return ReviewTask.Reason.COLD_START
    if decision.reason is routing.Reason.SUSPENDED:
        return ReviewTask.Reason.SUSPENDED
    return ReviewTask.Reason.LOW_CONFIDENCE
