"""Retention: old, decided items lose their text, metadata, embeddings and predictions.

An item is pruned when it was received before the cutoff, is routed or resolved, and
has no open review task (an audit or a second review still waiting keeps it whole).
It keeps its row, marked `pruned_at`, with its status, final category and who decided.

Its predictions are deleted, except those an audit sample rests on: an audit's verdict
is evidence for live precision and the drift watch, and the prediction it judged holds
a label and a confidence, no text.

Training examples of pruned items are deleted, so the next retrain learns from the
examples within the retention period only. Model versions are untouched: a version's
training snapshot and evidence hold counts, example ids, labels and probabilities,
never texts, so its certified thresholds, its page in the cockpit and a roll back to
it keep working; it can no longer be retrained from the same examples, and the gate
compares a candidate with the champion on the examples that remain (which are newer
than anything pruned, so none of them was hidden from the comparison).
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from triage.models import AuditLog, Item, Prediction, ReviewTask
from triage.monitoring.models import Tally
from triage.monitoring.tallies import Deltas
from triage.privacy.erasure import Erased, erase_copies

RETENTION = "retention"
DURATION = re.compile(r"(\d{1,6})\s*(d|w)", re.ASCII | re.IGNORECASE)
LONGEST_DAYS = 36_500
BATCH = 500


class RetentionError(Exception):
    """A retention that cannot run; the message names the problem."""


def parse_duration(value: str) -> timedelta:
    """ "180d" or "26w": at least TRIAGE_MIN_RETENTION_DAYS, at most a hundred years."""
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise RetentionError(
            f"--older-than {value!r}: give a number of days or weeks, e.g. 180d or 26w"
        )
    days = int(match[1]) * (7 if match[2].lower() == "w" else 1)
    shortest = settings.TRIAGE_MIN_RETENTION_DAYS
    if days < shortest:
        raise RetentionError(
            f"--older-than {value}: the shortest retention is {shortest} days (the cockpit's "
            "30-day trends and the live-precision window read predictions that recent)"
        )
    if days > LONGEST_DAYS:
        raise RetentionError(f"--older-than {value}: the longest retention is {LONGEST_DAYS} days")
    return timedelta(days=days)


@dataclass
class PruneReport:
    cutoff: datetime
    items: int = 0
    predictions: int = 0
    predictions_kept: int = 0
    still_open: int = 0
    erased: Erased = field(default_factory=Erased)

    def lines(self) -> list[str]:
        e = self.erased
        return [
            f"pruned {self.items} item(s) received before {self.cutoff:%Y-%m-%d %H:%M} UTC: "
            "text and metadata removed",
            f"  embeddings deleted: {e.embeddings}",
            f"  training examples deleted: {e.training_examples}",
            f"  predictions deleted: {self.predictions} "
            f"(kept {self.predictions_kept} that audit verdicts rest on)",
            f"  event payloads scrubbed: {e.event_payloads}; delivery answers cleared: "
            f"{e.delivery_responses}",
            f"  analyst comments and notes cleared: {e.analyst_notes}",
            f"  kept whole, still open (received, in review, or with an open task): "
            f"{self.still_open}",
        ]

    def as_detail(self) -> dict[str, object]:
        e = self.erased
        return {
            "cutoff": self.cutoff.isoformat(),
            "items": self.items,
            "embeddings": e.embeddings,
            "training_examples": e.training_examples,
            "predictions": self.predictions,
            "predictions_kept": self.predictions_kept,
            "event_payloads": e.event_payloads,
            "delivery_responses": e.delivery_responses,
            "analyst_notes": e.analyst_notes,
            "still_open": self.still_open,
        }


def _by_hour(predictions: QuerySet[Prediction]) -> list[tuple[datetime, str, str, int]]:
    """(hour, label slug, route, how many) of the predictions, for their tallies."""
    return list(
        predictions.order_by()
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values_list("hour", "label__slug", "route")
        .annotate(n=Count("id"))
        .values_list("hour", "label__slug", "route", "n")
    )


def _old(cutoff: datetime) -> QuerySet[Item]:
    return Item.objects.filter(received_at__lt=cutoff, pruned_at__isnull=True)


def prunable(cutoff: datetime) -> QuerySet[Item]:
    """Items received before the cutoff that nobody is deciding any more."""
    open_task = ReviewTask.objects.filter(item=OuterRef("pk"), completed_at__isnull=True)
    return (
        _old(cutoff)
        .filter(status__in=[Item.Status.ROUTED, Item.Status.RESOLVED])
        .exclude(Exists(open_task))
    )


def prune(*, older_than: timedelta, actor: str, now: datetime | None = None) -> PruneReport:
    """Prune in batches, each its own transaction, so a large backlog never holds one
    long lock; the audit log gets one entry with the totals."""
    now = now or timezone.now()
    report = PruneReport(cutoff=now - older_than)
    after = 0  # a cursor on the primary key: each batch reads on from the last, never rescans
    while True:
        ids = list(
            prunable(report.cutoff)
            .filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            break
        after = ids[-1]
        with transaction.atomic():
            # Locked, then checked again: a task may have opened since the read.
            locked = list(Item.objects.select_for_update().filter(pk__in=ids).values_list("pk"))
            batch = list(
                prunable(report.cutoff)
                .filter(pk__in=[pk for (pk,) in locked])
                .values_list("pk", flat=True)
            )
            if not batch:
                continue
            report.erased.add(erase_copies(batch, reason=RETENTION))
            predictions = Prediction.objects.filter(item_id__in=batch)
            report.predictions_kept += predictions.filter(audit_sample__isnull=False).count()
            doomed = predictions.filter(audit_sample__isnull=True)
            tally = Deltas()
            for at, slug, route, n in _by_hour(doomed):
                tally.removed(Tally.Kind.PREDICTION, at, slug, route, n)
            deleted, _ = doomed.delete()
            tally.apply()  # the tallies count what remains; n + gone, what was ever made
            report.predictions += deleted
            report.items += Item.objects.filter(pk__in=batch).update(
                text="", metadata={}, pruned_at=now
            )
    report.still_open = _old(report.cutoff).count()
    AuditLog.record(
        actor=actor,
        action="prune",
        target="items",
        older_than_days=older_than.days,
        **report.as_detail(),
    )
    return report
