"""Model versions: trained heads over an encoder, and which one is the champion."""

from django.db import models
from django.utils import timezone

# Large JSON that serving, the review pages and the audit path never read: the champion is
# loaded without it (at 100,000 examples the evidence alone is megabytes per query).
# Who needs evidence loads it explicitly: triage.routing.evidence.load_evidence.
DEFERRED_ON_SERVING = ("holdout", "thresholds")


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def champion(self) -> "ModelVersion | None":
        return self.filter(status=ModelVersion.Status.CHAMPION).defer(*DEFERRED_ON_SERVING).first()


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
    # Stored as an .npz artifact beside the head (evidence_path, its sha256 checked on
    # load); `holdout` keeps the JSON of versions recorded before that, which the loader
    # still reads (triage.routing.evidence.load_evidence). Read it through the loader.
    holdout = models.JSONField(default=dict, blank=True)
    evidence_path = models.CharField(max_length=500, blank=True)
    evidence_sha256 = models.CharField(max_length=64, blank=True)
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
