"""Items, their cached embeddings, and the predictions made about them."""

from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.utils import timezone

from triage.models.categories import Category
from triage.models.versions import ModelVersion


class ItemQuerySet(models.QuerySet["Item"]):
    def pending(self) -> "ItemQuerySet":
        return self.filter(status=Item.Status.RECEIVED)


class Item(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        ROUTED = "routed"
        IN_REVIEW = "in_review"
        RESOLVED = "resolved"

    class Source(models.TextChoices):
        API = "api"
        IMPORT = "import"

    external_id = models.CharField(max_length=255, unique=True)
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.API)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    # No index on status itself: every routing decision changes it, and a status index (with
    # PostgreSQL's LIKE twin) made each of those writes update every index of the row. The
    # one status lookup that must be fast, "still pending", has the partial index below.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    final_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Who decided the final category: "model:<version>", "user:<username>" or "import".
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The stuck-item sweep's bookkeeping: how often it re-queued the item, and not before when.
    classify_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    classify_after = models.DateTimeField(null=True, blank=True, editable=False)
    # Starts of its classification that never finished: the worker died
    # (triage.classify.redelivery).
    classify_started = models.PositiveSmallIntegerField(default=0, editable=False)
    # Tombstones (triage.privacy): the text and metadata were removed everywhere, by
    # `manage.py forget` or by retention. The row stays so ingest of the same external id
    # stays idempotent and counts stay right.
    forgotten_at = models.DateTimeField(null=True, blank=True, editable=False)
    pruned_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ItemQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(status="received"),
                name="item_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def text_removed(self) -> bool:
        return self.forgotten_at is not None or self.pruned_at is not None

    def latest_prediction(self) -> "Prediction | None":
        return self.predictions.order_by("-id").first()


class Embedding(models.Model):
    """The encoder's vector for an item, so nothing is embedded twice."""

    # Not indexed on its own: one_embedding_per_encoder (item, encoder) serves item lookups.
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="embeddings", db_index=False
    )
    encoder = models.CharField(max_length=200)
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "encoder"], name="one_embedding_per_encoder")
        ]

    def __str__(self) -> str:
        return f"{self.encoder} vector for item {self.item_id}"


class Prediction(models.Model):
    """What the model said about an item, and what the routing policy did with it.

    model_version is empty for cold-start predictions (zero-shot by similarity
    to category descriptions, before any model is trained).
    """

    class Route(models.TextChoices):
        AUTO = "auto"
        REVIEW = "review"

    # No index of its own: prediction_item_latest_idx (item, -id) leads with the item and
    # serves every lookup by item (and the cascade from Item); a second index only cost
    # each classify write (benchmarks/classify_throughput.py).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="predictions", db_index=False
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    label = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    confidence = models.FloatField()
    scores = models.JSONField(help_text="Top categories and their calibrated confidences.")
    route = models.CharField(max_length=10, choices=Route.choices)
    reason = models.CharField(max_length=30)
    threshold = models.FloatField(null=True, blank=True)
    # Which rule produced the threshold: "threshold" (raw) or "target_precision",
    # and for the latter the certified precision lower bound at that threshold.
    mode = models.CharField(max_length=20, blank=True)
    lower_bound = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Per-category volumes over the last week set the audit rates on every classify
            # call, and live automation rates read a window: both filter on creation time.
            # Appending to a time index is cheap next to a full scan per call.
            models.Index(fields=["created_at"], name="prediction_created_idx"),
            # An item's latest prediction (ORDER BY id DESC LIMIT 1, per item: the card,
            # the cockpit's queue per category) read straight from one index entry. With
            # only the item_id index, stale statistics let the planner walk the primary
            # key backwards instead, through the whole table: 40 s on /cockpit/.
            models.Index(fields=["item", "-id"], name="prediction_item_latest_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_id} {self.confidence:.2f} -> {self.route}"


def among(ids: Sequence[int]) -> Any:
    """`ids` for an `__in` lookup. On PostgreSQL one array parameter: a list of 1,000
    parameters cost more to adapt and send than the query takes to run."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", (list(ids),))
    return list(ids)


def latest_predictions(item_ids: list[int]) -> dict[int, Prediction]:
    """Each item's newest prediction (the model's suggestion), in one query."""
    latest: dict[int, Prediction] = {}
    for prediction in (
        Prediction.objects.filter(item_id__in=among(item_ids))
        .select_related("label")
        .order_by("item_id", "-id")
    ):
        latest.setdefault(prediction.item_id, prediction)
    return latest
