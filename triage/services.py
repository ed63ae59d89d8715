"""Multi-step writes for intake: ingest, import history, classify-and-route.

Retraining, the promotion gate and roll back live in triage.training.
"""

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from reviews.models import ReviewTask, TrainingExample, split_for

from . import routing
from .actions.events import EventType, NewEvent, emit_many, item_data
from .actions.models import Alert
from .actions.rules import active_item_rules, count_hits
from .intake import ItemIn
from .models import Category, Item, ModelVersion, Prediction, RoutingPolicy
from .monitoring.audits import live_routing_policy, record_audit_samples
from .monitoring.instruments import observe_classify
from .policy import routing_policy
from .privacy.masking import training_texts
from .scoring import IN_CHUNK, ClassificationError, Scores, version_scores, zero_shot_scores

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
        # A forgotten or pruned item has no text to compare: the id is known, so the
        # stored tombstone is the answer and nothing is stored again.
        differs = stored is not None and not stored.text_removed and stored.text != item.text
        if differs or earlier != item.text:
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
                text=text,
                category=item.final_category,
                source=TrainingExample.Source.IMPORT,
                split=split_for(item.external_id),
            )
            for item, text in zip(created, training_texts([i.text for i in created]), strict=True)
        )
    return IngestResult(created=created, existing=list(existing.values()))


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
                draw=routing.audit_draw(item.external_id),
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
        scores = version_scores(champion, items) if champion else zero_shot_scores(items)
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


def requeue_stuck_items(*, now: datetime | None = None, limit: int = 10_000) -> list[int]:
    """Re-queue items whose classification was lost; returns the ids re-queued.

    Items merely waiting behind a long queue are left alone: while the queue is
    moving (something was classified within TRIAGE_STUCK_AFTER_SECONDS), only items
    received before the newest classified one count as stuck, since the workers have
    already passed them. Each re-queue counts an attempt and doubles the wait before
    the next; after TRIAGE_STUCK_MAX_ATTEMPTS the item goes to review, unscored.
    """
    now = now or timezone.now()
    stuck_after = timedelta(seconds=settings.TRIAGE_STUCK_AFTER_SECONDS)
    latest = (
        Prediction.objects.order_by("-id").values_list("created_at", "item__received_at").first()
    )
    candidates = (
        Item.objects.pending()
        .filter(received_at__lt=now - stuck_after)
        .filter(Q(classify_after__isnull=True) | Q(classify_after__lte=now))
    )
    if latest is not None and latest[0] >= now - stuck_after:
        candidates = candidates.filter(received_at__lte=latest[1])
    rows = list(candidates.order_by("pk").values_list("pk", "classify_attempts")[:limit])
    give_up = [pk for pk, attempts in rows if attempts >= settings.TRIAGE_STUCK_MAX_ATTEMPTS]
    if give_up:
        give_up_on(
            give_up,
            alert_kind="classification_lost",
            message=(
                f"Items were re-queued {settings.TRIAGE_STUCK_MAX_ATTEMPTS} times and "
                "never classified (are the Celery workers running?); sent to review."
            ),
        )
    by_attempts: dict[int, list[int]] = {}
    for pk, attempts in rows:
        if attempts < settings.TRIAGE_STUCK_MAX_ATTEMPTS:
            by_attempts.setdefault(attempts, []).append(pk)
    requeued: list[int] = []
    for attempts, ids in by_attempts.items():
        Item.objects.filter(pk__in=ids).update(
            classify_attempts=attempts + 1, classify_after=now + stuck_after * 2 ** (attempts + 1)
        )
        requeued.extend(ids)
    return sorted(requeued)


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
