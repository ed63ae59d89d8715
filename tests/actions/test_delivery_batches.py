"""Deliveries go in batches per endpoint: leased in one statement, sent over one
connection, written in one statement, in item order, and a lease that runs out is taken
again."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import make_item
from triage.actions import delivery as delivery_service
from triage.actions import events as events_module
from triage.actions.events import NewEvent, emit, emit_many
from triage.actions.leases import lease_due
from triage.actions.models import Delivery, Endpoint

from .receiver import Receiver

pytestmark = pytest.mark.django_db

TYPES = ["item.routed", "item.reviewed", "item.corrected"]


def emit_for(items, types=TYPES):
    """Each item's events in order (one transaction, nothing queued: the tests send)."""
    with transaction.atomic():
        return [emit(t, item=item, data={}) for t in types for item in items]


@pytest.fixture
def quiet(monkeypatch):
    """Commits queue nothing: each test runs the deliveries itself."""
    monkeypatch.setattr(events_module, "queue_endpoints", lambda ids: None)


def test_a_later_event_of_an_item_waits_until_the_earlier_is_delivered(endpoint, receiver, quiet):
    receiver.script = [500]  # the item's first event fails once
    item = make_item("server down")
    routed, reviewed, corrected = emit_for([item])
    now = timezone.now()
    delivery_service.deliver_endpoint(endpoint_id=endpoint.pk, now=now)
    # Neither later event went out while the first was pending, though all were due.
    assert receiver.event_ids() == [routed.event_id]
    later = Delivery.objects.filter(event__in=[reviewed, corrected])
    assert {(d.state, d.attempts) for d in later} == {(Delivery.State.PENDING, 0)}

    delivery_service.deliver_endpoint(endpoint_id=endpoint.pk, now=now + timedelta(hours=1))
    ids = [routed.event_id, reviewed.event_id, corrected.event_id]
    assert receiver.event_ids() == [routed.event_id, *ids]
    assert not Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).exists()


def test_a_batch_goes_over_one_connection_in_a_fixed_number_of_queries(endpoint, receiver, quiet):
    receiver.keep_alive = True
    queries = {}
    for n in (5, 50):
        receiver.received.clear()
        events = emit_for([make_item(f"item {i}") for i in range(n)], types=["item.routed"])
        with CaptureQueriesContext(connection) as captured:
            delivery_service.deliver_endpoint(endpoint_id=endpoint.pk)
        queries[n] = len(captured.captured_queries)
        assert receiver.event_ids() == [e.event_id for e in events]
        assert all(r.verified for r in receiver.received)
        assert len({r.peer for r in receiver.received}) == 1  # one connection
    assert queries[5] == queries[50]
    assert not Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).exists()


def test_an_endpoint_that_hangs_costs_one_timeout_and_holds_back_only_its_own(
    endpoint, receiver, webhook_settings, quiet
):
    receiver.script = ["hang"]
    receiver.hang_seconds = 3
    healthy = Receiver(keep_alive=True).start()
    try:
        other = Endpoint.objects.create(url=healthy.url)
        healthy.secret = other.secret
        events = emit_for([make_item(f"item {i}") for i in range(5)], types=["item.routed"])
        for target in (endpoint, other):
            delivery_service.deliver_endpoint(endpoint_id=target.pk)
    finally:
        healthy.stop()
    assert healthy.event_ids() == [e.event_id for e in events]
    assert len(receiver.received) == 1  # one timeout, not five
    first, *rest = Delivery.objects.filter(endpoint=endpoint).order_by("id")
    assert first.attempts == 1 and "timed out" in first.last_error
    # The rest were not attempted and wait with the one that timed out.
    assert {(d.attempts, d.next_attempt_at, d.leased_until) for d in rest} == {
        (0, first.next_attempt_at, None)
    }
    assert first.next_attempt_at > timezone.now()


def test_a_lease_that_ran_out_is_taken_again_and_its_late_holder_writes_nothing(
    endpoint, receiver, quiet
):
    (event,) = emit_for([make_item("x")], types=["item.routed"])
    now = timezone.now()
    # A worker leases the batch, then stalls (or dies) before sending.
    lease = now + delivery_service.lease_length()
    [pk] = lease_due(endpoint_id=endpoint.pk, now=now, lease=lease, limit=10)
    assert delivery_service.deliver_endpoint(endpoint_id=endpoint.pk, now=now) == "nothing due"
    assert receiver.received == []
    # Once the lease has run out, another worker sends it.
    after = lease + timedelta(seconds=1)
    assert delivery_service.deliver_endpoint(endpoint_id=endpoint.pk, now=after) == "1 delivered"
    delivery = Delivery.objects.select_related("event").get(pk=pk)
    assert (delivery.state, delivery.attempts) == (Delivery.State.SUCCEEDED, 2)
    # The stalled worker comes back with a failure: its lease is gone, nothing is written.
    stale = Delivery.objects.select_related("event").get(pk=pk)
    stale.state = Delivery.State.PENDING
    delivery_service.record_outcomes(
        endpoint=endpoint,
        deliveries=[stale],
        results=[delivery_service.AttemptResult(500, excerpt="late")],
        lease=lease,
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (Delivery.State.SUCCEEDED, 200)
    assert receiver.event_ids() == [event.event_id]


def test_a_task_past_its_budget_hands_the_rest_to_a_new_task(
    endpoint, receiver, monkeypatch, quiet, django_capture_on_commit_callbacks
):
    events = emit_for([make_item(f"item {i}") for i in range(3)], types=["item.routed"])
    queued = []

    class Signature:
        def delay(self, endpoint_id):
            queued.append(endpoint_id)

    monkeypatch.setattr(delivery_service, "SEND_BUDGET_SECONDS", 0)
    monkeypatch.setitem(delivery_service.current_app.conf, "task_always_eager", False)
    monkeypatch.setattr(delivery_service.current_app, "signature", lambda name: Signature())
    with django_capture_on_commit_callbacks(execute=True):
        outcome = delivery_service.deliver_endpoint(endpoint_id=endpoint.pk)
    # One request (every task makes progress), the rest released as they were, due now.
    assert receiver.event_ids() == [events[0].event_id]
    assert "continued in a new task" in outcome
    assert queued == [endpoint.pk]
    rest = Delivery.objects.exclude(event=events[0])
    assert {(d.state, d.attempts, d.leased_until) for d in rest} == {
        (Delivery.State.PENDING, 0, None)
    }


def test_a_commit_queues_one_task_per_endpoint(
    endpoint, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    other = Endpoint.objects.create(url=receiver.url + "?other")
    queued = []
    monkeypatch.setattr(events_module, "queue_endpoints", queued.append)
    items = [make_item(f"item {i}") for i in range(20)]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit_many([NewEvent(type="item.routed", item_id=item.pk, data={}) for item in items])
    assert queued == [[endpoint.pk, other.pk]]


@pytest.mark.needs_postgres("concurrent leases (SKIP LOCKED)")
@pytest.mark.django_db(transaction=True)
def test_workers_sharing_an_endpoint_send_each_event_once_in_item_order(
    endpoint, receiver, monkeypatch, quiet
):
    monkeypatch.setattr(delivery_service, "BATCH_SIZE", 7)  # many small batches interleave
    receiver.keep_alive = True
    items = [make_item(f"item {i}") for i in range(30)]
    events = emit_for(items)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            while Delivery.objects.filter(state=Delivery.State.PENDING).exists():
                delivery_service.deliver_endpoint(endpoint_id=endpoint.pk)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(receiver.event_ids()) == sorted(e.event_id for e in events)  # once each
    assert all(r.verified for r in receiver.received)
    by_event = {e.event_id: e for e in events}
    for item in items:
        got = [by_event[e].type for e in receiver.event_ids() if by_event[e].item_id == item.pk]
        assert got == TYPES
    assert len({r.peer for r in receiver.received}) < len(events) / 5  # connections reused
