"""Delivering events to webhook endpoints, in batches: leased, signed, timed out, retried.

One task per endpoint (`deliver_endpoint`): it leases a batch of the endpoint's due
deliveries in one statement (triage.actions.leases), sends them over one kept-alive
connection (triage.actions.transport) and writes their outcomes in one statement, then
takes the next batch, until nothing is due or SEND_BUDGET_SECONDS are spent (it then
queues its own continuation, behind the other endpoints' tasks). Endpoints never wait
for each other: each is leased and sent by its own task, and workers taking the same
endpoint at once split its due rows (SKIP LOCKED).

At least once: the lease is committed before any request is sent, and the outcome is
written only by the lease's holder, so a worker killed mid-batch leaves rows that are
sent again, with the same event id, once their lease has run out. A 2xx is success; a
410 disables the endpoint; anything else (a refused connection, a timeout, a redirect, a
500) is retried with exponential backoff and jitter for TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS
(a day), then the delivery is `failed`. A failed batch queues its endpoint's retry with a
countdown; beat's sweep queues any endpoint whose task was lost.

A refused connection or a timeout stops the batch: the rest of it is not attempted and
waits as long as the failed delivery, so an endpoint that is down costs one timeout per
batch, not one per delivery.
"""

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from triage.actions.leases import lease_due, write_outcomes
from triage.actions.models import Delivery, Endpoint
from triage.actions.transport import (
    USER_AGENT,
    AttemptResult,
    EndpointConnection,
    signed_headers,
)

logger = logging.getLogger(__name__)

# Deliveries leased and sent together (one connection, one write of their outcomes).
BATCH_SIZE = 100
# A task starts no request after this long; the endpoint's continuation is queued.
SEND_BUDGET_SECONDS = 10
# A lease outlasts the budget and one more request by this much.
LEASE_MARGIN = timedelta(seconds=30)

# The task for one endpoint (triage.actions.tasks.deliver_endpoint), named rather than
# imported: the task module imports this one.
DELIVER_TASK = "triage.actions.tasks.deliver_endpoint"


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Wait after the attempt-th failure: exponential, capped, with "equal jitter".

    base·2^(attempt-1), capped, then a uniform draw in [half, whole] of it: receivers
    coming back from an outage are not hit by every sender at the same second.
    """
    base = settings.TRIAGE_WEBHOOK_RETRY_BASE_SECONDS
    cap = settings.TRIAGE_WEBHOOK_RETRY_CAP_SECONDS
    full = min(cap, base * 2 ** max(0, min(attempt - 1, 30)))
    draw = (rng or random).uniform(0.5, 1.0)
    return timedelta(seconds=full * draw)


def retry_until(start: datetime) -> datetime:
    return start + timedelta(seconds=settings.TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS)


def lease_length() -> timedelta:
    """Long enough for a whole batch: the budget, one last request, and a margin."""
    return (
        timedelta(seconds=SEND_BUDGET_SECONDS + settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS)
        + LEASE_MARGIN
    )


def queue_endpoints(endpoint_ids: Iterable[int]) -> None:
    deliver_to = current_app.signature(DELIVER_TASK)
    for endpoint_id in dict.fromkeys(endpoint_ids):
        deliver_to.delay(endpoint_id)


# A countdown task may run a little before next_attempt_at on another clock: it would
# find the delivery not due and leave it to the sweep.
RETRY_MARGIN = timedelta(seconds=1)


def schedule_retry(endpoint_id: int, delay: timedelta) -> None:
    """Queue the endpoint's task for when retries are due (a countdown), so they do not
    wait for beat's sweep (which remains the safety net for a lost message).

    Not with in-process tasks (the embedded default, no broker): they would run at once,
    whatever the countdown, and retry in a tight loop.
    """
    if current_app.conf.task_always_eager:
        return
    current_app.signature(DELIVER_TASK).apply_async(
        (endpoint_id,), countdown=(delay + RETRY_MARGIN).total_seconds()
    )


def deliver_endpoint(*, endpoint_id: int, now: datetime | None = None) -> str:
    """Send the endpoint's due deliveries, batch after batch; say what happened.

    `now` fixes the clock (tests); by default each batch reads it afresh.
    """
    endpoint = Endpoint.objects.filter(pk=endpoint_id, is_active=True).first()
    if endpoint is None:
        return "endpoint inactive or gone"
    # In-process tasks (no broker) have nobody to hand a continuation to: they finish.
    eager = current_app.conf.task_always_eager
    deadline = None if eager else time.monotonic() + SEND_BUDGET_SECONDS
    outcomes: Counter[str] = Counter()
    timeout = settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS
    with EndpointConnection(endpoint.url, timeout=timeout) as connection:
        while True:
            batch = _deliver_batch(endpoint, connection, now=now, deadline=deadline)
            outcomes.update(kind for kind, _ in batch)
            if not batch or _endpoint_failed(batch):
                break  # nothing due, or its retry is scheduled
            if deadline is not None and time.monotonic() >= deadline:
                transaction.on_commit(lambda: queue_endpoints([endpoint_id]), robust=True)
                outcomes["continued in a new task"] += 1
                break
    return ", ".join(f"{n} {kind}" for kind, n in outcomes.items()) or "nothing due"


def deliver(*, delivery_id: int, now: datetime | None = None) -> str:
    """One attempt at one delivery if it is due and first in its item's line; its outcome."""
    endpoint_id = Delivery.objects.filter(pk=delivery_id).values_list("endpoint_id", flat=True)
    endpoint = Endpoint.objects.filter(pk__in=endpoint_id, is_active=True).first()
    if endpoint is None:
        return _why_not(delivery_id, now or timezone.now())
    timeout = settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS
    with EndpointConnection(endpoint.url, timeout=timeout) as connection:
        batch = _deliver_batch(endpoint, connection, now=now, deadline=None, only=[delivery_id])
    if not batch:
        return _why_not(delivery_id, now or timezone.now())
    [(outcome, delivery)] = batch
    if delivery.state != Delivery.State.PENDING and delivery.item_id is not None:
        # Its item's next event, if any, can go now.
        successor = Delivery.objects.filter(
            endpoint_id=delivery.endpoint_id,
            item_id=delivery.item_id,
            state=Delivery.State.PENDING,
            event_id__gt=delivery.event_id,
        )
        if successor.exists():
            transaction.on_commit(lambda: queue_endpoints([endpoint.pk]), robust=True)
    return outcome


def _why_not(delivery_id: int, now: datetime) -> str:
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != Delivery.State.PENDING:
        return "not pending"
    if delivery.next_attempt_at > now:
        return "not due"
    if delivery.leased_until is not None and delivery.leased_until > now:
        return "in flight elsewhere"
    if not delivery.endpoint.is_active:
        return "endpoint inactive"
    earlier = Delivery.objects.filter(
        endpoint_id=delivery.endpoint_id,
        item_id=delivery.item_id,
        state=Delivery.State.PENDING,
        event_id__lt=delivery.event_id,
    )
    if delivery.item_id is not None and earlier.exists():
        return "waiting for an earlier event of the item"
    # Skipped while another worker was taking its lease (not committed when read).
    return "in flight elsewhere"


Outcome = tuple[str, Delivery]


def _ends_batch(status_code: int | None) -> bool:
    """Down, hanging (no answer) or gone (410): the rest of the batch is not worth a
    request each."""
    return status_code is None or status_code == 410


def _endpoint_failed(batch: list[Outcome]) -> bool:
    """The batch stopped at a delivery that ended it (see _send)."""
    return any(
        _ends_batch(delivery.last_status_code) for kind, delivery in batch if kind != "not sent"
    )


def _deliver_batch(
    endpoint: Endpoint,
    connection: EndpointConnection,
    *,
    now: datetime | None,
    deadline: float | None,
    only: Sequence[int] | None = None,
) -> list[Outcome]:
    """Lease, send and record one batch of the endpoint's due deliveries."""
    leased_at = now or timezone.now()
    lease = leased_at + lease_length()
    ids = lease_due(
        endpoint_id=endpoint.pk, now=leased_at, lease=lease, limit=BATCH_SIZE, only=only
    )
    if not ids:
        return []
    deliveries = list(Delivery.objects.filter(pk__in=ids).select_related("event").order_by("id"))
    results = _send(endpoint, connection, deliveries, deadline)
    return record_outcomes(
        endpoint=endpoint, deliveries=deliveries, results=results, lease=lease, now=now
    )


def _send(
    endpoint: Endpoint,
    connection: EndpointConnection,
    deliveries: list[Delivery],
    deadline: float | None,
) -> list[AttemptResult | None]:
    """Each delivery's result, in order; None for those not sent (the batch stopped)."""
    results: list[AttemptResult | None] = []
    stop = False
    for delivery in deliveries:
        # The first request of a batch goes whatever the clock says: every task progresses.
        late = results and deadline is not None and time.monotonic() >= deadline
        if stop or late:
            results.append(None)
            continue
        event = delivery.event
        body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False)
        headers = signed_headers(
            secret=endpoint.secret, msg_id=event.event_id, timestamp=int(time.time()), body=body
        )
        headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        result = connection.post(body=body.encode(), headers=headers)
        results.append(result)
        stop = _ends_batch(result.status_code)
    return results


def record_outcomes(
    *,
    endpoint: Endpoint,
    deliveries: list[Delivery],
    results: list[AttemptResult | None],
    lease: datetime,
    now: datetime | None = None,
) -> list[Outcome]:
    """Write a batch's outcomes in one statement (only where the lease is still ours)."""
    now = now or timezone.now()
    outcomes: list[Outcome] = []
    retry_at: dict[int, datetime] = {}  # the latest retry, per attempt count
    held_until: datetime | None = None  # when the endpoint failed, its unsent wait as long
    gone = False
    for delivery, result in zip(deliveries, results, strict=True):
        delivery.leased_until = None
        if result is None:
            # Not sent: the attempt the lease counted was not made.
            delivery.attempts -= 1
            if held_until is not None:
                delivery.next_attempt_at = max(delivery.next_attempt_at, held_until)
            outcomes.append(("not sent", delivery))
            continue
        delivery.last_status_code = result.status_code
        delivery.last_response = result.excerpt
        delivery.last_error = result.error
        if result.ok:
            delivery.state = Delivery.State.SUCCEEDED
            delivery.delivered_at = now
            outcome = "delivered"
        elif result.status_code == 410:
            delivery.state = Delivery.State.FAILED
            gone = True
            outcome = "gone: endpoint disabled"
        elif delivery.retry_until is not None and now >= delivery.retry_until:
            delivery.state = Delivery.State.FAILED
            outcome = f"failed after {delivery.attempts} attempts"
        else:
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
            retry_at[delivery.attempts] = max(
                delivery.next_attempt_at, retry_at.get(delivery.attempts, now)
            )
            outcome = f"retry: {result.status_code or result.error}"
            if result.status_code is None:
                held_until = delivery.next_attempt_at
        outcomes.append((outcome, delivery))
    with transaction.atomic():
        written = write_outcomes(deliveries, lease=lease)
        if gone:
            Endpoint.objects.filter(pk=endpoint.pk).update(
                is_active=False,
                disabled_reason=f"the receiver answered 410 Gone at {now:%Y-%m-%d %H:%M} UTC",
            )
        for at in retry_at.values():
            transaction.on_commit(partial(schedule_retry, endpoint.pk, at - now), robust=True)
    if written < len(deliveries):
        # The lease ran out before the outcomes were written: another worker has them.
        logger.warning(
            "endpoint %s: %d of %d outcomes not written (lease expired)",
            endpoint.pk,
            len(deliveries) - written,
            len(deliveries),
        )
    logger.debug("endpoint %s: %s", endpoint.pk, Counter(kind for kind, _ in outcomes))
    return outcomes


def due_endpoint_ids(*, now: datetime | None = None) -> list[int]:
    """Endpoints with a delivery whose task is overdue: lost, or its worker died.

    A grace period past next_attempt_at keeps the sweep from queuing endpoints whose
    deliveries are merely waiting behind a long queue; a lease in force means a worker
    is at it.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS)
    return list(
        Delivery.objects.filter(
            state=Delivery.State.PENDING, next_attempt_at__lte=cutoff, endpoint__is_active=True
        )
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .order_by("endpoint_id")
        .values_list("endpoint_id", flat=True)
        .distinct()
    )


def redeliver(*, delivery_ids: Iterable[int]) -> int:
    """Send again now (an admin's choice): back to pending, due now, the same event id."""
    ids = list(delivery_ids)
    now = timezone.now()
    with transaction.atomic():
        # A redelivery gets a retry window of its own.
        count = Delivery.objects.filter(pk__in=ids).update(
            state=Delivery.State.PENDING,
            next_attempt_at=now,
            leased_until=None,
            retry_until=retry_until(now),
        )
        endpoint_ids = set(
            Delivery.objects.filter(pk__in=ids).values_list("endpoint_id", flat=True)
        )
        transaction.on_commit(lambda: queue_endpoints(sorted(endpoint_ids)), robust=True)
    return count
