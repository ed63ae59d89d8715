"""Segments follow the rule in force: verdicts gathered under one rule never judge another."""

from datetime import timedelta

import pytest
from django.utils import timezone

from triage.cockpit.preview import Setting
from triage.cockpit.services import save_category_setting
from triage.models import Category, RoutingPolicy
from triage.monitoring.live import live_report
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.segments import rule_fingerprint
from triage.monitoring.watch import check_category

from ..factories import make_item, make_prediction

BASE = {"champion_id": 3, "target": 0.9, "threshold": 0.8, "scope": "category", "active": True}


@pytest.mark.parametrize(
    "change",
    [
        {"champion_id": 4},
        {"target": 0.97},
        {"threshold": 0.85},
        {"scope": "pooled"},
        {"active": False},
    ],
)
def test_any_change_of_the_rule_in_force_changes_its_fingerprint(change):
    assert rule_fingerprint(**BASE) == rule_fingerprint(**dict(BASE))
    assert rule_fingerprint(**(BASE | change)) != rule_fingerprint(**BASE)


def _verdicts(category: Category, results: list[bool], *, start, step=timedelta(seconds=1)):
    for i, correct in enumerate(results):
        at = start + i * step
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, category, created_at=at),
            category=category,
            probability=1.0,
            sampled_at=at,
            audited_at=at,
            correct=correct,
        )


@pytest.mark.django_db
def test_raising_the_target_does_not_judge_the_old_rules_verdicts_against_it(categories):
    """Issue 18, item 1: billing is healthy at 93% against a 0.90 target (one wrong in
    fourteen). The admin raises its target to 0.97. The watch used to count the 350
    verdicts of the 0.90 rule against 0.97 and suspend billing; now the segment restarts
    with the rule, and the old segment's figures are kept beside the new one's."""
    billing = categories["billing"]
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.90})
    start = timezone.now() - timedelta(hours=2)
    CategoryWatch.objects.filter(category=billing).delete()
    check_category(category=billing, now=start - timedelta(minutes=1))  # watching from here
    _verdicts(billing, [i % 14 != 13 for i in range(350)], start=start)
    before = check_category(category=billing)
    assert not before.newly_suspended and before.watch.outcomes == 350

    save_category_setting(category=billing, setting=Setting(0.97, None), actor="admin")
    billing.refresh_from_db()  # as a new audit's sample reads it
    _verdicts(billing, [True], start=timezone.now())
    after = check_category(category=billing)

    assert not after.newly_suspended
    assert after.watch.suspended_at is None
    assert after.watch.outcomes == 1
    previous = after.watch.previous
    assert (previous["audited"], previous["correct"]) == (350, 325)
    assert previous["why"] == "the rule in force changed"
    (row,) = [c for c in live_report().categories if c.slug == "billing"]
    assert row.since_change.precision.audited == 1
    assert row.as_json()["before_change"]["audited"] == 350


@pytest.mark.django_db
def test_deactivating_and_reactivating_a_category_starts_a_new_segment(categories):
    billing = categories["billing"]
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.90})
    start = timezone.now() - timedelta(hours=2)
    check_category(category=billing, now=start - timedelta(minutes=1))
    _verdicts(billing, [True, False, True], start=start)
    assert check_category(category=billing).watch.outcomes == 3
    Category.objects.filter(pk=billing.pk).update(is_active=False)
    billing.refresh_from_db()
    assert check_category(category=billing).watch.outcomes == 0
    watch = CategoryWatch.objects.get(category=billing)
    assert watch.previous["audited"] == 3
