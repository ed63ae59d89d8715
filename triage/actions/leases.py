"""Leasing a batch of one endpoint's due deliveries in one statement.

A lease is `leased_until` on the row: until then nobody else sends it. It is taken by
one `WITH leased AS MATERIALIZED (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … RETURNING
id` on PostgreSQL, so workers leasing at the same time split the due rows between them
instead of queueing on each other's locks; the taking counts the attempt. MATERIALIZED
because, as a plain `IN (subquery)`, the planner may rescan the locking subquery once
per row (stale statistics after a burst), each rescan skipping the rows just updated
and returning the next ones: the LIMIT was then not honoured and a batch took minutes. A worker that
dies mid-batch leaves rows whose lease runs out, and the next lease takes them again
(same event id: at least once).

Per item and endpoint, events go in order: a delivery is leased only when no earlier
event of its item is still pending for that endpoint (leased or not), so a later event
is never sent before an earlier one is delivered or given up on.

SQLite (the in-process demo) runs the same statement without the locking clause: it has
one writer at a time, and the statement is atomic.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from triage.actions.models import Delivery, Endpoint

_LEASE_SQL = """
WITH leased AS MATERIALIZED (
    SELECT d.id FROM {delivery} d
    WHERE d.endpoint_id = %(endpoint)s
      AND d.state = 'pending'
      AND d.next_attempt_at <= %(now)s
      AND (d.leased_until IS NULL OR d.leased_until <= %(now)s)
      {only}
      AND EXISTS (SELECT 1 FROM {endpoint} e WHERE e.id = d.endpoint_id AND e.is_active)
      -- The first pending event of its item for this endpoint. A scalar subquery, one
      -- index probe per candidate: as an anti-join, the planner may scan every pending
      -- row of the endpoint per candidate when its statistics are stale.
      AND (
          d.item_id IS NULL
          OR d.event_id = (
              SELECT min(first.event_id) FROM {delivery} first
              WHERE first.endpoint_id = d.endpoint_id
                AND first.item_id = d.item_id
                AND first.state = 'pending'
          )
      )
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    {lock}
)
UPDATE {delivery}
SET attempts = attempts + 1, last_attempt_at = %(now)s, leased_until = %(lease)s
WHERE id IN (SELECT id FROM leased)
  -- Checked again on the row as it is when updated, whatever the subquery saw.
  AND state = 'pending'
  AND (leased_until IS NULL OR leased_until <= %(now)s)
RETURNING id
"""


def lease_due(
    *,
    endpoint_id: int,
    now: datetime,
    lease: datetime,
    limit: int,
    only: Sequence[int] | None = None,
) -> list[int]:
    """Lease up to `limit` of the endpoint's due deliveries until `lease`; their ids.

    `only` narrows it to those deliveries (one chosen delivery, by an admin or a test).
    """
    postgres = connection.vendor == "postgresql"
    params: dict[str, Any] = {
        "now": connection.ops.adapt_datetimefield_value(now),
        "lease": connection.ops.adapt_datetimefield_value(lease),
        "endpoint": endpoint_id,
        "limit": limit,
    }
    only_sql = ""
    if only is not None:
        if not only:
            return []
        names = [f"%(only{i})s" for i in range(len(only))]
        only_sql = f"AND d.id IN ({', '.join(names)})"
        params |= {f"only{i}": pk for i, pk in enumerate(only)}
    sql = _LEASE_SQL.format(
        delivery=connection.ops.quote_name(Delivery._meta.db_table),
        endpoint=connection.ops.quote_name(Endpoint._meta.db_table),
        only=only_sql,
        lock="FOR UPDATE SKIP LOCKED" if postgres else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


_OUTCOME_COLUMNS = [
    # (column, PostgreSQL type: VALUES needs it where a column holds only NULLs)
    ("id", "bigint"),
    ("state", "varchar"),
    ("attempts", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("delivered_at", "timestamptz"),
    ("last_status_code", "integer"),
    ("last_response", "varchar"),
    ("last_error", "varchar"),
]

_WRITE_SQL = """
WITH outcome({columns}) AS (VALUES {rows})
UPDATE {delivery}
SET {assignments}, leased_until = NULL
FROM outcome
WHERE {delivery}.id = outcome.id
  AND {delivery}.state = 'pending'
  AND {delivery}.leased_until = %s
"""


def write_outcomes(deliveries: Sequence[Delivery], *, lease: datetime) -> int:
    """Write the deliveries' outcome fields and end their lease, in one statement.

    Only rows still under this lease are written: if it ran out and another worker took
    them, their outcome is that worker's to write. Returns the number written.
    """
    if not deliveries:
        return 0
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    width = len(_OUTCOME_COLUMNS)
    cell = [f"%s::{kind}" if postgres else "%s" for _, kind in _OUTCOME_COLUMNS]
    row = "(" + ", ".join(cell) + ")"
    params: list[Any] = []
    for d in deliveries:
        params += [
            d.pk,
            d.state,
            d.attempts,
            adapt(d.next_attempt_at),
            adapt(d.delivered_at),
            d.last_status_code,
            d.last_response,
            d.last_error,
        ]
    assert len(params) == width * len(deliveries)
    names = [name for name, _ in _OUTCOME_COLUMNS]
    sql = _WRITE_SQL.format(
        columns=", ".join(names),
        rows=", ".join([row] * len(deliveries)),
        delivery=connection.ops.quote_name(Delivery._meta.db_table),
        assignments=", ".join(f"{name} = outcome.{name}" for name in names[1:]),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, adapt(lease)])
        written: int = cursor.rowcount
    return written
