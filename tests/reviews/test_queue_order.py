"""The queue's order: oldest first by default, or smallest margin first (what teaches the
model most) with a share of oldest-first claims; audits never reordered."""

import random

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from reviews.claims import claim_next_task
from tests.factories import make_item, make_labelled_history, make_task, make_user
from triage import training
from triage.classify import service
from triage.models import AuditLog, Prediction, ReviewTask, RoutingPolicy

pytestmark = pytest.mark.django_db

MARGIN = RoutingPolicy.QueueOrder.SMALLEST_MARGIN


def order(value: str) -> None:
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"queue_order": value})


def claims(n: int) -> list[ReviewTask]:
    """n claims, each by a new analyst (so none returns a task already held)."""
    return [claim_next_task(user=make_user(), rng=random.Random(k)) for k in range(n)]


@pytest.fixture
def tasks_by_margin(categories):
    """Oldest first: margins 0.5, 0.1, 0.9, 0.3."""
    return [make_task(margin=m) for m in (0.5, 0.1, 0.9, 0.3)]


def test_oldest_first_is_the_default(tasks_by_margin):
    assert RoutingPolicy.current().queue_order == RoutingPolicy.QueueOrder.OLDEST
    assert claims(4) == tasks_by_margin


@override_settings(TRIAGE_QUEUE_OLDEST_SHARE=0.0)
def test_smallest_margin_first_when_the_policy_says_so(tasks_by_margin):
    order(MARGIN)
    a, b, c, d = tasks_by_margin
    assert claims(4) == [b, d, a, c]


@override_settings(TRIAGE_QUEUE_OLDEST_SHARE=0.0)
def test_priority_still_comes_before_the_margin(categories):
    order(MARGIN)
    unsure_low = make_task(margin=0.0, priority=0)
    sure_high = make_task(margin=0.9, priority=10)
    assert claims(2) == [sure_high, unsure_low]


@override_settings(TRIAGE_QUEUE_OLDEST_SHARE=1.0)
def test_the_oldest_share_takes_the_oldest_task(tasks_by_margin):
    order(MARGIN)
    assert claims(4) == tasks_by_margin


@override_settings(TRIAGE_QUEUE_OLDEST_SHARE=0.5)
def test_a_share_of_claims_still_take_the_oldest(categories):
    """Some claims go oldest first even when newer tasks have smaller margins: the old task
    with the largest margin is not left to wait for the queue to empty."""
    order(MARGIN)
    oldest = make_task(margin=0.99)
    for _ in range(30):
        make_task(margin=0.01)
    first_ten = [claim_next_task(user=make_user(), rng=random.Random(k)) for k in range(10)]
    assert oldest in first_ten


@override_settings(TRIAGE_QUEUE_OLDEST_SHARE=0.0, TRIAGE_AUDIT_SHARE=1.0)
def test_audits_stay_oldest_first_whatever_the_order(categories):
    order(MARGIN)
    audits = [make_task(reason=ReviewTask.Reason.AUDIT_SAMPLE, margin=m) for m in (0.9, 0.1)]
    assert claims(2) == audits


def test_classify_records_the_margin_of_tasks_it_opens(categories):
    make_labelled_history(categories, copies=8)
    training.retrain()
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 1.0, "audit_rate": 0.0}
    )
    items = [make_item("refund for the server outage"), make_item("hello refund")]
    service.classify_items(item_ids=[i.pk for i in items])
    for item in items:
        scores = [s["confidence"] for s in Prediction.objects.get(item=item).scores]
        task = ReviewTask.objects.get(item=item)
        assert task.reason == ReviewTask.Reason.LOW_CONFIDENCE
        assert task.margin == pytest.approx(scores[0] - scores[1], abs=1e-5)
        assert 0 <= task.margin < 1


def test_audits_get_no_margin(categories):
    make_labelled_history(categories, copies=8)
    training.retrain()
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "audit_rate": 1.0}
    )
    item = make_item("server down error outage")
    service.classify_items(item_ids=[item.pk])
    task = ReviewTask.objects.get(item=item)
    assert (task.reason, task.margin) == (ReviewTask.Reason.AUDIT_SAMPLE, 1.0)


def test_the_policy_command_sets_the_queue_order_and_logs_it(categories, capsys):
    call_command("policy", "--queue-order", "smallest_margin")
    assert RoutingPolicy.current().queue_order == MARGIN
    entry = AuditLog.objects.filter(action="policy").latest("pk")
    assert entry.detail["after"] == {"queue_order": "smallest_margin"}
    assert "review queue: smallest margin first" in capsys.readouterr().out


def test_the_policy_command_refuses_an_unknown_order(categories):
    with pytest.raises(CommandError, match="queue_order|queue-order"):
        call_command("policy", "--queue-order", "newest")
