"""Categories: the routes an item can take, with their keys on the review card."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from triage.models.revisions import RevisionQuerySet, save_with_revision

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
    # Bumped by every write (triage.models.revisions): the cached routing policy's key.
    revision = models.PositiveBigIntegerField(default=0, editable=False)

    objects = RevisionQuerySet["Category"].as_manager()

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
        save_with_revision(self, super().save, args, kwargs)

    def is_in_use(self) -> bool:
        """Items, predictions or model labels refer to it by slug."""
        if self.pk is None:
            return False
        # By name: items and predictions refer to categories, not the reverse.
        Item = self._meta.apps.get_model("triage", "Item")
        Prediction = self._meta.apps.get_model("triage", "Prediction")
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
