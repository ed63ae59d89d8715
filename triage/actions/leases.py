"""Leasing a batch of one endpoint's due deliveries in one statement.

A lease is `leased_until` on the row: until then nobody else sends it. It is taken by
one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id` on
PostgreSQL, so workers leasing at the same time split the due rows between them
instead of queueing on each other's locks; the taking counts the attempt. A worker that
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

from django.db import connection

from triage.actions.models import Delivery, Endpoint

_LEASE_SQL = """
UPDATE {delivery}
SET attempts = attempts + 1, last_attempt_at = %(now)s, leased_until = %(lease)s
WHERE id IN (
    SELECT d.id FROM {delivery} d
    WHERE d.endpoint_id = %(endpoint)s
      AND d.state = 'pending'
      AND d.next_attempt_at <= %(now)s
      AND (d.leased_until IS NULL OR d.leased_until <= %(now)s)
      {only}
      AND EXISTS (SELECT 1 FROM {endpoint} e WHERE e.id = d.endpoint_id AND e.is_active)
      AND NOT EXISTS (
          SELECT 1 FROM {delivery} earlier
          WHERE earlier.endpoint_id = d.endpoint_id
            AND earlier.item_id = d.item_id
            AND earlier.state = 'pending'
            AND earlier.event_id < d.event_id
      )
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    {lock}
)
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
    params: dict[str, object] = {
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
