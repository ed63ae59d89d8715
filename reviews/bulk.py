"""Bulk decisions: one category applied to several open tasks at once.

Each task gets its own Review (marked bulk) through submit_review, so events, training
examples, audits and second reviews behave exactly as for one decision. The selection
is taken whole or not at all: over TRIAGE_BULK_LIMIT, or holding a task that someone
else holds (or is claiming at this very moment), it is refused and nothing is written.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from reviews.claims import ReviewError
from reviews.decisions import submit_review
from triage.access import is_senior
from triage.models import Category, Review, ReviewTask, ReviewTaskQuerySet

# Each of these needs its own blind look; copying one answer onto many would defeat them.
NOT_IN_BULK = [
    ReviewTask.Reason.AUDIT_SAMPLE,
    ReviewTask.Reason.SECOND_REVIEW,
    ReviewTask.Reason.DISAGREEMENT,
]


class BulkError(Exception):
    """A bulk decision refused whole; the message names what was wrong."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        self.status = status
        super().__init__(message)


def bulk_candidates(*, user: User, senior: bool, now: datetime | None = None) -> ReviewTaskQuerySet:
    """Open tasks this user could take into a bulk decision right now."""
    now = now or timezone.now()
    return (
        ReviewTask.objects.open()
        .offered_to(user, senior=senior)
        .exclude(reason__in=NOT_IN_BULK)
        .filter(Q(claimed_by__isnull=True) | Q(lease_expires_at__lt=now) | Q(claimed_by=user))
    )


def bulk_decide(
    *,
    user: User,
    task_ids: Sequence[int],
    category_slug: str,
    seconds_spent: float | None = None,
    now: datetime | None = None,
) -> list[Review]:
    """Decide every selected task as `category_slug`, or none of them."""
    now = now or timezone.now()
    ids = list(dict.fromkeys(task_ids))
    limit = settings.TRIAGE_BULK_LIMIT
    if not ids:
        raise BulkError("select at least one task", status=400)
    if len(ids) > limit:
        raise BulkError(
            f"{len(ids)} tasks selected; at most {limit} can be decided at once", status=400
        )
    if not Category.objects.filter(slug=category_slug, is_active=True).exists():
        raise BulkError(f"unknown category {category_slug!r}", status=400)
    senior = is_senior(user)
    with transaction.atomic():
        # Lock the selection without waiting: a row someone is claiming or deciding right
        # now is skipped, and a skipped row refuses the whole bulk (as on PostgreSQL's
        # claim_next_task, the guarded UPDATE below is what makes it race-free anywhere).
        locked = {
            task.pk: task
            for task in ReviewTask.objects.select_for_update(skip_locked=True).filter(pk__in=ids)
        }
        _check_selection(ids, locked, user=user, senior=senior, now=now)
        claimed = (
            bulk_candidates(user=user, senior=senior, now=now)
            .filter(pk__in=ids)
            .update(
                claimed_by=user,
                lease_expires_at=now + timedelta(seconds=settings.TRIAGE_LEASE_SECONDS),
            )
        )
        if claimed != len(ids):
            raise BulkError("another analyst took one of the selected tasks; nothing was decided")
        share = seconds_spent / len(ids) if seconds_spent is not None else None
        try:
            return [
                submit_review(
                    task_id=pk,
                    user=user,
                    category_slug=category_slug,
                    seconds_spent=share,
                    now=now,
                    bulk=True,
                )
                for pk in ids
            ]
        except ReviewError as exc:
            raise BulkError(f"{exc}; nothing was decided") from exc


def _check_selection(
    ids: list[int], locked: dict[int, ReviewTask], *, user: User, senior: bool, now: datetime
) -> None:
    problems = []
    for pk in ids:
        task = locked.get(pk)
        if task is None:
            exists = ReviewTask.objects.filter(pk=pk).exists()
            problems.append(
                f"task {pk} {'is being taken by someone else' if exists else 'does not exist'}"
            )
        elif task.completed_at is not None:
            problems.append(f"task {pk} was already decided")
        elif (
            task.claimed_by_id not in (None, user.pk)
            and task.lease_expires_at is not None
            and task.lease_expires_at >= now
        ):
            problems.append(f"task {pk} is held by someone else")
        elif (
            task.reason in NOT_IN_BULK
            or (task.senior_only and not senior)
            or (task.excluded_reviewer_id == user.pk)
        ):
            problems.append(f"task {pk} cannot be decided in bulk")
    if problems:
        raise BulkError("; ".join(problems) + "; nothing was decided")
