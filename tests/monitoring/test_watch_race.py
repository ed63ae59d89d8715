"""A suspension that races a resume (issue 18, bad input and edges): both take the watch's
row lock, so they happen one after the other; the audit log shows both in order, and the
last one wins. PostgreSQL only (row locks)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from triage.models import AuditLog, Category, RoutingPolicy
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.watch import check_category, resume_category

from ..factories import make_item, make_keyword_categories, make_prediction

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL"
)


def _waiting_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def test_a_resume_that_races_a_suspension_waits_for_it_and_wins(transactional_db):
    billing = make_keyword_categories()["billing"]
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.75})
    start = timezone.now() - timedelta(hours=1)
    check_category(category=billing, now=start - timedelta(minutes=1))
    for i in range(12):
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, billing),
            category=billing,
            probability=1.0,
            sampled_at=start + timedelta(seconds=i),
            audited_at=start + timedelta(seconds=i),
            correct=False,
        )
    suspended, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def suspend() -> None:
        try:
            with transaction.atomic():
                outcome["suspended"] = check_category(
                    category=Category.objects.get(pk=billing.pk)
                ).newly_suspended
                suspended.set()
                release.wait(timeout=30)  # hold the row lock until the resume is waiting
        finally:
            connections.close_all()

    def resume() -> None:
        try:
            resume_category(
                slug="billing", reason="checked", actor="admin", confirm_below_target=True
            )
            outcome["resumed"] = True
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["resumed"] = exc
        finally:
            connections.close_all()

    first = threading.Thread(target=suspend)
    first.start()
    assert suspended.wait(timeout=30)
    second = threading.Thread(target=resume)
    second.start()
    while not _waiting_for_a_lock() and second.is_alive():
        second.join(timeout=0.05)
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert outcome == {"suspended": True, "resumed": True}
    log = list(AuditLog.objects.filter(action__in=["suspend", "resume"]).order_by("id"))
    assert [entry.action for entry in log] == ["suspend", "resume"]
    assert log[0].at <= log[1].at
    assert CategoryWatch.objects.get(category=billing).suspended_at is None  # the last wins
