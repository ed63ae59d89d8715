"""Delivering events to webhook endpoints: signed, timed out, never redirected, retried.

At least once: an attempt is leased (its row's next_attempt_at pushed past the
timeout) and committed before the request is sent, so a worker killed in the middle
leaves a row the sweep sends again, with the same event id. A 2xx is success; a 410
disables the endpoint; anything else (a refused connection, a timeout, a redirect,
a 500) is retried with exponential backoff and jitter for TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS
(a day), then the delivery is `failed`. Each retry is queued with a countdown when the
attempt fails; beat's sweep re-queues any whose message was lost.

Per item and endpoint, events go in order: a delivery waits while an earlier event
of the same item is still pending for that endpoint, and is queued when it finishes.
"""

import http.client
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from triage.actions.endpoints import EndpointError, IPAddress, check_destination
from triage.actions.models import Delivery, Endpoint

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 500
USER_AGENT = "Triage-Webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(*, secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: id, timestamp and `v1,<base64 HMAC-SHA256>`."""
    signature = Webhook(secret).sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, tz=UTC), data=body
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; the Host header still names the host."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address, with SNI and certificate checks for the host."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> AttemptResult:
    """One POST. http.client never follows redirects: a 3xx is just a failed attempt.

    It connects to the addresses check_destination approved, in turn until one answers;
    the name is never resolved again (a second answer could point inside: rebinding).
    """
    try:
        destination = check_destination(url)
    except EndpointError as exc:
        return AttemptResult(None, error=str(exc))
    kind = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    deadline = time.monotonic() + timeout
    error = ""
    for address in destination.addresses:
        conn = kind(destination.host, destination.port, address=address, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError:
            error = f"timed out after {timeout:g}s connecting to {address}"
            conn.close()
            continue
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
            conn.close()
            continue
        try:
            return _exchange(conn, destination.path, body, headers, timeout, deadline)
        finally:
            conn.close()
    return AttemptResult(None, error=error or "no address to connect to")


def _exchange(
    conn: http.client.HTTPConnection,
    path: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    deadline: float,
) -> AttemptResult:
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        # The timeout bounds each socket read; the deadline bounds the whole answer.
        chunks, size = [], 0
        while size < EXCERPT_CHARS * 4 and time.monotonic() < deadline:
            chunk = response.read1(4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        excerpt = b"".join(chunks).decode("utf-8", errors="replace")[:EXCERPT_CHARS]
        return AttemptResult(response.status, excerpt=excerpt)
    except TimeoutError:
        return AttemptResult(None, error=f"timed out after {timeout:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])


def retry_until(start: datetime) -> datetime:
    return start + timedelta(seconds=settings.TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS)


# The task that makes one attempt (triage.actions.tasks.deliver), named rather than imported:
# the task module imports this one.
DELIVER_TASK = "triage.actions.tasks.deliver"


def queue_deliveries(delivery_ids: Iterable[int]) -> None:
    deliver_one = current_app.signature(DELIVER_TASK)
    for delivery_id in delivery_ids:
        deliver_one.delay(delivery_id)


# A countdown task may run a little before next_attempt_at on another clock: it would
# find the delivery not due and leave it to the sweep.
RETRY_MARGIN = timedelta(seconds=1)


def schedule_retry(delivery_id: int, delay: timedelta) -> None:
    """Queue the next attempt for when it is due (a countdown), so retries do not wait
    for beat's sweep (which remains the safety net for a lost message).

    Not with in-process tasks (the embedded default, no broker): they would run at once,
    whatever the countdown, and retry in a tight loop.
    """
    if current_app.conf.task_always_eager:
        return
    current_app.signature(DELIVER_TASK).apply_async(
        (delivery_id,), countdown=(delay + RETRY_MARGIN).total_seconds()
    )


def deliver(*, delivery_id: int, now: datetime | None = None) -> str:
    """Make one attempt if the delivery is due and first in its item's line; say what happened."""
    now = now or timezone.now()
    timeout = settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS
    earlier_of_item = Delivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        item_id=OuterRef("item_id"),
        state=Delivery.State.PENDING,
        event_id__lt=OuterRef("event_id"),
    )
    # Taking the lease is one conditional UPDATE: of two workers holding the same task,
    # only one matches the row. Nobody else sends it until the attempt had time to finish.
    leased = (
        Delivery.objects.filter(
            pk=delivery_id,
            state=Delivery.State.PENDING,
            next_attempt_at__lte=now,
        )
        # Subqueries, not a join: with a join Django would update "WHERE id IN (…)" and
        # PostgreSQL would not re-check state and next_attempt_at against a concurrent
        # lease. Written this way both are re-checked on the locked row.
        .filter(Exists(Endpoint.objects.filter(pk=OuterRef("endpoint_id"), is_active=True)))
        .exclude(Exists(earlier_of_item))
        .update(
            attempts=F("attempts") + 1,
            last_attempt_at=now,
            next_attempt_at=now + timedelta(seconds=timeout + 30),
        )
    )
    if not leased:
        return _why_not(delivery_id, now)
    delivery = Delivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    event, endpoint = delivery.event, delivery.endpoint
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False)
    headers = signed_headers(
        secret=endpoint.secret, msg_id=event.event_id, timestamp=int(time.time()), body=body
    )
    headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    result = post(endpoint.url, body=body.encode(), headers=headers, timeout=timeout)
    return record_attempt(delivery=delivery, result=result)


def _why_not(delivery_id: int, now: datetime) -> str:
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != Delivery.State.PENDING:
        return "not pending"
    if delivery.next_attempt_at > now:
        return "not due"
    if not delivery.endpoint.is_active:
        return "endpoint inactive"
    return "waiting for an earlier event of the item"


def record_attempt(*, delivery: Delivery, result: AttemptResult) -> str:
    now = timezone.now()
    fields: dict[str, object] = {
        "last_status_code": result.status_code,
        "last_response": result.excerpt,
        "last_error": result.error,
    }
    if result.ok:
        fields |= {"state": Delivery.State.SUCCEEDED, "delivered_at": now}
        outcome = "delivered"
    elif result.status_code == 410:
        fields |= {"state": Delivery.State.FAILED}
        outcome = "gone: endpoint disabled"
    elif delivery.retry_until is not None and now >= delivery.retry_until:
        fields |= {"state": Delivery.State.FAILED}
        outcome = f"failed after {delivery.attempts} attempts"
    else:
        delay = retry_delay(delivery.attempts)
        fields |= {"next_attempt_at": now + delay}
        outcome = f"retry: {result.status_code or result.error}"
        transaction.on_commit(lambda: schedule_retry(delivery.pk, delay), robust=True)
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.PENDING).update(**fields)
        if result.status_code == 410:
            Endpoint.objects.filter(pk=delivery.endpoint_id).update(
                is_active=False,
                disabled_reason=f"the receiver answered 410 Gone at {now:%Y-%m-%d %H:%M} UTC",
            )
        elif fields.get("state") is not None and delivery.item_id is not None:
            successor = (
                Delivery.objects.filter(
                    endpoint_id=delivery.endpoint_id,
                    item_id=delivery.item_id,
                    state=Delivery.State.PENDING,
                    event_id__gt=delivery.event_id,
                )
                .order_by("event_id")
                .values_list("pk", flat=True)
                .first()
            )
            if successor is not None:
                transaction.on_commit(lambda: queue_deliveries([successor]), robust=True)
    logger.debug("delivery %s of %s: %s", delivery.pk, delivery.event.event_id, outcome)
    return outcome


def due_delivery_ids(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending deliveries whose queued task is overdue: lost, or its worker died.

    A grace period past next_attempt_at keeps the sweep from re-queuing deliveries
    that are merely waiting behind a long queue.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS)
    return list(
        Delivery.objects.filter(
            state=Delivery.State.PENDING, next_attempt_at__lte=cutoff, endpoint__is_active=True
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def redeliver(*, delivery_ids: Iterable[int]) -> int:
    """Send again now (an admin's choice): back to pending, due now, the same event id."""
    ids = list(delivery_ids)
    now = timezone.now()
    with transaction.atomic():
        # A redelivery gets a retry window of its own.
        count = Delivery.objects.filter(pk__in=ids).update(
            state=Delivery.State.PENDING, next_attempt_at=now, retry_until=retry_until(now)
        )
        transaction.on_commit(lambda: queue_deliveries(ids), robust=True)
    return count
