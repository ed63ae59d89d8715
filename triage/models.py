from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

UNIT_INTERVAL = [MinValueValidator(0.0), MaxValueValidator(1.0)]


def validate_target(value: float) -> None:
    if not 0 < value <= 1:
        raise ValidationError(
            "a target precision must be above 0 and at most 1 (e.g. 0.95), got %(value)s",
            params={"value": value},
        )


def validate_delta(value: float) -> None:
    if not 0 < value < 0.5:
        raise ValidationError(
            "delta (the chance the guarantee fails) must be above 0 and below 0.5 "
            "(e.g. 0.05), got %(value)s",
            params={"value": value},
        )


TARGET_RANGE = [validate_target]

# Keys the review card keeps for itself: skip, undo, escalate ("not sure"), comment, help,
# and the type-ahead filter. A category may take any other digit or lowercase letter.
RESERVED_KEYS = frozenset("suec?/")
# New categories get the first free key of this order: digits first, as analysts expect.
DEFAULT_HOTKEYS = "1234567890" + "".join(
    k for k in "abcdefghijklmnopqrstuvwxyz" if k not in RESERVED_KEYS
)


def validate_hotkey(value: str) -> None:
    if value and value not in DEFAULT_HOTKEYS:
        reserved = ", ".join(sorted(RESERVED_KEYS))
        raise ValidationError(
            "a hotkey is one digit or lowercase letter, not one the review card keeps for "
            "itself (%(reserved)s); got %(value)r",
            params={"value": value, "reserved": reserved},
        )


class Category(models.Model):
    """A route: where an item goes once it is decided.

    The description is also what cold-start zero-shot classification compares
    items against, so it should read like the items that belong here.
    """

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    action_queue = models.CharField(
        max_length=100, blank=True, help_text="Destination queue for routed items."
    )
    webhook_url = models.URLField(blank=True)
    threshold = models.FloatField(
        null=True,
        blank=True,
        validators=UNIT_INTERVAL,
        help_text="Raw confidence threshold for this category (0–1). Empty: use the global policy.",
    )
    target_precision = models.FloatField(
        null=True,
        blank=True,
        validators=TARGET_RANGE,
        help_text=(
            "Target precision for this category (above 0, at most 1). The threshold is then "
            "certified on out-of-fold predictions and wins over a raw threshold."
        ),
    )
    is_active = models.BooleanField(default=True)
    # What analysts press to choose this category, and where its button sits on the card.
    # Stable: a key is stored, not derived from the order, so adding a category never
    # moves the keys people have learnt.
    hotkey = models.CharField(
        max_length=1,
        blank=True,
        validators=[validate_hotkey],
        help_text="One digit or lowercase letter (not s, u, e, c). Empty: the first free key.",
    )
    display_order = models.PositiveIntegerField(
        default=0,
        help_text="Where its button sits on the review card: lowest first, ties in creation order.",
    )

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(
                fields=["hotkey"],
                condition=~models.Q(hotkey=""),
                name="category_hotkey_unique",
                violation_error_message="another category already uses this hotkey",
            ),
            models.CheckConstraint(
                condition=models.Q(threshold__isnull=True)
                | models.Q(threshold__gte=0, threshold__lte=1),
                name="category_threshold_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.hotkey:
            self.hotkey = first_free_hotkey(exclude_pk=self.pk)
        super().save(*args, **kwargs)

    def is_in_use(self) -> bool:
        """Items, predictions or model labels refer to it by slug."""
        if self.pk is None:
            return False
        return (
            Item.objects.filter(final_category_id=self.pk).exists()
            or Prediction.objects.filter(label_id=self.pk).exists()
        )

    def clean(self) -> None:
        # Model versions label by slug, and webhooks and the feed carry it: renaming it
        # under existing items would silently change what those labels mean.
        if self.pk is None:
            return
        stored = Category.objects.filter(pk=self.pk).values_list("slug", flat=True).first()
        if stored is not None and stored != self.slug and self.is_in_use():
            raise ValidationError(
                {"slug": f"items already use the slug {stored!r}; it cannot change"}
            )


def first_free_hotkey(*, exclude_pk: int | None = None) -> str:
    """The first default key no other category uses ("" once all are taken)."""
    others = (
        Category.objects.all() if exclude_pk is None else Category.objects.exclude(pk=exclude_pk)
    )
    taken = set(others.values_list("hotkey", flat=True))
    return next((k for k in DEFAULT_HOTKEYS if k not in taken), "")


class RoutingPolicy(models.Model):
    """The single, admin-edited policy that turns predictions into decisions.

    Per category, the first that is set decides: the category's target
    precision, its raw threshold, the global target precision, the global
    threshold. A target precision becomes a threshold certified on the champion's
    out-of-fold predictions at level delta, per category or pooled (see
    triage.policy and triage.thresholds).
    """

    class Certification(models.TextChoices):
        PER_CATEGORY = "per_category", "per category (each category's promise on its own)"
        ALL_CATEGORIES = "all_categories", "all categories at once (delta split across them)"
        POOLED = "pooled", "pooled (one threshold; the promise covers auto-actions as a whole)"

    target_precision = models.FloatField(
        null=True,
        blank=True,
        validators=TARGET_RANGE,
        help_text=(
            "Global target precision, above 0 and at most 1, e.g. 0.95. When set, each "
            "category's threshold is certified on out-of-fold predictions: the precision of "
            "its auto-actions is at least the target with probability 1 − delta."
        ),
    )
    delta = models.FloatField(
        default=0.05,
        validators=[validate_delta],
        help_text=(
            "Chance the certified guarantee fails (one-sided), above 0 and below 0.5; 0.05 means "
            "the promise holds with 95% confidence."
        ),
    )
    certification = models.CharField(
        max_length=20,
        choices=Certification.choices,
        default=Certification.PER_CATEGORY,
        help_text=(
            "Scope of the promise. Pooled certifies one threshold over all categories that "
            "follow the global target: use it where per-category evidence is thin."
        ),
    )
    min_support = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Fewest evidence predictions a certified threshold may rest on.",
    )
    default_threshold = models.FloatField(
        default=0.9,
        validators=UNIT_INTERVAL,
        help_text="Confidence at or above which an item is auto-routed (0–1).",
    )
    audit_rate = models.FloatField(
        default=0.05,
        validators=UNIT_INTERVAL,
        help_text="Share of auto-routed items also sent to review, to measure real precision.",
    )
    audit_floor = models.PositiveIntegerField(
        default=20,
        help_text=(
            "Fewest audits per category per week: a quiet category is audited at a higher "
            "rate (up to every auto-action) so its live precision rests on enough evidence."
        ),
    )
    blind_review = models.BooleanField(
        default=False,
        help_text=(
            "Hide the model's suggestion on every review task, not only on audits, so no "
            "decision is anchored on the model's answer."
        ),
    )
    second_review_confidence = models.FloatField(
        null=True,
        blank=True,
        default=0.9,
        validators=UNIT_INTERVAL,
        help_text=(
            "An analyst's decision that overturns a model prediction at or above this "
            "confidence (0–1) always gets a second, independent review. Empty: never for "
            "this reason (random and bulk second reviews still happen)."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "routing policy"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(default_threshold__gte=0, default_threshold__lte=1),
                name="policy_threshold_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(audit_rate__gte=0, audit_rate__lte=1),
                name="policy_audit_rate_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(delta__gt=0, delta__lt=0.5),
                name="policy_delta_in_open_half_interval",
            ),
        ]

    def __str__(self) -> str:
        rule = (
            f"target precision {self.target_precision:.1%}"
            if self.target_precision is not None
            else f"threshold {self.default_threshold:.2f}"
        )
        return f"{rule}, audit {self.audit_rate:.0%}"

    @classmethod
    def current(cls) -> "RoutingPolicy":
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy


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
    # Starts of its classification that never finished: the worker died (triage.redelivery).
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


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def champion(self) -> "ModelVersion | None":
        return self.filter(status=ModelVersion.Status.CHAMPION).first()


class ModelVersion(models.Model):
    """One trained classifier: a head over an encoder's embeddings.

    The artifact is a safetensors file whose sha256 is checked on load. Only one
    version is the champion at a time; it is the one that classifies new items.
    A candidate becomes champion only through the promotion gate (see
    training.retrain) or an admin's explicit promote / roll back.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        CHAMPION = "champion"
        REJECTED = "rejected"
        RETIRED = "retired"

    class Kind(models.TextChoices):
        HEAD = "head", "linear head over encoder embeddings"
        SEQUENCE_CLASSIFIER = "sequence_classifier", "ready sequence-classification model"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    kind = models.CharField(max_length=30, choices=Kind.choices, default=Kind.HEAD)
    encoder = models.CharField(max_length=200, help_text="The embedding space (or model) id.")
    encoder_spec = models.JSONField(
        default=dict, help_text="How to rebuild the encoder this version serves with."
    )
    labels = models.JSONField(help_text="Category slugs, in the head's output order.")
    artifact_path = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    temperature = models.FloatField(default=1.0)
    metrics = models.JSONField(default=dict, blank=True)
    # Calibrated predictions on labelled examples this version did not train on (for a
    # head: out-of-fold over all examples): the evidence thresholds are certified on.
    holdout = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(
        default=dict, blank=True, help_text="Thresholds derived when this version was created."
    )
    training_snapshot = models.JSONField(default=dict, blank=True)
    gate_decision = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    promoted_at = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="champion"),
                name="at_most_one_champion",
            )
        ]

    def __str__(self) -> str:
        return f"v{self.pk} ({self.status})"

    @property
    def macro_f1(self) -> float | None:
        value = self.metrics.get("macro_f1")
        return float(value) if value is not None else None


class Prediction(models.Model):
    """What the model said about an item, and what the routing policy did with it.

    model_version is empty for cold-start predictions (zero-shot by similarity
    to category descriptions, before any model is trained).
    """

    class Route(models.TextChoices):
        AUTO = "auto"
        REVIEW = "review"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
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
            models.Index(fields=["created_at"], name="prediction_created_idx")
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_id} {self.confidence:.2f} -> {self.route}"


# Registered with this app; defined apart to keep this file about the core objects.
from .api_tokens import ApiToken, default_scopes, hash_token  # noqa: E402
from .audit_log import AuditLog, actor_name, snapshot  # noqa: E402
from .monitoring.models import AuditSample, CategoryWatch  # noqa: E402
from .privacy.models import MaskPattern  # noqa: E402

__all__ = [
    "ApiToken",
    "default_scopes",
    "hash_token",
    "AuditLog",
    "AuditSample",
    "actor_name",
    "snapshot",
    "Category",
    "CategoryWatch",
    "Embedding",
    "Item",
    "MaskPattern",
    "ModelVersion",
    "Prediction",
    "RoutingPolicy",
]
