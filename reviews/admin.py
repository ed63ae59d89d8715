from django.contrib import admin

from reviews.trust.models import HeldLabel, Quarantine, ReviewCheck
from triage.admin.base import ReadOnlyAdmin
from triage.models import Review, ReviewTask
from triage.training.models import TrainingExample


@admin.register(ReviewTask)
class ReviewTaskAdmin(ReadOnlyAdmin[ReviewTask]):
    list_display = [
        "pk",
        "item",
        "reason",
        "priority",
        "claimed_by",
        "lease_expires_at",
        "completed_at",
    ]
    list_filter = ["reason"]
    raw_id_fields = ["item"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin[Review]):
    list_display = [
        "item",
        "reviewer",
        "category",
        "agreed_with_model",
        "seconds_spent",
        "created_at",
    ]
    raw_id_fields = ["item", "task"]


@admin.register(TrainingExample)
class TrainingExampleAdmin(ReadOnlyAdmin[TrainingExample]):
    list_display = ["pk", "category", "source", "split", "created_at", "superseded_at"]
    list_filter = ["source", "split", "category"]
    raw_id_fields = ["item"]


@admin.register(ReviewCheck)
class ReviewCheckAdmin(ReadOnlyAdmin[ReviewCheck]):
    list_display = ["pk", "first_review", "why", "agreed", "senior_review", "created_at"]
    list_filter = ["why", "agreed"]
    raw_id_fields = ["first_review", "second_task", "second_review", "senior_task", "senior_review"]


@admin.register(Quarantine)
class QuarantineAdmin(ReadOnlyAdmin[Quarantine]):
    list_display = ["pk", "analyst", "rule", "started_at", "ended_at", "ended_by"]
    list_filter = ["rule"]


@admin.register(HeldLabel)
class HeldLabelAdmin(ReadOnlyAdmin[HeldLabel]):
    list_display = ["pk", "quarantine", "review", "state", "held_at", "resolved_at", "resolved_by"]
    list_filter = ["state"]
    raw_id_fields = ["review", "example"]
