"""Reviewer quality's cheap signals: implausible speed, straight-lining, sortable columns
and a per-category drill-down."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.trust.patterns import longest_run, patterns
from tests.factories import make_item, make_prediction, make_task, make_user
from triage.access import ADMINS
from triage.models import Item, Review, ReviewTask

pytestmark = pytest.mark.django_db


def decided(user, category, n, *, seconds=5.0, suggested=None, reason=None, start=None):
    """n decisions by `user`, a minute apart, recorded directly (no claim needed here)."""
    start = start or timezone.now() - timedelta(hours=2)
    for i in range(n):
        item = make_item(status=Item.Status.RESOLVED)
        if suggested is not None:
            make_prediction(item, suggested, route="review")
        task = make_task(item, reason=reason or ReviewTask.Reason.LOW_CONFIDENCE)
        Review.objects.create(
            task=task,
            item=item,
            reviewer=user,
            category=category,
            agreed_with_model=None if suggested is None else suggested == category,
            seconds_spent=seconds,
            created_at=start + timedelta(minutes=i),
        )


def test_longest_run_finds_the_value_and_its_length():
    assert longest_run([1, 1, 2, 2, 2, 1]) == (3, 2)
    assert longest_run([]) == (0, None)


def test_a_fast_median_is_flagged_only_with_enough_decisions(categories):
    since = timezone.now() - timedelta(days=1)
    quick = make_user()
    decided(quick, categories["billing"], 10, seconds=1.0)
    assert patterns(quick, since=since, median_seconds=1.0).flags == []
    decided(quick, categories["outage"], 10, seconds=1.0)
    assert patterns(quick, since=since, median_seconds=1.0).flags == [
        "implausibly fast: median 1.0 s"
    ]


def test_straight_lining_one_key_or_always_the_suggestion(categories):
    since = timezone.now() - timedelta(days=1)
    one_key = make_user()
    decided(one_key, categories["billing"], 30)
    found = patterns(one_key, since=since, median_seconds=5.0)
    assert found.longest_run == 30 and found.run_category == "Billing"
    assert "30 decisions in a row of one category" in found.flags

    follower = make_user()
    for i in range(24):  # alternating categories: no long run, but always as suggested
        slug = "billing" if i % 2 else "outage"
        decided(follower, categories[slug], 1, suggested=categories[slug])
    found = patterns(follower, since=since, median_seconds=5.0)
    assert found.longest_run == 1
    assert found.flags == ["accepts the suggestion 100% of the time"]


def test_blind_tasks_do_not_count_as_accepting_the_suggestion(categories):
    since = timezone.now() - timedelta(days=1)
    auditor = make_user()
    for i in range(24):
        slug = "billing" if i % 2 else "outage"
        decided(
            auditor,
            categories[slug],
            1,
            suggested=categories[slug],
            reason=ReviewTask.Reason.AUDIT_SAMPLE,
        )
    found = patterns(auditor, since=since, median_seconds=5.0)
    assert found.shown == 0 and found.flags == []


def test_the_page_sorts_by_a_column_and_drills_down_by_category(client, categories):
    careful, careless = make_user("careful"), make_user("careless")
    decided(careful, categories["billing"], 3, seconds=20.0)
    decided(careless, categories["outage"], 30, seconds=1.0)
    client.force_login(make_user(group=ADMINS))
    body = client.get("/reviews/quality/").content.decode()
    assert body.index('data-analyst="careless"') < body.index('data-analyst="careful"')
    assert "implausibly fast: median 1.0 s" in body
    by_time = client.get("/reviews/quality/?sort=-median_seconds").content.decode()
    assert by_time.index('data-analyst="careful"') < by_time.index('data-analyst="careless"')
    assert 'aria-sort="descending"' in by_time
    drill = client.get(f"/reviews/quality/{careless.pk}/").content.decode()
    assert '<th scope="row">Outage</th><td>30</td>' in drill
    assert "Billing" not in drill.split('id="by-category"')[1]
