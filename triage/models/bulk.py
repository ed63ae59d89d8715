"""Many new rows in one `COPY … FROM STDIN` on PostgreSQL, for the write paths whose
inserts cost more in the client than in the server (the classify path's predictions, its
embedding cache, its review tasks and events).

Django's bulk_create on PostgreSQL sends one `INSERT … SELECT * FROM UNNEST(%s::…[], …)`
whose arrays psycopg adapts element by element: for the JSON scores, event payloads and
vector bytes of a classify batch that was about half the path's time outside the encoder.
COPY streams the same rows in its text format, adapted by psycopg's C dumpers.

The objects come back as bulk_create returns them: each with its primary key, taken from
the table's own sequence in one statement beforehand (so ids grow in the objects' order,
as the ORM's insert gives them), and marked as saved. On other databases, or for a
handful of rows, it is bulk_create itself.
"""

import functools
import operator
from collections.abc import Sequence
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.models import Field

M = TypeVar("M", bound=models.Model)

# Below this many rows the two statements (ids, then COPY) cost more than one INSERT.
COPY_MIN = 20


def insert_rows(objs: Sequence[M], *, ignore_conflicts: bool = False) -> Sequence[M]:
    """Insert new model objects of one model; they get their primary keys.

    With `ignore_conflicts`, rows that break a unique constraint are skipped, as with
    bulk_create's: the COPY runs in a savepoint, and if it meets a conflict (another
    process inserted one of the rows meanwhile) the batch is written by bulk_create
    instead. The objects' keys are then not set, as bulk_create's are not.
    """
    if not objs:
        return objs
    model = type(objs[0])
    if connection.vendor != "postgresql" or len(objs) < COPY_MIN:
        return model._default_manager.bulk_create(objs, ignore_conflicts=ignore_conflicts)
    if not ignore_conflicts:
        _copy(model, objs)
        return objs
    try:
        with transaction.atomic():
            _copy(model, objs)
    except IntegrityError:
        for obj in objs:
            obj.pk = None
        return model._default_manager.bulk_create(objs, ignore_conflicts=True)
    return objs


def _copy(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the per-call proxy
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    # Each field's value as bulk_create writes it: pre_save (auto_now and the like) where
    # the field has its own, then get_db_prep_save (JSON, bytes, dates adapted).
    read = [
        functools.partial(f.pre_save, add=True)
        if type(f).pre_save is not Field.pre_save
        else operator.attrgetter(f.attname)
        for f in fields
    ]
    prepare = [functools.partial(f.get_db_prep_save, connection=db) for f in fields]
    steps = list(zip(read, prepare, strict=True))
    for obj in objs:
        # As bulk_create does: a related object's key into its column, or an error if unsaved.
        obj._prepare_related_fields_for_save(operation_name="insert_rows")  # type: ignore[attr-defined]
    quote = db.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in (pk, *fields))
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objs)],
        )
        for obj, (key,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = key
        # Names from the model's own metadata; every value goes through COPY's stream. The
        # driver's cursor is Django's unwrapped: its errors are wrapped here (a unique
        # violation is Django's IntegrityError, as from bulk_create).
        statement = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
        with db.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for obj in objs:
                copy.write_row((obj.pk, *(p(r(obj)) for r, p in steps)))
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias
