"""Recording an analyst's decision: the review, the item's route, the training example, the
audit verdict and the events, in one transaction."""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.claims import ReviewError, held_task
from reviews.trust.quarantine import open_quarantine
from reviews.trust.second_review import after_review
from triage.actions.events import EventType, NewEvent, emit_many, item_data
from triage.models import (
    Category,
    Item,
    Prediction,
    Review,
    ReviewTask,
    actor_name,
)
from triage.monitoring.audits import record_audit_verdict
from triage.monitoring.models import Tally
from triage.monitoring.tallies import Deltas, agreed_label, state_of
from triage.monitoring.watch import check_category
from triage.privacy.masking import training_text
from triage.training.cadence import labels_recorded
from triage.training.models import TrainingExample, split_for


def record_training_example(*, item: Item, category: Category, source: str) -> TrainingExample:
    """Add the item's example; a later decision supersedes the earlier one. Enough new
    labels queue a retrain on commit (triage.training.cadence)."""
    TrainingExample.objects.active().filter(item=item).update(superseded_at=timezone.now())
    example = TrainingExample.objects.create(
        item=item,
        text=training_text(item.text),
        category=category,
        source=source,
        split=split_for(item.external_id),
    )
    labels_recorded([example.pk])
    return example


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
        state_before = state_of(item)
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
            # alarms suspends the category in this same transaction. A quarantined
            # analyst's verdict is held until an admin releases it (reviews.trust).
            held = open_quarantine(user) is not None
            sample = record_audit_verdict(
                item_id=item.pk, audited_category=category, now=now, held=held
            )
            if sample is not None and not held:
                check_category(category=sample.category, now=now)
        after_review(review)  # second reviews and quarantine (reviews.trust)
        tally = Deltas()
        tally.made(Tally.Kind.REVIEW, now, category.slug, agreed_label(agreed))
        tally.item(state_before, state_of(item))
        tally.task(task.reason, None)
        tally.apply()  # last: its row locks are held only until the commit
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
