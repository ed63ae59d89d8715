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
    """An id of the batch was stored by a concurrent batch while this one ran: neither
    inserted here nor visible yet. The caller's retry reads it as stored."""


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
        stored = ", ".join(f'i."{f.column}"' for f in fields)
        # Inserted in external id order: two batches sharing new ids then wait on each
        # other's first shared id instead of each holding one the other needs. The outer
        # SELECT reads the table as it was before this statement: an id is either inserted
        # (n.id) or was stored before (i.*), with whether its stored text differs.
        # Column names come from the model; every value is a parameter.
        statement = (
            "WITH inserted AS ("  # noqa: S608
            f"INSERT INTO triage_item ({names}) "
            f"SELECT s.external_id, s.text, s.metadata, {placeholders} "
            "FROM triage_ingest_stage s ORDER BY s.external_id "
            "ON CONFLICT (external_id) DO NOTHING RETURNING id, external_id) "
            f"SELECT s.external_id, n.id, "
            "(i.forgotten_at IS NULL AND i.pruned_at IS NULL AND i.text <> s.text), "
            f"{stored} FROM triage_ingest_stage s "
            "LEFT JOIN inserted n ON n.external_id = s.external_id "
            "LEFT JOIN triage_item i ON i.external_id = s.external_id"
        )
        cursor.execute(statement, [source, *defaults])
        rows = cursor.fetchall()
    created_ids: dict[str, int] = {}
    existing: dict[str, Item] = {}
    differs: set[str] = set()
    convert = [getattr(f, "from_db_value", None) for f in fields]
    attnames = [f.attname for f in fields]
    for external_id, created_id, different, *values in rows:
        if created_id is not None:
            created_ids[external_id] = created_id
        elif values[0] is None:
            raise ConcurrentInsert(f"external_id {external_id!r} was stored meanwhile")
        else:
            values = [
                c(v, None, connection) if c else v for c, v in zip(convert, values, strict=True)
            ]
            existing[external_id] = Item.from_db(connection.alias, attnames, values)
            if different:
                differs.add(external_id)
    created = {eid: created_ids[eid] for eid in sorted(created_ids)}
    return created, existing, differs, now
