"""The events feed: every committed event, in a stable order, for integrations that poll.

Ordering by id alone would skip events: ids are handed out at insert, but a
transaction holding a smaller id can commit after a poller has already read past
it. So each event records its writer's transaction id (see Event), the feed orders
by (txid, id), and a read returns only events below a horizon no open transaction of
this database lies under. Nothing below it can still appear, so a cursor never moves
past an event that has yet to commit. SQLite lets one writer commit at a time, in id
order, so (0, id) is enough there.

The horizon on PostgreSQL, in two statements:
1. X = the next transaction id to be assigned (the snapshot's xmax), and A = the ids
   of the transactions this database's sessions hold (pg_stat_activity, read after
   that snapshot was taken, so it lists every one assigned before X that is open);
2. the feed query itself: horizon = the smallest id in its own snapshot's in-progress
   list whose low 32 bits are in A, or X if none is.
A transaction below the horizon has an id < X, so if it were still open it would be in
A and in the in-progress list, and the horizon would be at or below it. Transactions of
other databases on the same server are not in A, so they do not hold the feed back.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from triage.actions.models import Event

MAX_LIMIT = 1000


class FeedError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class FeedPage:
    events: list[Event]
    next_cursor: str
    has_more: bool


def cursor_of(event: Event) -> str:
    return f"{event.txid}.{event.pk}"


def parse_cursor(after: str | None) -> tuple[int, int]:
    if not after:
        return (-1, 0)
    txid, dot, event_id = after.partition(".")
    if not dot or not txid.isdigit() or not event_id.isdigit():
        raise FeedError("after", f"{after!r} is not a cursor; pass the `next` of a previous page")
    return int(txid), int(event_id)


# Low 32 bits: pg_stat_activity shows 32-bit xids, snapshots 64-bit ones.
HORIZON_SQL = """
    txid < (
        SELECT coalesce(min(x::text::bigint), %s)
        FROM pg_snapshot_xip(pg_current_snapshot()) AS x
        WHERE mod(x::text::bigint, 4294967296) = ANY(%s)
    )
"""


def _open_transactions() -> tuple[int, list[int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                   array_remove(array_agg(backend_xid::text::bigint), NULL)
            FROM pg_stat_activity
            WHERE datname = current_database()
            """
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0]), list(row[1] or [])


def read_events(*, after: str | None, limit: int, types: Sequence[str] = ()) -> FeedPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise FeedError("limit", f"must be between 1 and {MAX_LIMIT}, not {limit}")
    txid, event_id = parse_cursor(after)
    events = Event.objects.filter(Q(txid__gt=txid) | Q(txid=txid, pk__gt=event_id))
    if types:
        events = events.filter(type__in=list(types))
    if connection.vendor == "postgresql":
        next_xid, open_xids = _open_transactions()
        events = events.extra(  # noqa: S610 - constant SQL; the values are parameters
            where=[HORIZON_SQL], params=[next_xid, open_xids]
        )
    page = list(events.order_by("txid", "pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    next_cursor = cursor_of(page[-1]) if page else (after or "0.0")
    return FeedPage(page, next_cursor, has_more)
