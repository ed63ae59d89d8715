"""Ingest by COPY, for big batches on PostgreSQL: one `COPY … FROM STDIN` into a staging
table of the session, then one `INSERT … SELECT … ON CONFLICT (external_id) DO NOTHING`.

The ORM's bulk_create builds a model object and a dozen adapted parameters per row, which
cost more than the database's work. Here the rows go to the server as COPY's text stream.
The answers are the ORM path's (triage.api.ingest): the same external id with the same
text is the stored item, with other text the whole batch is refused and nothing stays
written (the conflict is found after the insert, which the transaction then rolls back, so
that an id a concurrent batch stored in between is compared too).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection
from django.utils import timezone

from triage.api.intake import ItemIn
from triage.models import Item

# The columns the batch gives; every other column of triage_item gets its model default.
GIVEN = ("external_id", "text", "metadata", "source")


def _defaults(now: Any) -> tuple[list[str], list[Any]]:
    """The other columns and their defaults, adapted as the ORM would write them (fields
    added later are covered without a change here)."""
    columns, values = [], []
    for field in Item._meta.concrete_fields:
        if field.primary_key or field.column in GIVEN:
            continue
        auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        value = now if auto or field.name == "received_at" else field.get_default()
        columns.append(str(field.column))
        values.append(field.get_db_prep_save(value, connection))
    return columns, values


class ConcurrentInsert(IntegrityError):
    """An id of the batch neither inserted here nor found stored: the caller's retry (as
    for the ORM path's IntegrityError) reads it again."""


def store_by_copy(
    items: Sequence[ItemIn], *, source: str
) -> tuple[dict[str, int], dict[str, Item], set[str], datetime]:
    """Insert the batch's new items. Returns their ids by external id (in its order), the
    stored ones by external id, and the external ids stored with different text (the
    caller refuses the batch, rolling this back, when there are any), and the moment the
    new items were received.

    Must run inside a transaction: the staging rows live until its end.
    """
    now = timezone.now()
    # One row per id, the last occurrence's (as the ORM path stores it; the texts are equal).
    first = {i.external_id: i for i in items}
    columns, defaults = _defaults(now)
    fields = Item._meta.concrete_fields
    with connection.cursor() as cursor:
        # Emptied at commit; a second batch inside one outer transaction starts clean too.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS triage_ingest_stage "
            "(external_id text, text text, metadata jsonb) ON COMMIT DELETE ROWS; "
            "DELETE FROM triage_ingest_stage"
        )
        with cursor.cursor.copy(
            "COPY triage_ingest_stage (external_id, text, metadata) FROM STDIN"
        ) as copy:
            for item in first.values():
                metadata = json.dumps(item.metadata, ensure_ascii=False, separators=(",", ":"))
                copy.write_row((item.external_id, item.text, metadata))
        names = ", ".join(f'"{c}"' for c in (*GIVEN, *columns))
        placeholders = ", ".join(["%s"] * (1 + len(defaults)))
        # Inserted in external id order: two batches sharing new ids then wait on each
        # other's first shared id instead of each holding one the other needs.
        # Column names come from the model; every value is a parameter.
        insert = (
            f"INSERT INTO triage_item ({names}) "  # noqa: S608
            f"SELECT s.external_id, s.text, s.metadata, {placeholders} "
            "FROM triage_ingest_stage s ORDER BY s.external_id "
            "ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id"
        )
        cursor.execute(insert, [source, *defaults])
        created_ids: dict[str, int] = dict(cursor.fetchall())
        rows = []
        if len(created_ids) < len(first):
            # The ids stored before, read by a new statement: one that a concurrent batch
            # committed while this one waited on it in ON CONFLICT is seen too. LATERAL with
            # LIMIT (not flattened into a join): one unique-index lookup per staged row,
            # where a join let the planner, with no statistics on the staging table, hash
            # the whole item table.
            stored = ", ".join(f'i."{f.column}"' for f in fields)
            cursor.execute(
                "SELECT s.external_id, "  # noqa: S608
                "(i.forgotten_at IS NULL AND i.pruned_at IS NULL AND i.text <> s.text), "
                f"{stored} FROM triage_ingest_stage s "
                "LEFT JOIN LATERAL (SELECT * FROM triage_item "
                "WHERE external_id = s.external_id LIMIT 1) i ON true"
            )
            rows = [row for row in cursor.fetchall() if row[0] not in created_ids]
    existing: dict[str, Item] = {}
    differs: set[str] = set()
    convert = [getattr(f, "from_db_value", None) for f in fields]
    attnames = [f.attname for f in fields]
    for external_id, different, *values in rows:
        if values[0] is None:  # cannot happen (see above); retried if it ever does
            raise ConcurrentInsert(f"external_id {external_id!r} was stored meanwhile")
        values = [c(v, None, connection) if c else v for c, v in zip(convert, values, strict=True)]
        existing[external_id] = Item.from_db(connection.alias, attnames, values)
        if different:
            differs.add(external_id)
    created = {eid: created_ids[eid] for eid in sorted(created_ids)}
    return created, existing, differs, now
