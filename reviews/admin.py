from django.contrib import admin

from triage.admin_base import ReadOnlyAdmin

from .models import Review, ReviewTask, TrainingExample


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
