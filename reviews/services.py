"""The analysts' writes: claiming tasks under a lease, and recording decisions."""

import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from reviews.trust.second_review import after_review
from triage.access import is_senior
from triage.actions.events import EventType, NewEvent, emit_many, item_data
from triage.models import (
    Category,
    HandOff,
    Item,
    Prediction,
    Review,
    ReviewTask,
    ReviewTaskQuerySet,
    actor_name,
)
from triage.monitoring.audits import record_audit_verdict
from triage.monitoring.watch import check_category
from triage.privacy.masking import training_text
from triage.training.models import TrainingExample, split_for


class ReviewError(Exception):
    """A decision that cannot be recorded; the message says why, for the analyst."""

    # Errors in what the analyst sent are 400; the rest are conflicts with the task's or
    # decision's current state (someone else holds it, the window closed...): 409.
    INPUT_FIELDS = frozenset({"category", "comment", "note"})

    def __init__(self, message: str, *, field: str = "task") -> None:
        self.field = field
        super().__init__(message)

    @property
    def status(self) -> int:
        return 400 if self.field in self.INPUT_FIELDS else 409


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.TRIAGE_LEASE_SECONDS)


def current_task(*, user: User, now: datetime | None = None) -> ReviewTask | None:
    """The open task this user already holds a live lease on, if any."""
    now = now or timezone.now()
    return (
        ReviewTask.objects.open()
        .filter(claimed_by=user, lease_expires_at__gte=now)
        .select_related("item")
        .order_by("id")
        .first()
    )


_claim_rng = random.Random()


def suggested_as(slug: str) -> Exists:
    """Whether the model's latest prediction for a task's item is the category `slug`.

    Written as EXISTS (a prediction with that label, and none newer for the item) rather
    than comparing a "latest label" subquery per task: PostgreSQL runs it as one
    semi-join over the backlog instead of one lookup per open task.
    """
    newer = Prediction.objects.filter(item_id=OuterRef("item_id"), id__gt=OuterRef("id"))
    return Exists(
        Prediction.objects.filter(item_id=OuterRef("item_id"), label__slug=slug).filter(
            ~Exists(newer)
        )
    )


def offered(
    tasks: ReviewTaskQuerySet,
    *,
    user: User,
    now: datetime,
    senior: bool,
    category: str = "",
    reason: str = "",
) -> ReviewTaskQuerySet:
    """Which of `tasks` this user may be given, under the queue's filters.

    A task the user skipped is kept from them for TRIAGE_SKIP_COOLDOWN_SECONDS. A reason
    filter never matches audits: they show no reason on the card (they are blind), so a
    filtered queue offering one would give it away.
    """
    skipped_since = now - timedelta(seconds=settings.TRIAGE_SKIP_COOLDOWN_SECONDS)
    tasks = tasks.offered_to(user, senior=senior).exclude(
        pk__in=HandOff.objects.filter(
            user=user, kind=HandOff.Kind.SKIP, created_at__gte=skipped_since
        ).values("task_id")
    )
    if category:
        tasks = tasks.filter(suggested_as(category))
    if reason:
        tasks = tasks.filter(reason=reason).exclude(reason=ReviewTask.Reason.AUDIT_SAMPLE)
    return tasks


def claim_candidates(
    now: datetime,
    *,
    user: User,
    senior: bool,
    category: str = "",
    reason: str = "",
) -> tuple[ReviewTaskQuerySet, ReviewTaskQuerySet]:
    """The claim's two queries, audits and the rest, each in the order it takes them
    (benchmarks/scale.py explains these very queries)."""
    claimable = offered(
        ReviewTask.objects.claimable(now),
        user=user,
        now=now,
        senior=senior,
        category=category,
        reason=reason,
    ).select_for_update(skip_locked=True, of=("self",))
    # The item comes along for the card; only the task's row is locked.
    claimable = claimable.select_related("item")
    audit = ReviewTask.Reason.AUDIT_SAMPLE
    audits = claimable.filter(reason=audit).order_by("id")
    others = claimable.exclude(reason=audit).order_by("-priority", "id")
    return audits, others


def _next_claimable(
    now: datetime,
    *,
    user: User,
    senior: bool,
    audits_first: bool,
    category: str = "",
    reason: str = "",
) -> ReviewTask | None:
    audits, others = claim_candidates(
        now, user=user, senior=senior, category=category, reason=reason
    )
    for tasks in (audits, others) if audits_first else (others, audits):
        candidate = tasks.first()
        if candidate is not None:
            return candidate
    return None


def claim_next_task(
    *,
    user: User,
    now: datetime | None = None,
    rng: random.Random | None = None,
    category: str = "",
    reason: str = "",
) -> ReviewTask | None:
    """Give the user one task that nobody else holds.

    Audits are interleaved with the other tasks: each claim looks at the oldest
    audit first with probability TRIAGE_AUDIT_SHARE (default 1 in 4), otherwise
    at the other tasks, highest priority first; either way it falls back to the
    other kind when its first choice is empty. So while both kinds wait, about
    that share of claims are audits, and a long low-confidence backlog never
    starves them (a strict priority order would). Which tasks are audits stays
    invisible on the card (see reviews.views).

    On PostgreSQL, SELECT … FOR UPDATE SKIP LOCKED lets concurrent analysts
    pass over each other's rows instead of queueing behind them. The guarded
    UPDATE below is what actually makes a double claim impossible, on any
    database: it only succeeds while the task is still claimable.

    `category` (the model's suggestion) and `reason` narrow the choice (see offered);
    a task the user already holds is returned whatever the filters.
    """
    now = now or timezone.now()
    held = current_task(user=user, now=now)
    if held is not None:
        return held
    audits_first = (rng or _claim_rng).random() < settings.TRIAGE_AUDIT_SHARE
    senior = is_senior(user)
    for _ in range(20):
        with transaction.atomic():
            candidate = _next_claimable(
                now,
                user=user,
                senior=senior,
                audits_first=audits_first,
                category=category,
                reason=reason,
            )
            if candidate is None:
                return None
            lease = _lease_until(now)
            won = (
                ReviewTask.objects.claimable(now)
                .filter(pk=candidate.pk)
                .update(claimed_by=user, lease_expires_at=lease)
            )
        if won:
            candidate.claimed_by, candidate.lease_expires_at = user, lease
            return candidate
    return None


def renew_lease(*, task_id: int, user: User, now: datetime | None = None) -> bool:
    """Extend the user's hold on an open task they still hold; False if they lost it.

    A lapsed lease is renewed too while nobody else has claimed the task: the analyst
    is still looking at it, and no one was kept from it.
    """
    now = now or timezone.now()
    return bool(
        ReviewTask.objects.open()
        .filter(pk=task_id, claimed_by=user)
        .update(lease_expires_at=_lease_until(now))
    )


def held_task(*, task_id: int, user: User, now: datetime) -> ReviewTask:
    """The task, locked, if the user holds a live lease on it; else a ReviewError saying why."""
    task = ReviewTask.objects.select_for_update().select_related("item").filter(pk=task_id).first()
    if task is None:
        raise ReviewError(f"task {task_id} does not exist")
    if task.completed_at is not None:
        raise ReviewError(f"task {task_id} was already decided")
    if task.claimed_by_id != user.pk:
        raise ReviewError(f"task {task_id} is no longer yours: someone else has it now")
    if task.lease_expires_at is None or task.lease_expires_at < now:
        raise ReviewError(f"your hold on task {task_id} expired")
    return task


def record_training_example(*, item: Item, category: Category, source: str) -> TrainingExample:
    """Add the item's example; a later decision supersedes the earlier one."""
    TrainingExample.objects.active().filter(item=item).update(superseded_at=timezone.now())
    return TrainingExample.objects.create(
        item=item,
        text=training_text(item.text),
        category=category,
        source=source,
        split=split_for(item.external_id),
    )


def submit_review(
    *,
    task_id: int,
    user: User,
    category_slug: str,
    seconds_spent: float | None = None,
    comment: str = "",
    now: datetime | None = None,
    bulk: bool = False,
) -> Review:
    """Record an analyst's decision: route the item and keep it as a training example."""
    now = now or timezone.now()
    with transaction.atomic():
        task = held_task(task_id=task_id, user=user, now=now)
        category = active_category(category_slug)

        item = task.item
        prediction: Prediction | None = item.latest_prediction()
        # What the item was before this decision: an auto-action or an earlier review
        # that this one overturns is an `item.corrected`.
        previous = item.final_category
        previous_decided_by = item.decided_by
        agreed = prediction.label_id == category.pk if prediction is not None else None
        review = Review.objects.create(
            task=task,
            item=item,
            reviewer=user,
            category=category,
            agreed_with_model=agreed,
            seconds_spent=seconds_spent,
            comment=comment.strip(),
            created_at=now,
            bulk=bulk,
        )
        task.completed_at = now
        task.save(update_fields=["completed_at"])
        item.final_category = category
        item.status = Item.Status.RESOLVED
        item.decided_by = actor_name(user)
        item.decided_at = now
        item.save(update_fields=["final_category", "status", "decided_by", "decided_at"])
        _emit_review_events(
            item=item,
            task=task,
            category=category,
            prediction=prediction,
            agreed=agreed,
            previous=previous,
            previous_decided_by=previous_decided_by,
        )
        record_training_example(item=item, category=category, source=example_source(task))
        if task.reason == ReviewTask.Reason.AUDIT_SAMPLE:
            # The verdict feeds live precision and the drift watch; a watch that
            # alarms suspends the category in this same transaction.
            sample = record_audit_verdict(item_id=item.pk, audited_category=category, now=now)
            if sample is not None:
                check_category(category=sample.category, now=now)
        after_review(review)  # second reviews and quarantine (reviews.trust)
    return review


def example_source(task: ReviewTask) -> str:
    """An audit's decision is an `audit` example, any other a `review` one."""
    if task.reason == ReviewTask.Reason.AUDIT_SAMPLE:
        return TrainingExample.Source.AUDIT
    return TrainingExample.Source.REVIEW


def corrected_event(
    *,
    item: Item,
    category: Category,
    prediction: Prediction | None,
    reason: str,
    previous: Category,
    previous_decided_by: str,
) -> NewEvent:
    """`item.corrected`: a person overturned what the item was (an auto-action, or an
    earlier decision); `reason` says how (audit, review, review_changed)."""
    return NewEvent(
        type=EventType.ITEM_CORRECTED,
        item_id=item.pk,
        category_id=category.pk,
        data=item_data(
            item,
            category=category,
            decided_by=item.decided_by,
            reason=reason,
            confidence=prediction.confidence if prediction else None,
            model_version=prediction.model_version_id if prediction else None,
            previous_category=previous.slug,
            previous_decided_by=previous_decided_by,
        ),
    )


def active_category(slug: str) -> Category:
    category = Category.objects.filter(slug=slug, is_active=True).first()
    if category is None:
        raise ReviewError(f"unknown category {slug!r}", field="category")
    return category


def _emit_review_events(
    *,
    item: Item,
    task: ReviewTask,
    category: Category,
    prediction: Prediction | None,
    agreed: bool | None,
    previous: Category | None,
    previous_decided_by: str,
) -> None:
    """`item.reviewed` always; `item.corrected` when an earlier action is overturned."""
    common: dict[str, Any] = {
        "category": category,
        "decided_by": item.decided_by,
        "confidence": prediction.confidence if prediction else None,
        "model_version": prediction.model_version_id if prediction else None,
    }
    events = [
        NewEvent(
            type=EventType.ITEM_REVIEWED,
            item_id=item.pk,
            category_id=category.pk,
            data=item_data(
                item,
                reason=task.reason,
                agreed_with_model=agreed,
                model_label=prediction.label.slug if prediction else None,
                audit=task.reason == ReviewTask.Reason.AUDIT_SAMPLE,
                **common,
            ),
        )
    ]
    if previous is not None and previous.pk != category.pk:
        events.append(
            corrected_event(
                item=item,
                category=category,
                prediction=prediction,
                reason="audit" if task.reason == ReviewTask.Reason.AUDIT_SAMPLE else "review",
                previous=previous,
                previous_decided_by=previous_decided_by,
            )
        )
    emit_many(events)
