"""Outbox events, webhook endpoints, their deliveries, and the rules applied before the model."""

import base64
import secrets
import uuid

from django.db import models
from django.utils import timezone

from triage.models import Category, Item


class Event(models.Model):
    """Something that happened to an item (or a category), written in the same transaction.

    This is the outbox: the row exists if and only if the decision committed, and
    deliveries and the events feed are read from it. `txid` is the writing
    transaction's id on PostgreSQL (0 on SQLite, which commits one writer at a time);
    the feed orders by (txid, id) and only reads below the oldest running transaction,
    so a poller never skips an event that commits late.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=50)
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField()
    txid = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["txid", "id"], name="event_feed_order_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def event_id(self) -> str:
        return f"evt_{self.public_id.hex}"


def generate_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Endpoint(models.Model):
    """A webhook destination: where events go, signed with a secret Triage generated."""

    url = models.URLField(max_length=500, unique=True, verbose_name="URL")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, default=generate_secret, editable=False)
    is_active = models.BooleanField(default=True)
    # Empty means every type / every category.
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types it receives; none ticked means all."
    )
    categories = models.ManyToManyField(
        Category,
        blank=True,
        related_name="+",
        help_text="Categories it receives; none selected means all.",
    )
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class Delivery(models.Model):
    """One event on its way to one endpoint: every attempt, the next try and the outcome.

    `leased_until` is the lease of an attempt in flight (triage.actions.leases): set
    before the request is sent, cleared when its outcome is written. A worker killed
    mid-batch leaves rows whose lease runs out, and they are sent again.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the event so per-item ordering is one indexed lookup.
    item_id = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    # Failures after this make the delivery `failed` (a day after it was created or redelivered).
    retry_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response = models.CharField(max_length=500, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_endpoint")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="delivery_due_idx",
            ),
            # An endpoint's batch: its due deliveries, oldest first.
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"],
                condition=models.Q(state="pending"),
                name="delivery_endpoint_due_idx",
            ),
            models.Index(
                fields=["endpoint", "item_id", "event"],
                condition=models.Q(state="pending"),
                name="delivery_item_order_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.state})"
