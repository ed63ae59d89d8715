"""Many new rows in one `COPY … FROM STDIN` on PostgreSQL, for the write paths whose
inserts cost more in the client than in the server (the classify path's predictions, its
embedding cache, its review tasks and events).

Django's bulk_create on PostgreSQL sends one `INSERT … SELECT * FROM UNNEST(%s::…[], …)`
whose arrays psycopg adapts element by element, after Django has prepared every value
through four calls. COPY streams the same rows in its binary format (the columns' types
read once per table), through psycopg's C dumpers: the classify path's writes cost about
a third less (benchmarks/README.md, classify_throughput.py).

The objects come back as bulk_create returns them: each with its primary key, taken from
the table's own sequence in one statement beforehand (so ids grow in the objects' order,
as the ORM's insert gives them), and marked as saved. On other databases, or for a
handful of rows, it is bulk_create itself.

`insert_values` writes rows given as {field: value} the same way, without a model object
per row (Django's __init__ costs 4-9 µs an object, a fifth of the classify path's writes
in the client): the hot path's predictions and review tasks, whose objects nothing reads.
"""

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

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


def insert_values(
    model: type[models.Model], rows: Sequence[Mapping[str, Any]], *, ignore_conflicts: bool = False
) -> list[int]:
    """Insert new rows of `model`, each {field attname: value} (`item_id`, not `item`); a
    field a row leaves out takes its default, as in `model(**row)`. Their primary keys, in
    the rows' order.

    Each value is prepared for its column as insert_rows prepares an object's. A field set
    on save (auto_now) is refused: it has no value until an object is saved.

    With `ignore_conflicts`, as insert_rows: rows that break a unique constraint are
    skipped. When a conflict sent the batch to bulk_create, no keys are returned ([])."""
    if not rows:
        return []
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    known = {f.attname for f in fields}
    for row in rows:
        unknown = row.keys() - known
        if unknown:
            raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    db = connections[DEFAULT_DB_ALIAS]
    steps = [_value_in(f, db) for f in fields]  # refuses a field set on save, on any path
    if connection.vendor != "postgresql" or len(rows) < COPY_MIN:
        objs = model._default_manager.bulk_create(
            [model(**row) for row in rows], ignore_conflicts=ignore_conflicts
        )
        return [] if ignore_conflicts else [obj.pk for obj in objs]
    values = (tuple(step(row) for step in steps) for row in rows)
    if not ignore_conflicts:
        return _copy_values(model, db, fields, len(rows), values)
    try:
        with transaction.atomic():
            return _copy_values(model, db, fields, len(rows), values)
    except IntegrityError:
        model._default_manager.bulk_create([model(**row) for row in rows], ignore_conflicts=True)
        return []


def _value_in(field: Any, db: Any) -> Callable[[Mapping[str, Any]], Any]:
    """The field's value in a row of insert_values, prepared as an object's is
    (_prepared); its default where the row has none (a callable default called per row)."""
    if type(field).pre_save is not Field.pre_save and (
        not isinstance(field, models.DateField) or field.auto_now or field.auto_now_add
    ):
        raise ValueError(f"{field} is set on save; insert_values cannot write it")
    name = field.attname
    prepared = _prepared(field, db)
    fresh = callable(field.default) if field.has_default() else False
    constant = None if fresh else field.get_default()

    def value(row: Mapping[str, Any]) -> Any:
        return prepared(row[name] if name in row else (field.get_default() if fresh else constant))

    return value


def _value_of(field: Any, db: Any) -> Callable[[models.Model], Any]:
    """The field's value of an object as bulk_create writes it: pre_save (auto_now and the
    like) where the field has its own, then prepared for its column (_prepared)."""
    prepared = _prepared(field, db)
    if type(field).pre_save is not Field.pre_save:
        pre_save = functools.partial(field.pre_save, add=True)
        return lambda obj: prepared(pre_save(obj))
    read = operator.attrgetter(field.attname)
    return lambda obj: prepared(read(obj))


def _prepared(field: Any, db: Any) -> Callable[[Any], Any]:
    """A value as get_db_prep_save prepares it (JSON wrapped, naive dates made aware,
    numbers and strings coerced). A value already of the type that preparation returns
    unchanged (an int for an integer column, an aware datetime, ...) skips it: the same
    value, without four calls per value for every row."""
    prepare = functools.partial(field.get_db_prep_save, connection=db)
    unchanged = _unchanged(field)
    if unchanged is None:
        return prepare
    return lambda v: v if unchanged(v) else prepare(v)


def _unchanged(field: Any) -> Callable[[Any], bool] | None:
    """Which values the field's preparation returns as they are. Only Django's own field
    classes (or a key to one) are known: a subclass may prepare its values its own way."""
    kind = type(field.target_field if field.is_relation else field)
    if kind is models.DateTimeField:
        return lambda v: v is None or (type(v) is dt.datetime and v.tzinfo is not None)
    exact = _EXACT.get(kind)
    if exact is None:
        return None
    return lambda v: v is None or type(v) is exact


_INTEGERS = (
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_EXACT: dict[type, type] = {
    **dict.fromkeys(_INTEGERS, int),
    models.FloatField: float,
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.BinaryField: bytes,
}


# Per model, what COPY needs of its table: the key's sequence and the columns' type oids
# (COPY's binary format names each column's type). Read once per process.
_TABLES: dict[type[models.Model], tuple[str, list[int]]] = {}


def _table(cursor: Any, model: type[models.Model], columns: list[str]) -> tuple[str, list[int]]:
    if model not in _TABLES:
        meta = model._meta
        assert meta.pk is not None
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [meta.db_table, meta.pk.column])
        (sequence,) = cursor.fetchone()
        cursor.execute(
            "SELECT attname, atttypid FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [connection.ops.quote_name(meta.db_table)],
        )
        oids = dict(cursor.fetchall())
        _TABLES[model] = (sequence, [oids[c] for c in columns])
    return _TABLES[model]


def _copy(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    meta = model._meta
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the per-call proxy
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    steps = [_value_of(f, db) for f in fields]
    for obj in objs:
        # As bulk_create does: a related object's key into its column, or an error if unsaved.
        # An object given its keys (`item_id=`) holds no related object: nothing to do.
        if obj._state.fields_cache:
            obj._prepare_related_fields_for_save(operation_name="insert_rows")  # type: ignore[attr-defined]
    rows = (tuple(step(obj) for step in steps) for obj in objs)
    for obj, key in zip(objs, _copy_values(model, db, fields, len(objs), rows), strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = db.alias


def _copy_values(
    model: type[models.Model], db: Any, fields: list[Any], n: int, rows: Iterable[tuple[Any, ...]]
) -> list[int]:
    """COPY `n` rows of prepared values of `fields` into the model's table, each with a new
    key from the table's sequence (taken first, in one statement); the keys, in order."""
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    quote = db.ops.quote_name
    names = [str(f.column) for f in (pk, *fields)]
    with db.cursor() as cursor:
        sequence, types = _table(cursor, model, names)
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, n])
        keys = [key for (key,) in cursor.fetchall()]
        # Names from the model's own metadata; every value goes through COPY's stream. The
        # driver's cursor is Django's unwrapped: its errors are wrapped here (a unique
        # violation is Django's IntegrityError, as from bulk_create).
        columns = ", ".join(quote(name) for name in names)
        statement = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
        with db.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            copy.set_types(types)
            for key, row in zip(keys, rows, strict=True):
                copy.write_row((key, *row))
    return keys
