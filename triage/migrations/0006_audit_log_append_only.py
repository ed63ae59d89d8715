"""Make the audit log append-only on PostgreSQL: a trigger refuses UPDATE and DELETE.

The trigger guards against every path through the application's own connection (the
ORM, the admin, a bug, a hand-written query); a database owner can still drop it, so
production should also run the app under a role without UPDATE/DELETE/TRUNCATE on
the table (see the README). TRUNCATE is left alone: test-database flushes use it.
SQLite, the embedded demo database, has no such trigger.
"""

import django.core.serializers.json
from django.db import migrations, models

FORWARD = """
CREATE FUNCTION triage_auditlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on triage_auditlog is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER triage_auditlog_append_only
    BEFORE UPDATE OR DELETE ON triage_auditlog
    FOR EACH ROW EXECUTE FUNCTION triage_auditlog_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS triage_auditlog_append_only ON triage_auditlog;
DROP FUNCTION IF EXISTS triage_auditlog_append_only();
"""


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """RunSQL that does nothing on other databases (the trigger is PL/pgSQL)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0005_certification"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditlog",
            name="detail",
            field=models.JSONField(
                blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder
            ),
        ),
        RunSQLOnPostgreSQL(FORWARD, BACKWARD),
    ]
