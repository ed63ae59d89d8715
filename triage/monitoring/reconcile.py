"""Checking the tallies against a full count, and repairing what drifted.

A tally can drift only when rows are written around the services (a shell, a raw SQL
fix, a restore of one table): `manage.py reconcile_counters` counts every table once,
says per key what differs, and with --repair sets each tally to the count. A repair
that lowers a row's n adds the difference to its gone, so n + gone, what Prometheus
exposes as a counter, never goes down.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Coalesce, TruncHour

from triage.models import AuditLog
from triage.monitoring.models import Tally
from triage.monitoring.tallies import (
    TOTAL,
    TallyKey,
    agreed_label,
    apply,
    item_key,
    item_state,
)

KINDS: tuple[str, ...] = tuple(Tally.Kind.values)


def _hourly(kind: str, rows: Iterator[tuple[Any, str, str, int]]) -> Counter[TallyKey]:
    out: Counter[TallyKey] = Counter()
    for hour, category, key, n in rows:
        out[TallyKey(kind, hour, category or "", key)] += n
        out[TallyKey(kind, TOTAL, category or "", key)] += n
    return out


def full_counts(
    kinds: tuple[str, ...] = KINDS,
    *,
    item_model: Any = None,
    prediction_model: Any = None,
    review_model: Any = None,
    task_model: Any = None,
) -> Counter[TallyKey]:
    """What every tally of these kinds should hold, counted in the tables (one grouped query
    per kind). The models may be given (a migration's historical ones)."""
    from triage.models import Item, Prediction, Review, ReviewTask

    item_model = item_model or Item
    prediction_model = prediction_model or Prediction
    review_model = review_model or Review
    task_model = task_model or ReviewTask
    out: Counter[TallyKey] = Counter()
    hour = TruncHour("created_at", tzinfo=UTC)

    def grouped(queryset: Any, *fields: str) -> Iterator[Any]:
        return iter(
            queryset.order_by()
            .values_list(*fields)
            .annotate(n=Count("id"))
            .values_list(*fields, "n")
        )

    if Tally.Kind.PREDICTION in kinds:
        rows = prediction_model.objects.annotate(hour=hour, slug=F("label__slug"))
        out.update(_hourly(Tally.Kind.PREDICTION, grouped(rows, "hour", "slug", "route")))
    if Tally.Kind.REVIEW in kinds:
        rows = review_model.objects.annotate(hour=hour, slug=F("category__slug"))
        out.update(
            _hourly(
                Tally.Kind.REVIEW,
                (
                    (h, slug, agreed_label(a), n)
                    for h, slug, a, n in grouped(rows, "hour", "slug", "agreed_with_model")
                ),
            )
        )
    if Tally.Kind.RECEIVED in kinds:
        rows = item_model.objects.annotate(
            hour=TruncHour("received_at", tzinfo=UTC), none=Value("")
        )
        out.update(_hourly(Tally.Kind.RECEIVED, grouped(rows, "hour", "none", "source")))
    if Tally.Kind.ITEM in kinds:
        rows = item_model.objects.annotate(slug=Coalesce("final_category__slug", Value("")))
        # decided_by is grouped as it is and mapped in Python: few distinct values.
        for status, slug, decided_by, n in grouped(rows, "status", "slug", "decided_by"):
            out[item_key(item_state(status=status, category=slug, decided_by=decided_by))] += n
    if Tally.Kind.TASK in kinds:
        rows = task_model.objects.filter(completed_at__isnull=True).annotate(none=Value(""))
        for _, reason, n in grouped(rows, "none", "reason"):
            out[TallyKey(Tally.Kind.TASK, TOTAL, "", reason)] += n
    return out


@dataclass(frozen=True)
class Difference:
    key: TallyKey
    tally: int
    counted: int

    @property
    def drift(self) -> int:
        return self.tally - self.counted

    def as_json(self) -> dict[str, Any]:
        k = self.key
        return {
            "kind": k.kind,
            "bucket": None if k.bucket == TOTAL else k.bucket.isoformat(),
            "category": k.category,
            "key": k.key,
            "tally": self.tally,
            "counted": self.counted,
        }

    def line(self) -> str:
        k = self.key
        bucket = "all time" if k.bucket == TOTAL else f"{k.bucket:%Y-%m-%d %H:00} UTC"
        return (
            f"{k.kind:<10} {bucket:<20} {k.category or '-':<20} {k.key:<24} "
            f"tally {self.tally:>10,}  counted {self.counted:>10,}  drift {self.drift:>+8,}"
        )


def differences(kinds: tuple[str, ...] = KINDS) -> list[Difference]:
    """Every key whose tally differs from the full count, sorted."""
    counted = full_counts(kinds)
    tallied: Counter[TallyKey] = Counter()
    for kind, bucket, category, key, n in Tally.objects.filter(kind__in=kinds).values_list(
        "kind", "bucket", "category", "key", "n"
    ):
        tallied[TallyKey(kind, bucket.astimezone(UTC), category, key)] = n
    keys = set(counted) | set(tallied)
    return sorted(
        (Difference(k, tallied[k], counted[k]) for k in keys if tallied[k] != counted[k]),
        key=lambda d: d.key,
    )


class TalliesMoved(Exception):
    """A write changed a tally being repaired; nothing was repaired."""


def reconcile(kinds: tuple[str, ...] = KINDS, *, repair: bool, actor: str) -> list[Difference]:
    """The differences; with repair, each tally set to its count. Either way an audit-log
    entry says what was found (and repaired), in the same transaction.

    The counts and the tallies are read in one snapshot (REPEATABLE READ on PostgreSQL;
    SQLite's transactions are serializable), and a row and its tally commit together, so
    the two agree unless something drifted, with no lock that would stall classification.
    A write that changes a tally being repaired after the snapshot makes PostgreSQL refuse
    the repair whole (TalliesMoved): run it again."""
    # Inside a caller's transaction (a test's) its snapshot rules: the first query is done.
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    try:
        with transaction.atomic():
            if snapshot:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = differences(kinds)
            if repair:
                apply({d.key: -d.drift for d in found})
            AuditLog.record(
                actor=actor,
                action="reconcile_counters",
                target="tallies",
                kinds=list(kinds),
                repaired=repair,
                differences=len(found),
                drift=sum(abs(d.drift) for d in found),
                keys=[d.as_json() for d in found[:200]],
            )
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "40001":  # serialization_failure
            raise
        raise TalliesMoved(
            "a classification or review changed a tally while it was being repaired; "
            "nothing was repaired: run the command again"
        ) from exc
    return found
