"""What the audits found, and the drift watch's state per category.

Imported by triage.models so Django registers these models in the triage app.
Foreign keys are by name ("triage.Item") so this module imports nothing from
triage.models and there is no import cycle.
"""

from django.db import models
from django.utils import timezone


class AuditSample(models.Model):
    """An auto-actioned item drawn at random for a blind audit, and the audit's verdict.

    probability is the chance the item had of being drawn (its category's audit
    rate at the time). Rates differ between categories and over time (the
    weekly floor raises them for quiet categories), so live precision weights
    each verdict by 1/probability to stand for all auto-actions, not just the
    audited ones.
    """

    item = models.ForeignKey("triage.Item", on_delete=models.CASCADE, related_name="audits")
    prediction = models.OneToOneField(
        "triage.Prediction", on_delete=models.CASCADE, related_name="audit_sample"
    )
    # The model's label: the stratum the item was drawn from.
    category = models.ForeignKey("triage.Category", on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(
        "triage.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    probability = models.FloatField()
    sampled_at = models.DateTimeField(default=timezone.now)
    # Filled when the analyst decides: whether the auto-action was right, and the answer.
    audited_at = models.DateTimeField(null=True, blank=True)
    correct = models.BooleanField(null=True)
    audited_category = models.ForeignKey(
        "triage.Category", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["category", "audited_at"], name="audit_outcome_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(probability__gt=0, probability__lte=1),
                name="audit_probability_in_unit_interval",
            )
        ]

    def __str__(self) -> str:
        verdict = {None: "pending", True: "right", False: "wrong"}[self.correct]
        return f"audit of item {self.item_id} ({self.category_id}): {verdict}"


class CategoryWatch(models.Model):
    """The drift watch over one category's audit outcomes (see triage.monitoring.drift).

    watch_from starts the current segment: the statistic only counts outcomes
    audited since then. It restarts when a new champion is promoted and when an
    admin resumes a suspended category.
    """

    category = models.OneToOneField(
        "triage.Category", on_delete=models.CASCADE, related_name="watch"
    )
    watch_from = models.DateTimeField(default=timezone.now)
    statistic = models.FloatField(default=0.0, help_text="CUSUM log-likelihood ratio")
    outcomes = models.PositiveIntegerField(default=0, help_text="audits counted in the segment")
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension = models.JSONField(default=dict, blank=True, help_text="why it was suspended")

    def __str__(self) -> str:
        state = "suspended" if self.suspended_at else "watching"
        return f"{self.category_id}: {state}"
