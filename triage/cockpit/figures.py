"""The overview's figures, gathered from the services that compute them.

Everything statistical is metrics_snapshot()'s, the same JSON GET /api/metrics
serves: certification (target, threshold, certified bound, automation share on
the evidence, what would make a target certifiable) and, under "live", the
audits' precision with its exact interval, live automation and the drift
watch's state. The cockpit adds only counts: the review queue and the daily
trends.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from triage.actions.models import Delivery
from triage.models import Category, Item, Prediction, ReviewTask
from triage.monitoring.models import AuditSample, Tally
from triage.monitoring.summary import metrics_snapshot
from triage.monitoring.tallies import hourly_rows

TREND_DAYS = 30


@dataclass(frozen=True)
class CategoryRow:
    category: Category
    cert: dict[str, Any]  # this category's entry in metrics_snapshot()["categories"]
    live: dict[str, Any]  # and in metrics_snapshot()["live"]["categories"]
    open_tasks: int
    oldest_task_at: datetime | None
    failed_deliveries: int = 0  # webhook deliveries that gave up, over the trend window

    @property
    def precision(self) -> dict[str, Any]:
        """Live precision since the last model or threshold change."""
        since: dict[str, Any] = self.live.get("since_change") or {}
        return since

    @property
    def automation(self) -> dict[str, Any]:
        return self.precision.get("automation") or {}

    @property
    def drift(self) -> dict[str, Any]:
        drift: dict[str, Any] = self.live.get("drift") or {}
        return drift

    @property
    def suspended(self) -> bool:
        return self.drift.get("state") == "suspended"

    @property
    def alarm(self) -> dict[str, Any]:
        """On when the audited interval lies wholly below target or the drift statistic
        has passed half its threshold (triage.monitoring.live.alarm_state)."""
        alarm: dict[str, Any] = self.live.get("alarm") or {}
        return alarm

    @property
    def before_change(self) -> dict[str, Any] | None:
        """The last segment's live precision, shown beside the current one."""
        before: dict[str, Any] | None = self.live.get("before_change")
        return before


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

    @property
    def live(self) -> dict[str, Any]:
        live: dict[str, Any] = self.snapshot.get("live") or {}
        return live

    @property
    def overall(self) -> dict[str, Any]:
        """Overall live precision and automation since the last change."""
        overall: dict[str, Any] = (self.live.get("overall") or {}).get("since_change") or {}
        return overall

    @property
    def suspended(self) -> list[CategoryRow]:
        return [r for r in self.rows if r.suspended]

    @property
    def alarms(self) -> list[CategoryRow]:
        return [r for r in self.rows if r.alarm.get("on")]

    @property
    def targets(self) -> list[float]:
        """The distinct target precisions of the categories, for the precision chart."""
        return sorted({r.live["target"] for r in self.rows if r.live.get("target") is not None})

    @property
    def open_tasks(self) -> int:
        return sum(r.open_tasks for r in self.rows)

    @property
    def failed_deliveries(self) -> int:
        return sum(r.failed_deliveries for r in self.rows)

    @property
    def oldest_task_at(self) -> datetime | None:
        times = [r.oldest_task_at for r in self.rows if r.oldest_task_at is not None]
        return min(times) if times else None


def _latest_label() -> Subquery:
    """The slug of an item's latest prediction, for querysets with an `item` relation."""
    latest = Prediction.objects.filter(item=OuterRef("item")).order_by("-id")
    return Subquery(latest.values("label__slug")[:1])


def queue_rows() -> QuerySet[Any]:
    """Open review tasks per category (the item's latest prediction) and the oldest.

    One index probe per open task (prediction_item_latest_idx), whatever the size of the
    predictions table or the state of its statistics (benchmarks/cockpit_stale_stats.py).
    """
    return (
        ReviewTask.objects.open()
        .annotate(label=_latest_label())
        .values("label")
        .annotate(n=Count("id"), oldest=Min("created_at"))
    )


def queue_by_category() -> dict[str, dict[str, Any]]:
    rows: Iterable[Any] = queue_rows()
    return {str(r["label"]): r for r in rows}


def failed_deliveries_by_category(*, since: datetime) -> dict[str, int]:
    """Webhook deliveries that failed for good, per category of their item."""
    category = Item.objects.filter(pk=OuterRef("item_id")).values("final_category__slug")[:1]
    rows: Iterable[Any] = (
        Delivery.objects.filter(state=Delivery.State.FAILED, created_at__gte=since)
        .annotate(slug=Subquery(category))
        .values("slug")
        .annotate(n=Count("id"))
    )
    return {str(r["slug"]): int(r["n"]) for r in rows}


def overview(*, now: datetime | None = None, days: int = TREND_DAYS) -> Overview:
    now = now or timezone.now()
    snapshot = metrics_snapshot()
    certs = {c["slug"]: c for c in snapshot["categories"]}
    live = (snapshot.get("live") or {}).get("categories") or {}
    queue = queue_by_category()
    failed = failed_deliveries_by_category(since=now - timedelta(days=days))
    rows = [
        CategoryRow(
            category=category,
            cert=certs[category.slug],
            live=live.get(category.slug) or {},
            open_tasks=int(queue.get(category.slug, {}).get("n", 0)),
            oldest_task_at=queue.get(category.slug, {}).get("oldest"),
            failed_deliveries=failed.get(category.slug, 0),
        )
        for category in Category.objects.filter(is_active=True)
        if category.slug in certs
    ]
    return Overview(snapshot=snapshot, rows=rows, trends=trends(now=now, days=days))


def _daily(queryset: QuerySet[Any], date_field: str, **counts: Any) -> dict[date, dict[str, int]]:
    rows = queryset.annotate(day=TruncDate(date_field)).values("day").annotate(**counts)
    return {r["day"]: r for r in rows}


def _tallied_daily(
    kind: str, since: datetime, counts_in: Callable[[str], set[str]]
) -> dict[date, dict[str, int]]:
    """Per day, the hourly tallies of `kind` summed into the columns `counts_in(key)` names
    (hours fall in the day of the current time zone they start in)."""
    out: dict[date, dict[str, int]] = {}
    for hour, _, key, n in hourly_rows(kind, since):
        row = out.setdefault(timezone.localdate(hour), {"n": 0, "auto": 0})
        for column in counts_in(key):
            row[column] += n
    return out


def trends(*, now: datetime, days: int = TREND_DAYS) -> list[Trend]:
    """Items, automation share, audited precision and reviews per day, zero-filled.

    Items, routes and reviews are read from the hourly tallies (triage.monitoring.tallies),
    not counted: the overview costs the same at any table size. The automation share is
    of the day's predictions (an item re-routed from review counts in both).
    Daily audited precision is the plain share of that day's audits found right: a
    picture of the trend. The weighted estimate with its interval is the table's.
    """
    today = now.date()
    span = [today - timedelta(days=d) for d in range(days - 1, -1, -1)]
    since = timezone.make_aware(datetime.combine(span[0], datetime.min.time()))
    # Imported history is labelled past data, not traffic.
    items = _tallied_daily(
        Tally.Kind.RECEIVED, since, lambda key: {"n"} if key != Item.Source.IMPORT else set()
    )
    routes = _tallied_daily(
        Tally.Kind.PREDICTION,
        since,
        lambda route: {"n", "auto"} if route == Prediction.Route.AUTO else {"n"},
    )
    audits = _daily(
        AuditSample.objects.filter(audited_at__gte=since),
        "audited_at",
        n=Count("id"),
        correct=Count("id", filter=Q(correct=True)),
    )
    reviews = _tallied_daily(Tally.Kind.REVIEW, since, lambda _: {"n"})

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
        Trend(
            "Audited precision (share of audits right)",
            "share",
            span,
            share(audits, "correct", "n"),
        ),
        Trend("Reviews per day", "count", span, count(reviews)),
    ]
