"""Changing one's own decision while the undo window (TRIAGE_UNDO_SECONDS) is open."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.claims import ReviewError
from reviews.decisions import (
    active_category,
    corrected_event,
    example_source,
    record_training_example,
)
from reviews.handoffs import clean_note
from triage.actions.events import emit_many
from triage.models import Item, Review, ReviewTask
from triage.monitoring.audits import amend_audit_verdict
from triage.monitoring.models import Tally
from triage.monitoring.tallies import Deltas, agreed_label, state_of
from triage.monitoring.watch import check_category


def undo_deadline(review: Review) -> datetime:
    return review.created_at + timedelta(seconds=settings.TRIAGE_UNDO_SECONDS)


def can_change(review: Review, *, user: User, now: datetime | None = None) -> bool:
    return review.reviewer_id == user.pk and (now or timezone.now()) <= undo_deadline(review)


def last_changeable_review(*, user: User, now: datetime | None = None) -> Review | None:
    """The user's newest decision that is still theirs to change (for the `u` key)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.TRIAGE_UNDO_SECONDS)
    return (
        Review.objects.filter(reviewer=user, created_at__gte=since)
        .select_related("item", "task", "category")
        .order_by("-created_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class RecentDecision:
    review: Review
    minutes_left: int | None  # None once the window to change it has closed


def recent_decisions(
    *, user: User, count: int = 5, now: datetime | None = None
) -> list[RecentDecision]:
    """The user's newest decisions, with the whole minutes left to change each."""
    now = now or timezone.now()
    reviews = (
        Review.objects.filter(reviewer=user)
        .select_related("item", "task", "category")
        .order_by("-created_at", "-id")[:count]
    )
    return [RecentDecision(r, minutes_left(r, now=now)) for r in reviews]


def minutes_left(review: Review, *, now: datetime) -> int | None:
    left = (undo_deadline(review) - now).total_seconds()
    return max(1, math.ceil(left / 60)) if left >= 0 else None


def change_decision(
    *,
    review_id: int,
    user: User,
    category_slug: str,
    comment: str | None = None,
    now: datetime | None = None,
) -> Review:
    """Change the category (and/or the comment) of the user's own recent decision.

    The item was already acted on (routed, `item.reviewed` sent), so a new category is
    a correction: `item.corrected` goes out in this transaction, the training example
    is superseded by one with the new label, and an audit's verdict is re-recorded so
    live precision and the drift watch count what the analyst finally said.
    """
    now = now or timezone.now()
    with transaction.atomic():
        review = (
            Review.objects.select_for_update()
            .select_related("item", "task", "category")
            .filter(pk=review_id)
            .first()
        )
        if review is None:
            raise ReviewError(f"decision {review_id} does not exist", field="review")
        if review.reviewer_id != user.pk:
            raise ReviewError(f"decision {review_id} is not yours to change", field="review")
        deadline = undo_deadline(review)
        if now > deadline:
            minutes = settings.TRIAGE_UNDO_SECONDS // 60
            raise ReviewError(
                f"decision {review_id} can no longer be changed: the {minutes}-minute window "
                f"closed at {timezone.localtime(deadline):%H:%M}",
                field="review",
            )
        item = Item.objects.select_for_update().get(pk=review.item_id)
        newest = Review.objects.filter(item=item).order_by("-created_at", "-id").first()
        if newest is not None and newest.pk != review.pk:
            raise ReviewError(
                f"a later decision on item {item.external_id} replaced yours; it cannot change",
                field="review",
            )
        category = active_category(category_slug)
        if comment is not None:
            review.comment = clean_note(comment)
        previous = review.category
        review.changed_at = now
        if category.pk == previous.pk:
            review.save(update_fields=["comment", "changed_at"])
            return review

        prediction = item.latest_prediction()
        state_before = state_of(item)
        counted_as = (previous.slug, agreed_label(review.agreed_with_model))
        review.category = category
        review.agreed_with_model = prediction.label_id == category.pk if prediction else None
        review.save(update_fields=["category", "agreed_with_model", "comment", "changed_at"])
        previous_decided_by = item.decided_by
        item.final_category = category
        item.decided_at = now
        item.save(update_fields=["final_category", "decided_at"])
        record_training_example(item=item, category=category, source=example_source(review.task))
        emit_many(
            [
                corrected_event(
                    item=item,
                    category=category,
                    prediction=prediction,
                    reason="review_changed",
                    previous=previous,
                    previous_decided_by=previous_decided_by,
                )
            ]
        )
        if review.task.reason == ReviewTask.Reason.AUDIT_SAMPLE:
            # The changed verdict feeds live precision and the drift watch again.
            sample = amend_audit_verdict(item_id=item.pk, audited_category=category)
            if sample is not None:
                check_category(category=sample.category, now=now)
        tally = Deltas()
        tally.moved(
            Tally.Kind.REVIEW,
            review.created_at,
            counted_as,
            (category.slug, agreed_label(review.agreed_with_model)),
        )
        tally.item(state_before, state_of(item))
        tally.apply()  # last: its row locks are held only until the commit
    return review


def bulk_batch(review: Review) -> list[Review]:
    """The decisions taken with `review` in one bulk: the same analyst at the same instant
    (reviews.bulk records every review of a bulk with one timestamp)."""
    if not review.bulk:
        return [review]
    return list(
        Review.objects.filter(
            reviewer_id=review.reviewer_id, bulk=True, created_at=review.created_at
        )
        .select_related("item", "task", "category")
        .order_by("id")
    )


def change_batch(
    *, review_id: int, user: User, category_slug: str, now: datetime | None = None
) -> list[Review]:
    """Change every decision of the bulk that `review_id` belongs to, or none of them:
    the undo of a bulk decision (each one through change_decision, its one write path)."""
    now = now or timezone.now()
    review = Review.objects.filter(pk=review_id, reviewer_id=user.pk).first()
    if review is None:
        raise ReviewError(f"decision {review_id} is not yours to change", field="review")
    with transaction.atomic():
        return [
            change_decision(review_id=r.pk, user=user, category_slug=category_slug, now=now)
            for r in bulk_batch(review)
        ]
