"""The events feed: every committed event, in a stable order, for integrations that poll.

Ordering by id alone would skip events: ids are handed out at insert, but a
transaction holding a smaller id can commit after a poller has already read past
it. So each event records its writer's transaction id (see Event), the feed orders
by (txid, id), and a read returns only events whose transaction is older than the
oldest one still running (PostgreSQL's snapshot xmin). Nothing below that horizon
can still appear, so a cursor never moves past an event that has yet to commit.
SQLite lets one writer commit at a time, in id order, so (0, id) is enough there.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from .models import Event

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


def read_events(*, after: str | None, limit: int, types: Sequence[str] = ()) -> FeedPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise FeedError("limit", f"must be between 1 and {MAX_LIMIT}, not {limit}")
    txid, event_id = parse_cursor(after)
    events = Event.objects.filter(Q(txid__gt=txid) | Q(txid=txid, pk__gt=event_id))
    if types:
        events = events.filter(type__in=list(types))
    if connection.vendor == "postgresql":
        events = events.extra(  # noqa: S610 - constant SQL, no user input
            where=["txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"]
        )
    page = list(events.order_by("txid", "pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    next_cursor = cursor_of(page[-1]) if page else (after or "0.0")
    return FeedPage(page, next_cursor, has_more)
