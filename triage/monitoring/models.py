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
    # A quarantined analyst's verdict: kept out of live precision and the drift watch until
    # an admin releases it (reviews.trust.quarantine); rejected, the verdict is cleared.
    held = models.BooleanField(default=False)

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

    watch_from starts the current segment: the statistic only counts outcomes of
    items sampled since then. It restarts when the rule in force changes (its
    fingerprint: triage.monitoring.segments) and when an admin resumes a suspended
    category; the closing segment's figures are kept in `previous`.
    """

    category = models.OneToOneField(
        "triage.Category", on_delete=models.CASCADE, related_name="watch"
    )
    watch_from = models.DateTimeField(default=timezone.now)
    statistic = models.FloatField(default=0.0, help_text="CUSUM log-likelihood ratio")
    outcomes = models.PositiveIntegerField(default=0, help_text="audits counted in the segment")
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension = models.JSONField(default=dict, blank=True, help_text="why it was suspended")
    fingerprint = models.CharField(max_length=16, blank=True, help_text="the rule in force")
    previous = models.JSONField(
        default=dict, blank=True, help_text="the last segment's live precision"
    )

    def __str__(self) -> str:
        state = "suspended" if self.suspended_at else "watching"
        return f"{self.category_id}: {state}"


class Alert(models.Model):
    """Something an admin must look at (e.g. the model could not score items).

    One open alert per kind: a repeat bumps its count and time instead of piling up.
    """

    kind = models.CharField(max_length=50)
    message = models.TextField()
    count = models.PositiveIntegerField(default=1)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "actions_alert"
        ordering = ["-last_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(resolved_at__isnull=True), name="one_open_alert"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"

    @classmethod
    def raise_alert(cls, *, kind: str, message: str, count: int = 1) -> "Alert":
        now = timezone.now()
        alert = cls.objects.select_for_update().filter(kind=kind, resolved_at__isnull=True).first()
        if alert is None:
            return cls.objects.create(
                kind=kind, message=message, count=count, first_at=now, last_at=now
            )
        alert.message = message
        alert.count += count
        alert.last_at = now
        alert.save(update_fields=["message", "count", "last_at"])
        return alert


class Tally(models.Model):
    """A count kept as things happen, so that reading it costs the same at any table size.

    Written in the same transaction as the rows it counts (triage.monitoring.tallies), so
    it is never ahead of or behind them; `manage.py reconcile_counters` checks it against
    a full count and repairs drift. One row per (kind, bucket, category, key):

    - prediction: bucket the hour of created_at, key the route;
    - review: bucket the hour of created_at, key whether the model agreed (yes, no,
      no_suggestion);
    - received: bucket the hour of received_at, key the source; category empty;
    - item: the items' current state, key "status:decider" (decider: model, rule, user,
      other or none), category the final category's slug or empty;
    - task: the open review tasks, key the reason; category empty.

    The first three also keep an all-time row at bucket TOTAL, so an all-time figure is
    one row per key, however long the history. `n` is how many rows have that key now;
    `gone` how many left it (deleted by retention, or moved to another key by a change).
    n + gone only grows: it is what Prometheus counters expose.
    """

    class Kind(models.TextChoices):
        PREDICTION = "prediction"
        REVIEW = "review"
        RECEIVED = "received"
        ITEM = "item"
        TASK = "task"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    bucket = models.DateTimeField()
    category = models.CharField(max_length=50, blank=True)  # a slug (SlugField's length)
    key = models.CharField(max_length=64, blank=True)
    n = models.BigIntegerField(default=0)
    gone = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "bucket", "category", "key"], name="tally_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.bucket:%Y-%m-%d %H:00} {self.category} {self.key}: {self.n}"
