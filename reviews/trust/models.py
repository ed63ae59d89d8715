"""What trust in reviewers rests on: second reviews, quarantines and held labels.

Registered with the reviews app through reviews.models (imported at its end).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ReviewCheck(models.Model):
    """A second, independent look at one decision, and how it ended.

    The second analyst decides the item blind (no model suggestion, no first decision).
    Agreement is recorded; a disagreement goes to the senior queue, whose decision is final.
    """

    class Why(models.TextChoices):
        RANDOM = "random", "random share of decisions"
        CONFIDENT_OVERTURN = "confident_overturn", "overturned a confident prediction"
        BULK = "bulk", "bulk decision"

    first_review = models.OneToOneField(
        "triage.Review", on_delete=models.CASCADE, related_name="check_of"
    )
    why = models.CharField(max_length=20, choices=Why.choices)
    second_task = models.OneToOneField(
        "triage.ReviewTask", on_delete=models.CASCADE, related_name="second_review_of"
    )
    second_review = models.ForeignKey(
        "triage.Review", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Null until the second review is in.
    agreed = models.BooleanField(null=True)
    senior_task = models.OneToOneField(
        "triage.ReviewTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="disagreement_of",
    )
    senior_review = models.ForeignKey(
        "triage.Review", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"check of review {self.first_review_id} ({self.why}): {self.agreed}"


class Quarantine(models.Model):
    """An analyst whose new labels are held out of training until an admin reviews them."""

    class Rule(models.TextChoices):
        LOW_AGREEMENT = "low_agreement", "agreement with second reviews below the floor"
        OVERTURNS = "overturns", "overturns confident predictions far more than peers"

    analyst = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="quarantines"
    )
    rule = models.CharField(max_length=20, choices=Rule.choices)
    # The figures the rule fired on (counts, rates and bounds), as shown to admins.
    evidence = models.JSONField(default=dict)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["analyst"],
                condition=models.Q(ended_at__isnull=True),
                name="one_open_quarantine_per_analyst",
            )
        ]

    def __str__(self) -> str:
        return f"quarantine of {self.analyst} ({self.rule})"


class HeldLabel(models.Model):
    """A quarantined analyst's training example, kept out of training and holdout.

    While held (or once rejected) the example is in no snapshot. Released, it is in
    every snapshot taken after release. held_at / resolved_at let a model version's
    training set be rebuilt exactly as it was (triage.training.snapshot).
    """

    class State(models.TextChoices):
        HELD = "held"
        RELEASED = "released"
        REJECTED = "rejected"

    quarantine = models.ForeignKey(Quarantine, on_delete=models.CASCADE, related_name="labels")
    review = models.OneToOneField(
        "triage.Review", on_delete=models.CASCADE, related_name="held_label"
    )
    example = models.OneToOneField(
        "triage.TrainingExample", on_delete=models.CASCADE, related_name="held_label"
    )
    # An audit decision's verdict, held with the label (AuditSample.held): out of live
    # precision and the drift watch until released; rejected, it is cleared for a new audit.
    audit_sample = models.OneToOneField(
        "triage.AuditSample",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="held_label",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.HELD)
    held_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"{self.state} label of review {self.review_id}"
