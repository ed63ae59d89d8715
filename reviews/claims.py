"""Claiming review tasks under an expiring lease: what is offered to whom, in which order,
and who holds what."""

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from triage.access import is_senior
from triage.models import (
    HandOff,
    Prediction,
    ReviewTask,
    ReviewTaskQuerySet,
    RoutingPolicy,
)


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


# A queue filter that is not a stored reason: low-confidence tasks whose category can never
# act alone (no threshold could be certified), apart from those where the model was unsure.
NEVER_AUTOMATIC = "never_automatic"


def never_automatic() -> Exists:
    """Whether the latest prediction for a task's item came to review because its
    category's target precision cannot be certified (any confidence would have come)."""
    newer = Prediction.objects.filter(item_id=OuterRef("item_id"), id__gt=OuterRef("id"))
    return Exists(
        Prediction.objects.filter(item_id=OuterRef("item_id"), reason="target_unreachable").filter(
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
    low = ReviewTask.Reason.LOW_CONFIDENCE
    if reason == NEVER_AUTOMATIC:
        tasks = tasks.filter(reason=low).filter(never_automatic())
    elif reason == low:
        tasks = tasks.filter(reason=low).exclude(never_automatic())
    elif reason:
        tasks = tasks.filter(reason=reason).exclude(reason=ReviewTask.Reason.AUDIT_SAMPLE)
    return tasks


def claim_candidates(
    now: datetime,
    *,
    user: User,
    senior: bool,
    category: str = "",
    reason: str = "",
    smallest_margin: bool = False,
) -> tuple[ReviewTaskQuerySet, ReviewTaskQuerySet]:
    """The claim's two queries, audits and the rest, each in the order it takes them
    (benchmarks/scale.py explains these very queries).

    Audits are always the oldest first: they are a random, blind sample already, and
    ordering them by the model's doubt would tell whoever works the queue which ones
    they are. The rest go by priority, then the oldest or, with `smallest_margin`, the
    task the model is most torn on (each order has its own partial index)."""
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
    others = claimable.exclude(reason=audit).order_by(
        *(("-priority", "margin", "id") if smallest_margin else ("-priority", "id"))
    )
    return audits, others


def _next_claimable(
    now: datetime,
    *,
    user: User,
    senior: bool,
    audits_first: bool,
    smallest_margin: bool,
    category: str = "",
    reason: str = "",
) -> ReviewTask | None:
    audits, others = claim_candidates(
        now,
        user=user,
        senior=senior,
        category=category,
        reason=reason,
        smallest_margin=smallest_margin,
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

    With the policy's queue order "smallest margin first", the other tasks come in
    order of the model's doubt (its top confidence minus its second), except that
    TRIAGE_QUEUE_OLDEST_SHARE of claims take the oldest, so no task waits forever.

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
    rng = rng or _claim_rng
    audits_first = rng.random() < settings.TRIAGE_AUDIT_SHARE
    smallest_margin = (
        RoutingPolicy.objects.values_list("queue_order", flat=True).filter(pk=1).first()
        == RoutingPolicy.QueueOrder.SMALLEST_MARGIN
        and rng.random() >= settings.TRIAGE_QUEUE_OLDEST_SHARE
    )
    senior = is_senior(user)
    for _ in range(20):
        with transaction.atomic():
            candidate = _next_claimable(
                now,
                user=user,
                senior=senior,
                audits_first=audits_first,
                smallest_margin=smallest_margin,
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
    """The task, locked, if the user holds it; else a ReviewError saying why.

    A lease that lapsed while nobody else claimed the task still counts: the claim
    would hand it to anyone, this user included, so refusing the decision would only
    throw away an answer the server could accept. The lock taken here is what keeps a
    concurrent claim from slipping in between: a claim's guarded UPDATE waits for it,
    then finds the task completed. The re-claim is recorded on the task (its lease is
    renewed) with the decision, in the caller's transaction.
    """
    task = ReviewTask.objects.select_for_update().select_related("item").filter(pk=task_id).first()
    if task is None:
        raise ReviewError(f"task {task_id} does not exist")
    if task.completed_at is not None:
        raise ReviewError(f"task {task_id} was already decided")
    if task.claimed_by_id != user.pk:
        raise ReviewError(f"task {task_id} is no longer yours: someone else has it now")
    if task.lease_expires_at is None or task.lease_expires_at < now:
        if (
            not ReviewTask.objects.filter(pk=task.pk)
            .offered_to(user, senior=is_senior(user))
            .exists()
        ):
            raise ReviewError(f"your hold on task {task_id} expired")
        task.lease_expires_at = _lease_until(now)
        task.save(update_fields=["lease_expires_at"])
    return task
