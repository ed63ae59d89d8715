import random
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.factories import make_item
from triage.actions import delivery as delivery_service
from triage.actions import events as events_module
from triage.actions.events import emit
from triage.actions.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


def emit_routed(item, category=None, type_="item.routed"):
    with transaction.atomic():
        return emit(type_, item=item, category=category, data={"external_id": item.external_id})


def send(event_type="item.routed", item=None, capture=None):
    """Emit one event and run what the commit queues (deliveries, eagerly)."""
    item = item or make_item("server down")
    with capture(execute=True):
        event = emit_routed(item, type_=event_type)
    return event, Delivery.objects.get(event=event)


def test_an_event_reaches_the_receiver_signed(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    event, delivery = send(capture=django_capture_on_commit_callbacks)
    assert receiver.event_ids() == [event.event_id]
    got = receiver.received[0]
    assert got.verified
    assert got.headers["webhook-id"] == event.event_id == got.body["id"]
    assert got.body["type"] == "item.routed"
    assert got.body["schema_version"] == 1
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.last_response == '{"ok": true}'


def test_the_signature_fails_for_a_tampered_body_or_another_secret():
    secret = Endpoint().secret
    body = '{"id":"evt_1","type":"item.routed"}'
    headers = delivery_service.signed_headers(
        secret=secret, msg_id="evt_1", timestamp=int(time.time()), body=body
    )
    assert Webhook(secret).verify(body, headers) == {"id": "evt_1", "type": "item.routed"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("routed", "reviewed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(Endpoint().secret).verify(body, headers)


def test_a_500_is_retried_later_with_the_same_event_id(
    endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    receiver.script = [500]
    before = timezone.now()
    event, delivery = send(capture=django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING
    assert (delivery.attempts, delivery.last_status_code) == (1, 500)
    assert delivery.last_response == "receiver says no"
    wait = (delivery.next_attempt_at - before).total_seconds()
    base = settings.TRIAGE_WEBHOOK_RETRY_BASE_SECONDS
    assert base * 0.5 <= wait <= base + 2
    # Not before it is due; then it goes through.
    assert delivery_service.deliver(delivery_id=delivery.pk) == "not due"
    outcome = delivery_service.deliver(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    assert outcome == "delivered"
    assert receiver.counts() == {event.event_id: 2}
    assert all(r.verified for r in receiver.received)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (Delivery.State.SUCCEEDED, 2)


def test_a_receiver_that_is_down_is_retried(
    webhook_settings, categories, django_capture_on_commit_callbacks
):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    Endpoint.objects.create(url=f"http://127.0.0.1:{port}/hooks")
    _, delivery = send(capture=django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING
    assert delivery.last_status_code is None
    assert "refused" in delivery.last_error.lower()
    assert delivery.next_attempt_at > timezone.now()


def test_a_receiver_that_hangs_is_cut_off_at_the_timeout(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.script = ["hang"]
    receiver.hang_seconds = 8
    started = time.monotonic()
    _, delivery = send(capture=django_capture_on_commit_callbacks)
    assert time.monotonic() - started < 5  # timeout 1 s, the receiver hangs 8 s
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING
    assert "timed out" in delivery.last_error


def test_410_gone_disables_the_endpoint(endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.script = [410]
    _, delivery = send(capture=django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (Delivery.State.FAILED, 410)
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason
    # Nothing more is addressed to it.
    with django_capture_on_commit_callbacks(execute=True):
        event = emit_routed(make_item("another"))
    assert not Delivery.objects.filter(event=event).exists()
    assert len(receiver.received) == 1


def test_a_redirect_is_not_followed(endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.script = ["redirect"]
    _, delivery = send(capture=django_capture_on_commit_callbacks)
    assert [r.path for r in receiver.received] == ["/hooks"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (Delivery.State.PENDING, 307)


def test_after_the_retry_window_a_delivery_fails(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [503]
    item = make_item("x")
    with transaction.atomic():
        event = emit("item.routed", item=item, data={})
    delivery = Delivery.objects.get(event=event)
    Delivery.objects.filter(pk=delivery.pk).update(retry_until=timezone.now())
    assert delivery_service.deliver(delivery_id=delivery.pk).startswith("failed after 1")
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (Delivery.State.FAILED, 503)


def test_events_of_one_item_are_delivered_in_order(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [500]
    item = make_item("server down")
    routed, first = send("item.routed", item, capture=django_capture_on_commit_callbacks)
    corrected, second = send("item.corrected", item, capture=django_capture_on_commit_callbacks)
    # The correction waits while the routing is still pending for this endpoint.
    second.refresh_from_db()
    assert (second.state, second.attempts) == (Delivery.State.PENDING, 0)
    assert receiver.event_ids() == [routed.event_id]
    first.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        delivery_service.deliver(delivery_id=first.pk, now=first.next_attempt_at)
    assert receiver.event_ids() == [routed.event_id, routed.event_id, corrected.event_id]
    second.refresh_from_db()
    assert second.state == Delivery.State.SUCCEEDED


def test_other_items_do_not_wait_for_a_failing_one(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [500]
    send(capture=django_capture_on_commit_callbacks)
    other, delivery = send(capture=django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SUCCEEDED


def test_redelivery_sends_the_same_event_again(
    endpoint, receiver, django_capture_on_commit_callbacks
):
    event, delivery = send(capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_service.redeliver(delivery_ids=[delivery.pk]) == 1
    assert receiver.counts() == {event.event_id: 2}


def test_endpoints_receive_only_the_types_and_categories_they_chose(
    webhook_settings, categories, receiver
):
    everything = Endpoint.objects.create(url=receiver.url + "?all")
    corrections = Endpoint.objects.create(url=receiver.url + "?c", event_types=["item.corrected"])
    billing = Endpoint.objects.create(url=receiver.url + "?b")
    billing.categories.add(categories["billing"])
    item = make_item("refund")
    with transaction.atomic():
        routed_billing = emit("item.routed", item=item, category=categories["billing"], data={})
        routed_outage = emit("item.routed", item=item, category=categories["outage"], data={})
        corrected = emit("item.corrected", item=item, category=categories["outage"], data={})

    def endpoints_of(event):
        return set(Delivery.objects.filter(event=event).values_list("endpoint", flat=True))

    assert endpoints_of(routed_billing) == {everything.pk, billing.pk}
    assert endpoints_of(routed_outage) == {everything.pk}
    assert endpoints_of(corrected) == {everything.pk, corrections.pk}


def test_the_sweep_queues_only_endpoints_overdue_past_the_grace(endpoint, settings):
    settings.TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS = 120
    with transaction.atomic():
        emit("item.routed", item=make_item("x"), data={})
    delivery = Delivery.objects.get()
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=now - timedelta(seconds=60))
    assert delivery_service.due_endpoint_ids(now=now) == []
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=now - timedelta(seconds=200))
    assert delivery_service.due_endpoint_ids(now=now) == [endpoint.pk]
    # A lease in force: a worker is at it. Once it has run out, the sweep takes it back.
    Delivery.objects.filter(pk=delivery.pk).update(leased_until=now + timedelta(seconds=5))
    assert delivery_service.due_endpoint_ids(now=now) == []
    Delivery.objects.filter(pk=delivery.pk).update(leased_until=now - timedelta(seconds=5))
    assert delivery_service.due_endpoint_ids(now=now) == [endpoint.pk]
    Endpoint.objects.update(is_active=False)
    assert delivery_service.due_endpoint_ids(now=now) == []


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (8, 1920, 3840), (9, 3600, 7200), (40, 3600, 7200)],
)
def test_retry_delays_grow_exponentially_with_jitter_up_to_a_cap(attempt, low, high):
    rng = random.Random(attempt)
    delays = [delivery_service.retry_delay(attempt, rng=rng).total_seconds() for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 4  # jittered, not fixed


@pytest.mark.parametrize("jitter", [0.5, 1.0])
def test_retries_last_about_a_day(jitter, settings):
    class Fixed(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return jitter

    elapsed, attempts = 0.0, 0
    window = settings.TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS
    while elapsed < window:
        attempts += 1
        elapsed += delivery_service.retry_delay(attempts, rng=Fixed()).total_seconds()
    # Waiting the full delay (cap 2 h) a day holds ~17 attempts; half of it (1 h), ~31.
    assert 15 <= attempts <= 32


def test_under_every_fault_each_event_arrives_in_item_order_with_its_id(
    endpoint, receiver, webhook_settings
):
    """Down, 500, hang, redirect, 502 in random order: retried until all arrive."""
    webhook_settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS = 0.3
    # A hang or a refusal stops a batch, so this takes more rounds than the window holds.
    webhook_settings.TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS = 10**8
    receiver.hang_seconds = 0.6
    rng = random.Random(7)
    receiver.script = [rng.choice([500, "hang", "redirect", 502, 200, 200]) for _ in range(60)]
    items = [make_item(f"item {i}") for i in range(6)]
    types = ["item.routed", "item.reviewed", "item.corrected"]
    with transaction.atomic():
        events = [emit(t, item=item, data={}) for t in types for item in items]
    ids = {e.event_id for e in events}
    now = timezone.now()
    for _ in range(200):
        if not Delivery.objects.filter(state=Delivery.State.PENDING).exists():
            break
        now += timedelta(hours=3)  # past any backoff or lease
        delivery_service.deliver_endpoint(endpoint_id=endpoint.pk, now=now)
    assert not Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).exists()
    assert set(receiver.counts()) == ids  # every event, nothing else
    assert all(r.verified for r in receiver.received)
    assert sum(receiver.counts().values()) > len(ids)  # faults forced retries, same ids
    accepted = [r.event_id for r in receiver.received if r.answer in (200, "hang") and r.verified]
    by_event = {e.event_id: e for e in events}
    for item in items:
        firsts = list(dict.fromkeys(e for e in accepted if by_event[e].item_id == item.pk))
        assert [by_event[e].type for e in firsts][:3] == types


@pytest.mark.needs_postgres("concurrent row locks")
@pytest.mark.django_db(transaction=True)
def test_two_workers_with_the_same_task_send_it_once(endpoint, receiver, monkeypatch):
    """A sweep's duplicate and the original task racing: the lease lets one through."""
    monkeypatch.setattr(events_module, "queue_endpoints", lambda ids: None)  # we run them
    receiver.script = ["hang"]
    receiver.hang_seconds = 0.5
    with transaction.atomic():
        event = emit("item.routed", item=make_item("x"), data={})
    delivery = Delivery.objects.get(event=event)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            outcomes.append(delivery_service.deliver(delivery_id=delivery.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert receiver.event_ids() == [event.event_id]
    assert sorted(outcomes)[0] == "delivered"
    assert set(sorted(outcomes)[1:]) <= {"in flight elsewhere", "not pending"}
    delivery.refresh_from_db()
    assert delivery.attempts == 1
