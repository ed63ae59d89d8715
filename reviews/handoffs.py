"""Giving a task back undecided: skip it, or escalate it to the senior queue when unsure."""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.claims import ReviewError, held_task
from triage.models import HandOff, ReviewTask

MAX_NOTE_CHARS = 2000


def clean_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewError(
            f"the note is {len(note):,} characters; keep it under {MAX_NOTE_CHARS:,}",
            field="note",
        )
    return note


def skip_task(*, task_id: int, user: User, note: str = "", now: datetime | None = None) -> HandOff:
    """Put a held task back in the queue; it is not offered to this user again for
    TRIAGE_SKIP_COOLDOWN_SECONDS (see reviews.claims.offered). Others may take it at once."""
    now = now or timezone.now()
    note = clean_note(note)
    with transaction.atomic():
        task = held_task(task_id=task_id, user=user, now=now)
        ReviewTask.objects.filter(pk=task.pk).update(claimed_by=None, lease_expires_at=None)
        return HandOff.objects.create(
            task=task, user=user, kind=HandOff.Kind.SKIP, note=note, created_at=now
        )


def escalate_task(
    *, task_id: int, user: User, note: str = "", now: datetime | None = None
) -> HandOff:
    """Not sure: send a held task to the senior queue, with the analyst's note.

    The task becomes senior-only with reason `escalated`, except an audit: it keeps
    its reason, so it stays blind for the senior and its verdict still measures the
    model (changing it would silently drop an audit from live precision).
    """
    now = now or timezone.now()
    note = clean_note(note)
    with transaction.atomic():
        task = held_task(task_id=task_id, user=user, now=now)
        fields: dict[str, Any] = {"claimed_by": None, "lease_expires_at": None, "senior_only": True}
        if task.reason != ReviewTask.Reason.AUDIT_SAMPLE:
            fields["reason"] = ReviewTask.Reason.ESCALATED
        ReviewTask.objects.filter(pk=task.pk).update(**fields)
        return HandOff.objects.create(
            task=task, user=user, kind=HandOff.Kind.ESCALATE, note=note, created_at=now
        )
