"""Rules: deterministic conditions applied before the model, an input of routing."""

from django.db import models

from triage.models import Category


class Rule(models.Model):
    """A deterministic rule applied before the model, in order; the first match decides."""

    class Condition(models.TextChoices):
        KEYWORDS = "keywords", "text contains any of the keywords"
        REGEX = "regex", "text matches the regular expression"
        METADATA = "metadata", "a metadata field equals one of the values"

    class Action(models.TextChoices):
        ROUTE = "route", "route to the category"
        REVIEW = "review", "send to review"

    name = models.SlugField(max_length=80, unique=True)
    position = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    is_active = models.BooleanField(default=True)
    condition = models.CharField(max_length=10, choices=Condition.choices)
    keywords = models.JSONField(
        default=list, blank=True, help_text="For keywords: matched case-insensitively."
    )
    pattern = models.CharField(
        max_length=500, blank=True, help_text="For regex: RE2 syntax (linear time)."
    )
    metadata_field = models.CharField(max_length=100, blank=True)
    metadata_values = models.JSONField(default=list, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    hits = models.PositiveBigIntegerField(default=0, editable=False)
    last_hit_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "actions_rule"
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(action="route") | models.Q(category__isnull=False),
                name="route_rule_has_a_category",
            )
        ]

    def __str__(self) -> str:
        return self.name
