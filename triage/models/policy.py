"""The routing policy admins edit: targets, thresholds, audit rate, delta."""

from typing import Any

from django.core.validators import MinValueValidator
from django.db import models

from triage.models.categories import TARGET_RANGE, UNIT_INTERVAL, validate_delta
from triage.models.revisions import RevisionQuerySet, save_with_revision


class RoutingPolicy(models.Model):
    """The single, admin-edited policy that turns predictions into decisions.

    Per category, the first that is set decides: the category's target
    precision, its raw threshold, the global target precision, the global
    threshold. A target precision becomes a threshold certified on the champion's
    out-of-fold predictions at level delta, per category or pooled (see
    triage.routing.derive and triage.routing.certify).
    """

    class QueueOrder(models.TextChoices):
        OLDEST = "oldest", "oldest first"
        SMALLEST_MARGIN = (
            "smallest_margin",
            ("smallest margin first (what teaches the model most; a share oldest first)"),
        )

    class Certification(models.TextChoices):
        FALLBACK = (
            "fallback",
            ("per category, thin categories pooled (delta split across the scopes)"),
        )
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
        default=Certification.FALLBACK,
        help_text=(
            "Scope of the promise. The default certifies each category with enough evidence "
            "on its own and pools the thin ones that share a target, with delta split across "
            "the scopes. Pooled certifies one threshold over all categories that follow the "
            "global target."
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
    queue_order = models.CharField(
        max_length=20,
        choices=QueueOrder.choices,
        default=QueueOrder.OLDEST,
        help_text=(
            "Order of the non-audit review queue within a priority. Smallest margin first "
            "offers the tasks the model is least sure between its top two categories, which "
            "teach the next model most; TRIAGE_QUEUE_OLDEST_SHARE of claims still take the "
            "oldest. Audits stay a random, blind sample either way."
        ),
    )
    reroute_waiting = models.BooleanField(
        default=True,
        help_text=(
            "When a new champion takes over (promotion or roll back), score the items still "
            "waiting for a first decision because the model was unsure, and route those its "
            "rules now automate, as if they had just arrived. Tasks an analyst holds are left "
            "alone."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every write (triage.models.revisions): the cached routing policy's key.
    revision = models.PositiveBigIntegerField(default=0, editable=False)

    objects = RevisionQuerySet["RoutingPolicy"].as_manager()

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

    def save(self, *args: Any, **kwargs: Any) -> None:
        save_with_revision(self, super().save, args, kwargs)

    @classmethod
    def current(cls) -> "RoutingPolicy":
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy
