"""Events: outbox rows written in the decision's own transaction.

`emit` (one event) and `emit_many` (a batch) are the only way other code records
an event. They must be called inside the transaction that makes the decision: the
event and its deliveries then commit or roll back with it, and each endpoint's
delivery task is queued only after the commit.

Payload, schema version 1 (what a webhook body and a feed entry hold):

    {
      "id": "evt_…",            unique; the same on every retry (the webhook-id header)
      "type": "item.routed",
      "schema_version": 1,
      "timestamp": "2026-…Z",   when the decision was made (ISO 8601, UTC)
      "data": {…}               per type, below
    }

Item events (`item.routed`, `item.reviewed`, `item.corrected`) carry in `data`:
item {external_id, text, metadata, received_at}, category (slug), action_queue,
decided_by ("model:v3", "rule:<name>", "user:<name>"), confidence, model_version,
reason (above_threshold, audit_sample, rule, …) and rule (its name, or null).
`item.reviewed` adds agreed_with_model (null when the model made no suggestion),
model_label and audit; `item.corrected` adds previous_category and
previous_decided_by. Other types (e.g. `policy.suspended`) carry what their
emitter passes; the type set is open: any lower-case `noun.verb` name is valid.
"""

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from triage.actions.delivery import queue_endpoints, retry_until
from triage.actions.models import Delivery, Endpoint, Event
from triage.models import Category, Item
from triage.models.bulk import insert_rows

SCHEMA_VERSION = 1
TYPE_PATTERN = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


class EventType(StrEnum):
    """The types Triage emits today; endpoints can subscribe to any of them."""

    ITEM_ROUTED = "item.routed"
    ITEM_REVIEWED = "item.reviewed"
    ITEM_CORRECTED = "item.corrected"
    POLICY_SUSPENDED = "policy.suspended"


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: Mapping[str, Any]
    item_id: int | None = None
    # The category the event is about, for endpoints that filter by category.
    category_id: int | None = None
    occurred_at: datetime | None = None


def current_txid() -> int:
    """The writing transaction's id on PostgreSQL (see Event); 0 elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def emit(
    event_type: str,
    *,
    item: Item | None = None,
    category: Category | None = None,
    data: Mapping[str, Any],
) -> Event:
    """Record one event in the current transaction; it is delivered after the commit."""
    (event,) = emit_many(
        [
            NewEvent(
                type=event_type,
                data=data,
                item_id=item.pk if item is not None else None,
                category_id=category.pk if category is not None else None,
            )
        ]
    )
    return event


def emit_many(new_events: Sequence[NewEvent]) -> list[Event]:
    """Record events and their deliveries (one per matching endpoint) in one go."""
    if not new_events:
        return []
    if not connection.in_atomic_block:
        raise RuntimeError("emit events inside the transaction that makes the decision")
    for new in new_events:
        if not TYPE_PATTERN.match(new.type):
            raise ValueError(f"event type {new.type!r} is not a lower-case 'noun.verb' name")
    txid = current_txid()
    now = timezone.now()
    events = []
    for new in new_events:
        public_id = uuid.uuid4()
        occurred = new.occurred_at or now
        events.append(
            Event(
                public_id=public_id,
                type=new.type,
                item_id=new.item_id,
                schema_version=SCHEMA_VERSION,
                payload={
                    "id": f"evt_{public_id.hex}",
                    "type": new.type,
                    "schema_version": SCHEMA_VERSION,
                    "timestamp": occurred.isoformat().replace("+00:00", "Z"),
                    "data": dict(new.data),
                },
                txid=txid,
                created_at=now,
            )
        )
    insert_rows(events)
    deliveries = _fan_out(events, new_events, now)
    if deliveries:
        # One task per endpoint, whatever the number of events: it sends them in batches.
        endpoint_ids = sorted({d.endpoint_id for d in deliveries})
        transaction.on_commit(lambda: queue_endpoints(endpoint_ids), robust=True)
    return events


def _fan_out(events: list[Event], new_events: Sequence[NewEvent], now: datetime) -> list[Delivery]:
    endpoints = list(Endpoint.objects.filter(is_active=True).prefetch_related("categories"))
    if not endpoints:
        return []
    filters = [
        (endpoint, set(endpoint.event_types), {c.pk for c in endpoint.categories.all()})
        for endpoint in endpoints
    ]
    deliveries = [
        Delivery(
            event=event,
            endpoint=endpoint,
            item_id=new.item_id,
            next_attempt_at=now,
            retry_until=retry_until(now),
            created_at=now,
        )
        for event, new in zip(events, new_events, strict=True)
        for endpoint, types, categories in filters
        if (not types or new.type in types) and (not categories or new.category_id in categories)
    ]
    # With their ids: by COPY on PostgreSQL, RETURNING on SQLite 3.35+.
    return list(insert_rows(deliveries))


def item_data(
    item: Item,
    *,
    category: Category | None,
    decided_by: str,
    reason: str,
    confidence: float | None = None,
    model_version: int | None = None,
    rule: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The `data` of an item event (schema version 1, see the module docstring)."""
    return {
        "item": {
            "external_id": item.external_id,
            "text": item.text,
            "metadata": item.metadata,
            "received_at": item.received_at.isoformat().replace("+00:00", "Z"),
        },
        "category": category.slug if category else None,
        "action_queue": category.action_queue if category else None,
        "decided_by": decided_by,
        "confidence": round(confidence, 6) if confidence is not None else None,
        "model_version": model_version,
        "reason": reason,
        "rule": rule,
        **extra,
    }
