"""The review queue's records: tasks, the decisions made on them, and hand-offs."""

from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from triage.models.categories import Category
from triage.models.items import Item

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ReviewTaskQuerySet(models.QuerySet["ReviewTask"]):
    def open(self) -> "ReviewTaskQuerySet":
        return self.filter(completed_at__isnull=True)

    def claimable(self, now: datetime) -> "ReviewTaskQuerySet":
        """Open tasks nobody holds a live lease on."""
        return self.open().filter(
            models.Q(claimed_by__isnull=True) | models.Q(lease_expires_at__lt=now)
        )

    def offered_to(self, user: "User", *, senior: bool) -> "ReviewTaskQuerySet":
        """What this user may take: not the senior queue unless senior, never their own
        decision's second review."""
        tasks = self if senior else self.filter(senior_only=False)
        return tasks.exclude(excluded_reviewer=user)


class ReviewTask(models.Model):
    """An item waiting for a person's decision, claimed with an expiring lease."""

    class Reason(models.TextChoices):
        LOW_CONFIDENCE = "low_confidence"
        AUDIT_SAMPLE = "audit_sample"
        COLD_START = "cold_start"
        RULE = "rule"
        MODEL_UNAVAILABLE = "model_unavailable"
        CATEGORY_INACTIVE = "category_inactive"
        SUSPENDED = "suspended"
        # An analyst was not sure and sent it up; only seniors may take it.
        ESCALATED = "escalated"
        # A second, independent look at a decision (random share, confident overturns, bulk).
        SECOND_REVIEW = "second_review"
        # The second review disagreed with the first: a senior settles it.
        DISAGREEMENT = "disagreement"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_tasks")
    reason = models.CharField(max_length=30, choices=Reason.choices)
    # Higher first among non-audit tasks; audits are interleaved (see claim_next_task).
    priority = models.IntegerField(default=0)
    # The model's top confidence minus its second when the task was opened: the queue
    # order "smallest margin first" offers the smallest first (reviews.claims). 1 when the
    # model offered no ranking to learn from (no scores; second reviews), so such tasks come
    # last in that order and the oldest-first share reaches them. Audits are never
    # reordered. Not null, so one plain index serves SQLite and PostgreSQL alike.
    margin = models.FloatField(default=1.0)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The senior queue: only admins and senior analysts may claim these (reviews.roles.is_senior).
    senior_only = models.BooleanField(default=False)
    # Someone who must not take this task: the first reviewer, for a second review.
    excluded_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ReviewTaskQuerySet.as_manager()

    class Meta:
        db_table = "reviews_reviewtask"
        indexes = [
            models.Index(fields=["completed_at", "-priority", "id"]),
            # claim_next_task's lookups, which otherwise wade through history as it grows
            # (benchmarks/scale.py). The queue in claim order: PostgreSQL does not treat
            # "completed_at IS NULL" as fixing the first column of the index above, so it
            # sorted every open task for each claim.
            models.Index(
                fields=["-priority", "id"],
                condition=models.Q(completed_at__isnull=True),
                name="reviewtask_open_queue_idx",
            ),
            # The same queue, smallest margin first (RoutingPolicy.queue_order).
            models.Index(
                fields=["-priority", "margin", "id"],
                condition=models.Q(completed_at__isnull=True),
                name="reviewtask_open_margin_idx",
            ),
            # The oldest open audit, past every completed task before it; and an analyst's
            # held task, past every task they decided.
            models.Index(
                fields=["id"],
                condition=models.Q(completed_at__isnull=True, reason="audit_sample"),
                name="reviewtask_open_audit_idx",
            ),
            models.Index(
                fields=["claimed_by", "id"],
                condition=models.Q(completed_at__isnull=True),
                name="reviewtask_open_claimed_idx",
            ),
            # The oldest open task, for Prometheus, in one probe at any queue size.
            models.Index(
                fields=["created_at"],
                condition=models.Q(completed_at__isnull=True),
                name="reviewtask_open_created_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} for {self.item_id} ({self.reason})"


class Review(models.Model):
    task = models.OneToOneField(ReviewTask, on_delete=models.CASCADE, related_name="review")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    # Null when the model had no suggestion to agree with.
    agreed_with_model = models.BooleanField(null=True)
    seconds_spent = models.FloatField(null=True)
    # The analyst's note on their decision (optional).
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Decided together with other tasks from the similar-items panel (reviews.bulk).
    bulk = models.BooleanField(default=False)
    # The model's confidence in its own label when this decision was made (null: none),
    # so "overturned a confident prediction" is answerable later (reviews.trust).
    model_confidence = models.FloatField(null=True, blank=True)
    # Set when the reviewer changed the decision within TRIAGE_UNDO_SECONDS of making it.
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "reviews_review"

    def __str__(self) -> str:
        return f"{self.reviewer} → {self.category_id} on {self.item_id}"


class HandOff(models.Model):
    """An analyst gave a task back without deciding it: skipped, or escalated when unsure.

    A skip keeps the task away from that analyst for TRIAGE_SKIP_COOLDOWN_SECONDS; an
    escalation's note is shown to the senior who takes the task.
    """

    class Kind(models.TextChoices):
        SKIP = "skip"
        ESCALATE = "escalate"

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="hand_offs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "reviews_handoff"
        indexes = [models.Index(fields=["user", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.user} {self.kind} task {self.task_id}"
