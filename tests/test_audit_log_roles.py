"""A deployment where the app's role cannot erase the audit log (docs/audit-log-roles.sql),
and `check --deploy` warning when it can."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from triage.api.checks import audit_log_cannot_be_erased
from triage.models import AuditLog
from triage.models.audit_log import audit_log_exposures

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres("roles and privileges")]

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "audit-log-roles.sql"
ROLE = "triage_test_app_role"


def refused(sql: str) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError:
        return True
    return False


@pytest.fixture
def app_role():
    """The documented grants, to a role of the test's own (created and dropped with the
    test's transaction); the connection then acts as that role."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {ROLE} NOLOGIN")
        cursor.execute(SCRIPT.read_text().replace("triage_app", ROLE))
        cursor.execute(f"SET LOCAL ROLE {ROLE}")
    yield ROLE
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def test_the_default_role_can_erase_the_audit_log_and_the_check_says_so():
    # The tests connect as a superuser, as the probe's "non-superuser" owner role could too.
    assert any("TRUNCATE" in e for e in audit_log_exposures(connection))
    [warning] = audit_log_cannot_be_erased()
    assert warning.id == "triage.W002" and "TRUNCATE" in warning.msg
    assert "docs/audit-log-roles.sql" in warning.hint


def test_the_documented_app_role_can_write_but_not_erase_the_audit_log(app_role):
    AuditLog.objects.create(actor="user:root", action="policy")
    assert AuditLog.objects.count() == 1
    assert refused("TRUNCATE triage_auditlog")
    assert refused("ALTER TABLE triage_auditlog DISABLE TRIGGER triage_auditlog_append_only")
    assert refused("DROP TRIGGER triage_auditlog_append_only ON triage_auditlog")
    assert refused("UPDATE triage_auditlog SET actor = 'someone else'")
    assert refused("DELETE FROM triage_auditlog")
    assert AuditLog.objects.count() == 1
    # The app's other tables work as ever.
    assert not refused("UPDATE triage_category SET name = name")
    assert audit_log_exposures(connection) == []
    assert audit_log_cannot_be_erased() == []


def test_check_deploy_prints_the_warning(capsys):
    call_command("check", "--deploy", "--fail-level", "CRITICAL")
    assert "triage.W002" in capsys.readouterr().err
