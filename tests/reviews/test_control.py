"""An analyst's control over their work: skip, escalate, comment, change a decision, the lease."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.claims import ReviewError, claim_next_task, renew_lease
from reviews.corrections import change_decision, last_changeable_review
from reviews.decisions import submit_review
from reviews.handoffs import escalate_task, skip_task
from reviews.queue_summary import queue_summary
from tests.factories import make_item, make_labelled_history, make_prediction, make_task, make_user
from triage import training
from triage.access import SENIORS
from triage.actions.models import Event
from triage.classify import service
from triage.models import HandOff, Item, Review, ReviewTask, RoutingPolicy
from triage.monitoring.models import AuditSample
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db


def decided(user, task, slug, **kwargs):
    assert claim_next_task(user=user) == task
    return submit_review(task_id=task.pk, user=user, category_slug=slug, **kwargs)


# --- Skip ------------------------------------------------------------------------------


def test_a_skipped_task_goes_back_to_the_queue_for_others_but_not_for_me(categories, settings):
    settings.TRIAGE_SKIP_COOLDOWN_SECONDS = 600
    task = make_task()
    me, other = make_user(), make_user()
    assert claim_next_task(user=me) == task
    skip_task(task_id=task.pk, user=me, note="need the attachment")
    task.refresh_from_db()
    assert (task.claimed_by, task.lease_expires_at, task.completed_at) == (None, None, None)
    assert HandOff.objects.get(task=task).note == "need the attachment"
    assert claim_next_task(user=me) is None
    assert claim_next_task(user=other) == task


def test_a_skipped_task_comes_back_to_me_after_the_cooldown(categories, settings):
    settings.TRIAGE_SKIP_COOLDOWN_SECONDS = 600
    task = make_task()
    me = make_user()
    earlier = timezone.now() - timedelta(seconds=601)
    assert claim_next_task(user=me, now=earlier) == task
    skip_task(task_id=task.pk, user=me, now=earlier)
    assert claim_next_task(user=me) == task


def test_a_task_i_do_not_hold_cannot_be_skipped(categories):
    task = make_task()
    owner, me = make_user(), make_user()
    claim_next_task(user=owner)
    with pytest.raises(ReviewError, match="no longer yours"):
        skip_task(task_id=task.pk, user=me)
    assert not HandOff.objects.exists()
    task.refresh_from_db()
    assert task.claimed_by == owner


# --- Escalate --------------------------------------------------------------------------


def test_not_sure_sends_the_task_to_the_senior_queue(categories):
    task = make_task()
    analyst, other = make_user(), make_user()
    senior = make_user(group=SENIORS)
    assert claim_next_task(user=analyst) == task
    escalate_task(task_id=task.pk, user=analyst, note="could be fraud")
    task.refresh_from_db()
    assert (task.reason, task.senior_only, task.claimed_by) == ("escalated", True, None)
    assert claim_next_task(user=other) is None
    assert claim_next_task(user=senior) == task


def test_an_escalated_audit_stays_an_audit(categories):
    task = make_task(reason=ReviewTask.Reason.AUDIT_SAMPLE)
    analyst = make_user()
    claim_next_task(user=analyst)
    escalate_task(task_id=task.pk, user=analyst)
    task.refresh_from_db()
    assert (task.reason, task.senior_only) == (ReviewTask.Reason.AUDIT_SAMPLE, True)


def test_an_overlong_note_is_refused_and_nothing_changes(categories):
    task = make_task()
    analyst = make_user()
    claim_next_task(user=analyst)
    with pytest.raises(ReviewError, match="keep it under"):
        escalate_task(task_id=task.pk, user=analyst, note="x" * 2001)
    task.refresh_from_db()
    assert (task.senior_only, task.claimed_by) == (False, analyst)


# --- Comment, change (undo) ------------------------------------------------------------


def test_a_decision_keeps_its_comment(categories):
    task = make_task()
    review = decided(make_user(), task, "billing", comment="  customer already refunded  ")
    assert Review.objects.get(pk=review.pk).comment == "customer already refunded"


def test_changing_a_decision_corrects_the_item_the_example_and_emits_item_corrected(
    categories, settings
):
    settings.TRIAGE_UNDO_SECONDS = 600
    item = make_item("refund please", status=Item.Status.IN_REVIEW)
    make_prediction(item, categories["billing"], confidence=0.6, route="review")
    task = make_task(item)
    ann = make_user("ann")
    review = decided(ann, task, "outage")
    assert review.agreed_with_model is False

    change_decision(review_id=review.pk, user=ann, category_slug="billing", comment="misread")
    review.refresh_from_db()
    item.refresh_from_db()
    assert (review.category.slug, review.agreed_with_model, review.comment) == (
        "billing",
        True,
        "misread",
    )
    assert review.changed_at is not None
    assert (item.final_category.slug, item.decided_by) == ("billing", "user:ann")
    examples = TrainingExample.objects.filter(item=item)
    assert examples.count() == 2
    assert examples.active().get().category.slug == "billing"
    types = list(Event.objects.filter(item=item).order_by("id").values_list("type", flat=True))
    assert types == ["item.reviewed", "item.corrected"]
    corrected = Event.objects.get(item=item, type="item.corrected").payload["data"]
    assert (corrected["previous_category"], corrected["category"]) == ("outage", "billing")
    assert corrected["previous_decided_by"] == "user:ann"


def test_a_comment_only_change_emits_nothing(categories):
    task = make_task()
    ann = make_user()
    review = decided(ann, task, "billing")
    change_decision(review_id=review.pk, user=ann, category_slug="billing", comment="sure now")
    assert Review.objects.get(pk=review.pk).comment == "sure now"
    assert list(Event.objects.values_list("type", flat=True)) == ["item.reviewed"]
    assert TrainingExample.objects.filter(item=task.item).count() == 1


def test_an_undo_after_the_window_is_refused_and_nothing_changes(categories, settings):
    settings.TRIAGE_UNDO_SECONDS = 600
    task = make_task()
    ann = make_user()
    review = decided(ann, task, "outage")
    later = review.created_at + timedelta(seconds=601)
    with pytest.raises(ReviewError, match="can no longer be changed"):
        change_decision(review_id=review.pk, user=ann, category_slug="billing", now=later)
    assert Review.objects.get(pk=review.pk).category.slug == "outage"
    assert Event.objects.filter(type="item.corrected").count() == 0
    assert last_changeable_review(user=ann, now=later) is None
    assert last_changeable_review(user=ann) == review


def test_someone_elses_decision_cannot_be_changed(categories):
    task = make_task()
    review = decided(make_user(), task, "outage")
    with pytest.raises(ReviewError, match="not yours"):
        change_decision(review_id=review.pk, user=make_user(), category_slug="billing")


def test_a_change_to_an_unknown_category_is_refused(categories):
    task = make_task()
    ann = make_user()
    review = decided(ann, task, "outage")
    with pytest.raises(ReviewError, match="unknown category 'nope'"):
        change_decision(review_id=review.pk, user=ann, category_slug="nope", comment="x")
    review.refresh_from_db()
    assert (review.category.slug, review.comment) == ("outage", "")


def test_a_decision_replaced_by_a_later_one_cannot_be_changed(categories):
    item = make_item(status=Item.Status.IN_REVIEW)
    first_task = make_task(item)
    ann, bob = make_user(), make_user()
    first = decided(ann, first_task, "outage")
    second_task = make_task(item, reason=ReviewTask.Reason.SECOND_REVIEW)
    decided(bob, second_task, "billing")
    with pytest.raises(ReviewError, match="later decision"):
        change_decision(review_id=first.pk, user=ann, category_slug="other")


def test_changing_an_audit_re_records_its_verdict(categories):
    make_labelled_history(categories)
    training.retrain()
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "audit_rate": 1.0}
    )
    item = make_item("refund the double charge on my card invoice")
    service.classify_items(item_ids=[item.pk])
    task = ReviewTask.objects.get(item=item)
    assert task.reason == ReviewTask.Reason.AUDIT_SAMPLE
    ann = make_user()
    review = decided(ann, task, "outage")
    sample = AuditSample.objects.get(item=item)
    assert (sample.audited_category.slug, sample.correct) == ("outage", False)

    change_decision(review_id=review.pk, user=ann, category_slug="billing")
    sample.refresh_from_db()
    assert (sample.audited_category.slug, sample.correct) == ("billing", True)
    example = TrainingExample.objects.active().get(item=item)
    assert (example.category.slug, example.source) == ("billing", "audit")


# --- The lease ---------------------------------------------------------------------------


def test_the_heartbeat_extends_the_lease_of_a_task_i_hold(categories, settings):
    settings.TRIAGE_LEASE_SECONDS = 60
    task = make_task()
    me = make_user()
    start = timezone.now()
    claim_next_task(user=me, now=start)
    assert renew_lease(task_id=task.pk, user=me, now=start + timedelta(seconds=50))
    task.refresh_from_db()
    assert task.lease_expires_at == start + timedelta(seconds=110)


def test_the_heartbeat_of_a_task_someone_else_took_fails(categories, settings):
    settings.TRIAGE_LEASE_SECONDS = 60
    task = make_task()
    me, other = make_user(), make_user()
    start = timezone.now() - timedelta(seconds=120)
    claim_next_task(user=me, now=start)
    assert claim_next_task(user=other) == task  # my lease ran out
    assert not renew_lease(task_id=task.pk, user=me)
    task.refresh_from_db()
    assert task.claimed_by == other


# --- Filters and counts ------------------------------------------------------------------


def test_the_queue_filters_by_suggested_category_and_by_reason(categories):
    billing_item = make_item(status=Item.Status.IN_REVIEW)
    make_prediction(billing_item, categories["billing"], confidence=0.5, route="review")
    outage_item = make_item(status=Item.Status.IN_REVIEW)
    make_prediction(outage_item, categories["outage"], confidence=0.5, route="review")
    billing = make_task(billing_item, priority=0)
    outage = make_task(outage_item, priority=10)
    ruled = make_task(reason=ReviewTask.Reason.RULE, priority=20)
    me = make_user()
    assert claim_next_task(user=me, category="billing") == billing
    ReviewTask.objects.filter(pk=billing.pk).update(completed_at=timezone.now())
    assert claim_next_task(user=me, reason=ReviewTask.Reason.RULE) == ruled
    ReviewTask.objects.filter(pk=ruled.pk).update(completed_at=timezone.now())
    assert claim_next_task(user=me, reason=ReviewTask.Reason.COLD_START) is None
    assert claim_next_task(user=me) == outage


def test_a_reason_filter_never_offers_an_audit(categories):
    make_task(reason=ReviewTask.Reason.AUDIT_SAMPLE)
    me = make_user()
    assert claim_next_task(user=me, reason=ReviewTask.Reason.AUDIT_SAMPLE) is None
    assert claim_next_task(user=me) is not None


def test_the_queue_counts_add_up_to_the_open_tasks(categories, settings):
    settings.TRIAGE_SKIP_COOLDOWN_SECONDS = 600
    me, other = make_user(), make_user()
    held = make_task(priority=30)
    assert claim_next_task(user=other) == held
    make_task(senior_only=True, reason=ReviewTask.Reason.ESCALATED)
    skipped = make_task(priority=20)
    assert claim_next_task(user=me) == skipped
    skip_task(task_id=skipped.pk, user=me)
    cold = make_task(reason=ReviewTask.Reason.COLD_START)
    make_task(created_at=timezone.now() - timedelta(hours=3))

    summary = queue_summary(user=me, reason=ReviewTask.Reason.COLD_START)
    assert summary.open == 5
    assert (summary.held_by_others, summary.for_others, summary.skipped_by_me) == (1, 1, 1)
    assert (summary.outside_filters, summary.available, summary.held_by_me) == (1, 1, 0)
    parts = [
        summary.held_by_others,
        summary.for_others,
        summary.skipped_by_me,
        summary.outside_filters,
        summary.available,
        summary.held_by_me,
    ]
    assert sum(parts) == summary.open
    assert dict(summary.per_reason) == {
        "Model unsure": 3,
        "No trained model yet": 1,
        "Escalated": 1,
    }
    assert timezone.now() - summary.oldest >= timedelta(hours=3)
    assert claim_next_task(user=me, reason=ReviewTask.Reason.COLD_START) == cold
