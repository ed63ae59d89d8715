"""A persistent connection the database dropped is replaced, not a 500 (CONN_HEALTH_CHECKS)."""

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection

from triage.models import Item

from .factories import make_item


def test_persistent_connections_are_health_checked():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0


@pytest.mark.needs_postgres("terminates a PostgreSQL backend")
@pytest.mark.django_db(transaction=True)
def test_a_terminated_connection_is_replaced_at_the_next_request():
    make_item("refund")
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # What Django does when a request starts (the test client skips it).
    close_old_connections()
    assert Item.objects.count() == 1
    assert connection.connection.info.backend_pid != pid


@pytest.mark.needs_postgres("terminates a PostgreSQL backend")
@pytest.mark.django_db(transaction=True)
def test_without_health_checks_the_same_drop_is_an_error(monkeypatch):
    # The control for the test above: the failure CONN_HEALTH_CHECKS exists to prevent.
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", False)
    make_item("refund")
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    close_old_connections()
    with pytest.raises(OperationalError):
        Item.objects.count()
    connection.close()
