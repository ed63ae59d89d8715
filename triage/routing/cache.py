"""A small process-local cache for what is derived from the routing inputs.

Deriving a policy certifies every category on the model's evidence: too slow to
redo for every classify batch, audit decision or admin row. The inputs are the
model version (its evidence is fixed once recorded: a new artifact gets a new
sha256), the routing policy row and the category rows. Policy and categories
carry revision counters bumped by every write (triage.models.revisions), so one
cheap query says whether anything changed:

    (policy revision, number of categories, sum of their revisions, highest category id)

Why this detects every committed change: an update raises the sum (revisions only
go up); a deletion alone lowers the count; a creation that survives raises the
highest id (PostgreSQL never reuses ids), and a deletion balanced by a creation
keeps the count but raises the highest id. Each part is needed: rows that were
never saved through the ORM (bulk_create, or from before revisions) have
revision 0 (tests/test_routing_cache.py changes each part alone).

Drift-watch suspensions and today's audit rates are not derived here: callers
apply them fresh on every use (triage.monitoring.audits.live_routing_policy).
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.db import connection

from triage.models import Category, ModelVersion, RoutingPolicy

T = TypeVar("T")

# Entries: the champion, plus the odd candidate or version page; a handful is plenty.
MAX_ENTRIES = 8

_entries: "OrderedDict[Hashable, object]" = OrderedDict()
_lock = threading.Lock()


def inputs_key() -> tuple[object, ...]:
    """The policy's and the categories' revisions, in one query."""
    quote = connection.ops.quote_name
    policy, categories = quote(RoutingPolicy._meta.db_table), quote(Category._meta.db_table)
    # Table names come from the models, not from input; the LEFT JOIN keeps the row when
    # the policy does not exist yet (RoutingPolicy.current() creates it).
    sql = (
        "SELECT p.revision, c.n, c.revisions, c.newest FROM "  # noqa: S608
        f"(SELECT COUNT(*) AS n, SUM(revision) AS revisions, MAX(id) AS newest FROM {categories})"
        f" c LEFT JOIN {policy} p ON p.id = 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return tuple(int(value) if value is not None else None for value in row)


def version_key(version: ModelVersion | None) -> tuple[object, ...]:
    if version is None:
        return (None, "")
    # JSON evidence (versions from before artifacts) has no sha256; it is never rewritten.
    return (version.pk, version.evidence_sha256)


def cached(key: Hashable, compute: Callable[[], T]) -> T:
    """The value stored under key, else compute() stored (the oldest entry makes room)."""
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]  # type: ignore[return-value]
    # Computed outside the lock: two threads may both compute on a miss, never block.
    value = compute()
    with _lock:
        _entries[key] = value
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def clear() -> None:
    with _lock:
        _entries.clear()
