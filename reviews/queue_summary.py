"""What the queue holds, for the analyst looking at it: counts that add up to the total."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Count, Min
from django.utils import timezone

from reviews.claims import NEVER_AUTOMATIC, never_automatic, offered
from triage.access import is_senior
from triage.models import ReviewTask

_R = ReviewTask.Reason
# Why tasks wait, in analysts' words; "model unsure" and "category never automatic" are
# both stored as low confidence, told apart by the prediction (see claims.never_automatic).
REASON_LABELS = {
    _R.LOW_CONFIDENCE.value: "Model unsure",
    NEVER_AUTOMATIC: "Category never automatic",
    _R.COLD_START.value: "No trained model yet",
    _R.RULE.value: "Sent by a rule",
    _R.MODEL_UNAVAILABLE.value: "Model could not score it",
    _R.CATEGORY_INACTIVE.value: "Category switched off",
    _R.SUSPENDED.value: "Category suspended",
    _R.ESCALATED.value: "Escalated",
    _R.SECOND_REVIEW.value: "Second look",
    _R.DISAGREEMENT.value: "Disagreement to settle",
    _R.AUDIT_SAMPLE.value: "Audit",
}


@dataclass(frozen=True)
class QueueSummary:
    """Open tasks, split so the parts add up to `open`: held by someone else, for
    others only (the senior queue, a second look at this user's own decision), skipped
    by this user recently, outside the user's filters, and available to them now."""

    open: int
    held_by_others: int
    for_others: int
    skipped_by_me: int
    outside_filters: int
    available: int
    held_by_me: int
    per_reason: list[tuple[str, int]]
    oldest: datetime | None


def open_per_reason() -> dict[str, int]:
    """Open tasks per reason (REASON_LABELS' keys), low confidence split in two."""
    open_tasks = ReviewTask.objects.open()
    per_reason = dict(
        open_tasks.values_list("reason").annotate(n=Count("id")).values_list("reason", "n")
    )
    low = ReviewTask.Reason.LOW_CONFIDENCE
    if per_reason.get(low):
        never = open_tasks.filter(reason=low).filter(never_automatic()).count()
        per_reason[low] -= never
        per_reason[NEVER_AUTOMATIC] = never
    return per_reason


def queue_summary(
    *, user: User, category: str = "", reason: str = "", now: datetime | None = None
) -> QueueSummary:
    now = now or timezone.now()
    open_tasks = ReviewTask.objects.open()
    total = open_tasks.count()
    held_by_me = open_tasks.filter(claimed_by=user, lease_expires_at__gte=now).count()
    claimable = ReviewTask.objects.claimable(now)
    free = claimable.count()
    senior = is_senior(user)
    mine = claimable.offered_to(user, senior=senior).count()
    unskipped = offered(claimable, user=user, now=now, senior=senior).count()
    available = offered(
        claimable, user=user, now=now, senior=senior, category=category, reason=reason
    ).count()
    per_reason = open_per_reason()
    oldest = open_tasks.aggregate(oldest=Min("created_at"))["oldest"]
    return QueueSummary(
        open=total,
        held_by_others=total - free - held_by_me,
        for_others=free - mine,
        skipped_by_me=mine - unskipped,
        outside_filters=unskipped - available,
        available=available,
        held_by_me=held_by_me,
        per_reason=[
            (label, per_reason[value])
            for value, label in REASON_LABELS.items()
            if per_reason.get(value)
        ],
        oldest=oldest,
    )
