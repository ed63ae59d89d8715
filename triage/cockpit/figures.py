"""The overview's figures, gathered from the services that compute them.

Certification figures (target, threshold, certified bound, automation share on
the evidence, what would make a target certifiable) are metrics_snapshot()'s,
the same JSON GET /api/metrics serves. Live figures are counts over the last
days of traffic; nothing here estimates anything.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from reviews.models import Review, ReviewTask

from ..models import Category, Item, Prediction
from ..monitoring.metrics import metrics_snapshot

TREND_DAYS = 30


@dataclass(frozen=True)
class CategoryRow:
    category: Category
    cert: dict[str, Any]  # this category's entry in metrics_snapshot()
    # Live traffic over the trend window, counted per item (an item re-routed later
    # has two predictions and must count once).
    predicted: int
    automated: int
    audited: int
    audit_agreed: int
    open_tasks: int
    oldest_task_at: datetime | None

    @property
    def live_automation(self) -> float | None:
        return self.automated / self.predicted if self.predicted else None


@dataclass(frozen=True)
class Trend:
    """One value per day, oldest first; None where a share has no denominator."""

    name: str
    unit: str  # "count" or "share"
    days: list[date]
    values: list[float | None]


@dataclass(frozen=True)
class Overview:
    snapshot: dict[str, Any]
    rows: list[CategoryRow]
    trends: list[Trend] = field(default_factory=list)
    since: datetime | None = None

    @property
    def predicted(self) -> int:
        return sum(r.predicted for r in self.rows)

    @property
    def automated(self) -> int:
        return sum(r.automated for r in self.rows)

    @property
    def live_automation(self) -> float | None:
        return self.automated / self.predicted if self.predicted else None

    @property
    def open_tasks(self) -> int:
        return sum(r.open_tasks for r in self.rows)

    @property
    def oldest_task_at(self) -> datetime | None:
        times = [r.oldest_task_at for r in self.rows if r.oldest_task_at is not None]
        return min(times) if times else None


def _latest_label() -> Subquery:
    """The slug of an item's latest prediction, for querysets with an `item` relation."""
    latest = Prediction.objects.filter(item=OuterRef("item")).order_by("-id")
    return Subquery(latest.values("label__slug")[:1])


def _by_label(rows: Iterable[Any], key: str) -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in rows}


def overview(*, now: datetime | None = None, days: int = TREND_DAYS) -> Overview:
    now = now or timezone.now()
    since = now - timedelta(days=days)
    snapshot = metrics_snapshot()
    certs = {c["slug"]: c for c in snapshot["categories"]}
    categories = [c for c in Category.objects.filter(is_active=True) if c.slug in certs]

    live = _by_label(
        (
            Prediction.objects.filter(created_at__gte=since)
            .values("label__slug")
            .annotate(
                predicted=Count("item", distinct=True),
                automated=Count("item", distinct=True, filter=Q(route=Prediction.Route.AUTO)),
            )
        ),
        "label__slug",
    )
    audits = _by_label(
        (
            Review.objects.filter(
                created_at__gte=since, task__reason=ReviewTask.Reason.AUDIT_SAMPLE
            )
            .annotate(label=_latest_label())
            .values("label")
            .annotate(n=Count("id"), agreed=Count("id", filter=Q(agreed_with_model=True)))
        ),
        "label",
    )
    queue = _by_label(
        (
            ReviewTask.objects.open()
            .annotate(label=_latest_label())
            .values("label")
            .annotate(n=Count("id"), oldest=Min("created_at"))
        ),
        "label",
    )
    rows = []
    for category in categories:
        lv, au, q = (
            live.get(category.slug, {}),
            audits.get(category.slug, {}),
            queue.get(category.slug, {}),
        )
        rows.append(
            CategoryRow(
                category=category,
                cert=certs[category.slug],
                predicted=int(lv.get("predicted", 0)),
                automated=int(lv.get("automated", 0)),
                audited=int(au.get("n", 0)),
                audit_agreed=int(au.get("agreed", 0)),
                open_tasks=int(q.get("n", 0)),
                oldest_task_at=q.get("oldest"),
            )
        )
    return Overview(
        snapshot=snapshot,
        rows=rows,
        trends=trends(now=now, days=days),
        since=since,
    )


def _daily(
    queryset: QuerySet[Any], date_field: str, **counts: object
) -> dict[date, dict[str, int]]:
    rows = queryset.annotate(day=TruncDate(date_field)).values("day").annotate(**counts)
    return {r["day"]: r for r in rows}


def trends(*, now: datetime, days: int = TREND_DAYS) -> list[Trend]:
    """Items, automation share, audit agreement and reviews per day, zero-filled."""
    today = now.date()
    span = [today - timedelta(days=d) for d in range(days - 1, -1, -1)]
    since = timezone.make_aware(datetime.combine(span[0], datetime.min.time()))
    # Imported history is labelled past data, not traffic.
    items = _daily(
        Item.objects.filter(received_at__gte=since).exclude(source=Item.Source.IMPORT),
        "received_at",
        n=Count("id"),
    )
    routes = _daily(
        Prediction.objects.filter(created_at__gte=since),
        "created_at",
        n=Count("item", distinct=True),
        auto=Count("item", distinct=True, filter=Q(route=Prediction.Route.AUTO)),
    )
    reviews = _daily(
        Review.objects.filter(created_at__gte=since),
        "created_at",
        n=Count("id"),
        audits=Count("id", filter=Q(task__reason=ReviewTask.Reason.AUDIT_SAMPLE)),
        agreed=Count(
            "id",
            filter=Q(task__reason=ReviewTask.Reason.AUDIT_SAMPLE, agreed_with_model=True),
        ),
    )

    def share(table: dict[date, dict[str, int]], part: str, whole: str) -> list[float | None]:
        out: list[float | None] = []
        for day in span:
            row = table.get(day)
            out.append(row[part] / row[whole] if row and row[whole] else None)
        return out

    def count(table: dict[date, dict[str, int]]) -> list[float | None]:
        return [float(table[day]["n"]) if day in table else 0.0 for day in span]

    return [
        Trend("Items received per day", "count", span, count(items)),
        Trend("Share automated", "share", span, share(routes, "auto", "n")),
        Trend("Audits agreeing with the model", "share", span, share(reviews, "agreed", "audits")),
        Trend("Reviews per day", "count", span, count(reviews)),
    ]
