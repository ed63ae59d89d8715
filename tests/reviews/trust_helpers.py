"""Builders shared by the second-review, quarantine and bulk tests."""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from reviews.decisions import submit_review
from tests.factories import make_item, make_prediction, make_task
from triage.models import Category, Item, Review, ReviewTask


def confident_task(
    model_label: Category, *, confidence: float = 0.95, text: str = "x"
) -> ReviewTask:
    """A review task on an item the model labelled with this confidence."""
    item = make_item(text, status=Item.Status.IN_REVIEW)
    make_prediction(
        item, model_label, confidence=confidence, route="review", reason="low_confidence"
    )
    return make_task(item)


def decide(task: ReviewTask, user: Any, slug: str, *, now: datetime | None = None) -> Review:
    """Take this very task (not the next in the queue) and decide it."""
    now = now or timezone.now()
    ReviewTask.objects.filter(pk=task.pk).update(
        claimed_by=user, lease_expires_at=now + timedelta(minutes=10)
    )
    return submit_review(task_id=task.pk, user=user, category_slug=slug, now=now)
