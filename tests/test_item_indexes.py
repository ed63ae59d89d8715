"""The item table's indexes on PostgreSQL: no pattern-matching index on external_id
(migration 0025), which nothing queries by prefix and every routing update paid for."""

import pytest
from django.db import connection

from triage.models import Item

pytestmark = [pytest.mark.needs_postgres("the index is PostgreSQL's"), pytest.mark.django_db]


def test_external_id_has_its_unique_index_and_no_pattern_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [Item._meta.db_table]
        )
        definitions = [d for (d,) in cursor.fetchall() if "(external_id" in d]
    assert len(definitions) == 1 and "UNIQUE" in definitions[0]
    assert not [d for d in definitions if "pattern_ops" in d]
