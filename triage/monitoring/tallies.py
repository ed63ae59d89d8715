"""Counters instead of counts: the tallies written beside the rows they count.

Every write path that makes, deletes or changes a counted row adds its deltas here, in
its own transaction (triage.monitoring.models.Tally says what is counted). Readers then
sum a few rows per category instead of counting a table: the audit rates' weekly
volumes, the Prometheus collector, live automation and the cockpit's trends.

Why in the transaction rather than rolled up by a beat task: the audit rate of the next
item must see the items just routed (a rollup a minute behind would audit a quiet
category's burst at the base rate), and a count written with the rows can be neither
ahead of them nor lost. The price is a row lock per key until commit; writes take
their keys in one sorted statement, so two transactions never deadlock on them, and
they come last in their transaction, so the lock is held only until the commit.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Sum

from triage.models import Item, Prediction
from triage.monitoring.models import Tally

# The bucket of the all-time rows.
TOTAL = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class TallyKey(NamedTuple):
    kind: str
    bucket: datetime
    category: str
    key: str


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def decider_of(decided_by: str) -> str:
    """Who decided an item, as Prometheus labels it: model, rule, user, other, or none."""
    if not decided_by:
        return "none"
    for prefix, who in (("model", "model"), ("rule:", "rule"), ("user:", "user")):
        if decided_by.startswith(prefix):
            return who
    return "other"


def agreed_label(agreed: bool | None) -> str:
    return {True: "yes", False: "no", None: "no_suggestion"}[agreed]


class ItemState(NamedTuple):
    """What the item tally keys an item by."""

    status: str
    category: str  # the final category's slug, or ""
    decider: str

    @property
    def key(self) -> str:
        return f"{self.status}:{self.decider}"

    @classmethod
    def of_key(cls, category: str, key: str) -> "ItemState":
        """The state an item tally's (category, key) stands for (the inverse of key)."""
        status, decider = key.split(":", 1)
        return cls(status, category, decider)


def item_state(*, status: str, category: str | None, decided_by: str) -> ItemState:
    return ItemState(status, category or "", decider_of(decided_by))


def hourly(kind: str, at: datetime, category: str, key: str) -> list[TallyKey]:
    """The hour's row and the all-time row of one counted row."""
    return [TallyKey(kind, hour_of(at), category, key), TallyKey(kind, TOTAL, category, key)]


def item_key(state: ItemState) -> TallyKey:
    return TallyKey(Tally.Kind.ITEM, TOTAL, state.category, state.key)


class Deltas:
    """Changes to tallies, gathered over a write and applied once (apply)."""

    def __init__(self) -> None:
        self.changes: Counter[TallyKey] = Counter()

    def made(self, kind: str, at: datetime, category: str, key: str, n: int = 1) -> None:
        for k in hourly(kind, at, category, key):
            self.changes[k] += n

    def removed(self, kind: str, at: datetime, category: str, key: str, n: int = 1) -> None:
        for k in hourly(kind, at, category, key):
            self.changes[k] -= n

    def moved(
        self, kind: str, at: datetime, before: tuple[str, str], after: tuple[str, str]
    ) -> None:
        """A row changed its (category, key): it leaves one and joins the other."""
        if before != after:
            self.removed(kind, at, *before)
            self.made(kind, at, *after)

    def item(self, before: ItemState | None, after: ItemState | None, n: int = 1) -> None:
        """Items came in (before None) or changed state."""
        if before == after:
            return
        if before is not None:
            self.changes[item_key(before)] -= n
        if after is not None:
            self.changes[item_key(after)] += n

    def task(self, before: str | None, after: str | None, n: int = 1) -> None:
        """Open review tasks: one opened (before None), closed (after None) or given
        another reason."""
        if before == after:
            return
        if before is not None:
            self.changes[TallyKey(Tally.Kind.TASK, TOTAL, "", before)] -= n
        if after is not None:
            self.changes[TallyKey(Tally.Kind.TASK, TOTAL, "", after)] += n

    def apply(self) -> None:
        apply(self.changes)


def apply(changes: Mapping[TallyKey, int]) -> None:
    """Add the deltas in one statement: n by the delta, and what left a key to its gone.

    Keys are taken in sorted order, so concurrent writers lock them in the same order."""
    rows = sorted((k, d) for k, d in changes.items() if d)
    if not rows:
        return
    table = Tally._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    values, params = [], []
    for (kind, bucket, category, key), delta in rows:
        values.append("(%s, %s, %s, %s, %s, %s)")
        params += [kind, adapt(bucket), category, key, delta, max(0, -delta)]
    # Only the table's own name and placeholders are formatted in; the values are params.
    upsert = (
        "ON CONFLICT (kind, bucket, category, key) DO UPDATE SET "
        f"n = {table}.n + excluded.n, gone = {table}.gone + excluded.gone"
    )
    columns = f"INSERT INTO {table} (kind, bucket, category, key, n, gone) VALUES "  # noqa: S608
    sql = columns + ", ".join(values) + " " + upsert
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- Reading -------------------------------------------------------------------------------


def totals(kind: str) -> dict[tuple[str, str], tuple[int, int]]:
    """All-time (n, gone) per (category, key): one row per key."""
    return {
        (category, key): (n, gone)
        for category, key, n, gone in Tally.objects.filter(kind=kind, bucket=TOTAL).values_list(
            "category", "key", "n", "gone"
        )
    }


def item_states() -> list[tuple[ItemState, int]]:
    """Items now in each state (the item tallies, one row per state)."""
    return [
        (ItemState.of_key(category, key), n)
        for (category, key), (n, _gone) in totals(Tally.Kind.ITEM).items()
    ]


def first_whole_hour(since: datetime) -> datetime:
    first = hour_of(since)
    return first if first == since else first + HOUR


def counts_since(
    kind: str, since: datetime | None, *, edge: Mapping[tuple[str, str], int] | None = None
) -> Counter[tuple[str, str]]:
    """Rows of `kind` now counted per (category, key), made at or after `since`.

    Whole hours come from the hourly rows; the part of the first hour from `since` on is
    `edge`, which the caller counts in its own table (at most an hour of rows, whatever
    the table's size). `since` None: all of them, from the all-time rows.
    """
    out: Counter[tuple[str, str]] = Counter()
    if since is None:
        out.update({k: n for k, (n, _) in totals(kind).items()})
        return out
    rows = (
        Tally.objects.filter(kind=kind, bucket__gte=first_whole_hour(since))
        .values_list("category", "key")
        .annotate(total=Sum("n"))
        .values_list("category", "key", "total")
    )
    out.update({(category, key): int(total) for category, key, total in rows})
    out.update(edge or {})
    return out


def prediction_counts(since: datetime | None) -> Counter[tuple[str, str]]:
    """Predictions per (category, route) made at or after `since` (all of them: None)."""
    edge: dict[tuple[str, str], int] = {}
    if since is not None and first_whole_hour(since) != since:
        rows = (
            Prediction.objects.filter(created_at__gte=since, created_at__lt=first_whole_hour(since))
            .order_by()
            .values_list("label__slug", "route")
            .annotate(n=Count("id"))
            .values_list("label__slug", "route", "n")
        )
        edge = {(slug, route): n for slug, route, n in rows}
    return counts_since(Tally.Kind.PREDICTION, since, edge=edge)


def hourly_rows(kind: str, since: datetime) -> list[tuple[datetime, str, str, int]]:
    """The hourly rows from `since`'s hour on: (hour, category, key, n)."""
    return list(
        Tally.objects.filter(kind=kind, bucket__gte=hour_of(since)).values_list(
            "bucket", "category", "key", "n"
        )
    )


# --- Writing, for the services that make or change counted rows ---------------------------


def tally_new_items(items: Iterable[Item]) -> None:
    """Items stored (ingest and history import): received per hour and source, and their
    state. Their final category, if any, must be loaded or cached (import_history sets it)."""
    deltas = Deltas()
    for item in items:
        deltas.made(Tally.Kind.RECEIVED, item.received_at, "", item.source)
        deltas.item(None, state_of(item))
    deltas.apply()


def tally_received(count: int, *, received_at: datetime | None, source: str) -> None:
    """New items stored without their objects in hand (ingest by COPY): all received at
    one moment, from one source, in a new item's state."""
    if not count:
        return
    if received_at is None:
        raise ValueError("items stored without their objects need the moment they came in")
    deltas = Deltas()
    deltas.made(Tally.Kind.RECEIVED, received_at, "", source, n=count)
    deltas.item(None, state_of(Item(source=source)), n=count)
    deltas.apply()


def tally_opened_tasks(reasons: Iterable[str]) -> None:
    """Review tasks opened outside persisting (second reviews, quarantine's re-reviews)."""
    deltas = Deltas()
    for reason in reasons:
        deltas.task(None, reason)
    deltas.apply()


def state_of(item: Item) -> ItemState:
    """The item's state as its fields stand (its final category is read if not cached)."""
    category = item.final_category.slug if item.final_category is not None else None
    return item_state(status=item.status, category=category, decided_by=item.decided_by)
