"""Forgetting items: their text and metadata removed from every table, a tombstone left.

The item row stays, emptied and marked `forgotten_at`: ingest of the same external id
then finds it and stores nothing again (ingest stays idempotent), and counts of items,
decisions and reviews stay right. Its predictions stay too (a label and a confidence,
no text); see triage.privacy.erasure for every copy that is removed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from triage.models import AuditLog, Item, ReviewTask
from triage.models.text import normalize_external_id, unstorable_string
from triage.monitoring.tallies import Deltas, state_of
from triage.privacy.erasure import Erased, erase_copies

# decided_by of an item forgotten before anyone decided it: it leaves the queue.
FORGOTTEN = "forgotten"


class ForgetError(Exception):
    """Nothing was forgotten; the message says why."""


@dataclass(frozen=True)
class Forgotten:
    external_id: str
    erased: Erased
    open_tasks_removed: int
    was_forgotten_at: datetime | None

    def summary(self) -> str:
        e = self.erased
        parts = [
            "text and metadata",
            f"{e.embeddings} embedding(s)",
            f"{e.training_examples} training example(s)",
            f"{e.event_payloads} event payload(s)",
        ]
        if e.delivery_responses:
            parts.append(f"{e.delivery_responses} delivery answer(s)")
        if e.analyst_notes:
            parts.append(f"{e.analyst_notes} analyst comment(s) or note(s)")
        if self.open_tasks_removed:
            parts.append(f"{self.open_tasks_removed} open review task(s)")
        again = (
            f" (already forgotten on {self.was_forgotten_at:%Y-%m-%d %H:%M})"
            if self.was_forgotten_at
            else ""
        )
        return f"forgot {self.external_id!r}{again}: " + ", ".join(parts)


def forget_items(
    *, external_ids: Sequence[str], actor: str, now: datetime | None = None
) -> list[Forgotten]:
    """Forget every listed item, or none: an unknown id or one still being classified
    refuses the whole call.

    An item still `received` is refused because its classification may be embedding it
    right now and would cache a vector of the text after we removed it; it is routed or
    in review within seconds. An item waiting in review leaves the queue: its open tasks
    are deleted and it is resolved with no category, decided by "forgotten". Each item
    gets an audit-log entry naming the external id and what was removed, never the text.
    """
    now = now or timezone.now()
    for raw in external_ids:
        problem = unstorable_string(raw)
        if problem:
            raise ForgetError(f"external id {raw!r} {problem}; nothing was forgotten")
    wanted = list(dict.fromkeys(normalize_external_id(e) for e in external_ids))
    if not wanted or any(not e for e in wanted):
        raise ForgetError("give at least one non-empty external id")
    with transaction.atomic():
        # Open tasks first, then items: the order submit_review locks them in, so a
        # decision being recorded at this moment finishes first (and is then forgotten)
        # instead of deadlocking with us.
        list(
            ReviewTask.objects.select_for_update(of=("self",))
            .filter(item__external_id__in=wanted, completed_at__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        items = {
            item.external_id: item
            for item in Item.objects.select_for_update().filter(external_id__in=wanted)
        }
        unknown = [e for e in wanted if e not in items]
        if unknown:
            raise ForgetError(
                f"unknown external id(s): {', '.join(map(repr, unknown))}; nothing was forgotten"
            )
        pending = [e for e in wanted if items[e].status == Item.Status.RECEIVED]
        if pending:
            raise ForgetError(
                f"still being classified: {', '.join(map(repr, pending))}; nothing was "
                "forgotten (try again in a minute, once they are routed or in review)"
            )
        tally = Deltas()
        forgotten = [_forget(items[e], actor=actor, now=now, tally=tally) for e in wanted]
        tally.apply()  # once, last: its row locks are held only until the commit
        return forgotten


def _forget(item: Item, *, actor: str, now: datetime, tally: Deltas) -> Forgotten:
    erased = erase_copies([item.pk], reason=FORGOTTEN)
    open_tasks = ReviewTask.objects.filter(item=item, completed_at__isnull=True)
    for reason in open_tasks.values_list("reason", flat=True):
        tally.task(reason, None)
    removed_tasks, _ = open_tasks.delete()
    was_forgotten_at = item.forgotten_at
    state_before = state_of(item)
    item.text, item.metadata, item.forgotten_at = "", {}, now
    fields = ["text", "metadata", "forgotten_at"]
    if item.status == Item.Status.IN_REVIEW:
        item.status, item.decided_by, item.decided_at = Item.Status.RESOLVED, FORGOTTEN, now
        fields += ["status", "decided_by", "decided_at"]
    item.save(update_fields=fields)
    tally.item(state_before, state_of(item))
    AuditLog.record(
        actor=actor,
        action="forget",
        target=f"item:{item.external_id}",
        external_id=item.external_id,
        removed={
            "embeddings": erased.embeddings,
            "training_examples": erased.training_examples,
            "event_payloads": erased.event_payloads,
            "delivery_responses": erased.delivery_responses,
            "analyst_notes": erased.analyst_notes,
            "open_review_tasks": removed_tasks,
        },
    )
    return Forgotten(item.external_id, erased, removed_tasks, was_forgotten_at)
