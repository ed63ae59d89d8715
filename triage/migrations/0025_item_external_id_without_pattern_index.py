"""Drop the pattern-matching (varchar_pattern_ops) index Django adds beside the unique index
of Item.external_id on PostgreSQL.

It serves only `LIKE 'prefix%'` lookups, which nothing makes (the decisions page's search
is icontains, an UPPER(...) LIKE no b-tree index serves), and every write of an item that
changes an indexed column paid for it: routing an item (its status leaves the pending
index's predicate, so the update is never HOT) wrote six index entries, now five. The
classify path's UPDATE of 1,000 items took 15-17 ms with it, 9-13 ms without
(EXPLAIN ANALYZE, benchmarks/README.md); ingest inserts one entry fewer per item.
"""

from django.db import migrations


def _pattern_indexes(cursor) -> list[str]:
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'triage_item' AND indexdef LIKE %s",
        ["%(external_id varchar_pattern_ops)%"],
    )
    return [name for (name,) in cursor.fetchall()]


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        names = _pattern_indexes(cursor)
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _pattern_indexes(cursor):
            return
    item = apps.get_model("triage", "Item")
    schema_editor.execute(
        schema_editor._create_like_index_sql(item, item._meta.get_field("external_id"))
    )


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0024_reroute_waiting"),
    ]

    operations = [migrations.RunPython(drop, restore)]
