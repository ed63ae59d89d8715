from datetime import timedelta

import pytest
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score

from reviews.trust.models import ReviewCheck
from reviews.trust.quality import analyst_quality, cohen_kappa, decisions_per_hour
from tests.factories import make_user
from triage.access import SENIORS

from .trust_helpers import confident_task, decide

pytestmark = pytest.mark.django_db


def test_kappa_discounts_the_agreement_a_dominant_category_gives_by_chance():
    first = ["billing"] * 9 + ["outage"]
    second = ["billing"] * 8 + ["outage", "billing"]
    # 80% raw agreement, but no better than chance here.
    assert cohen_kappa(first, second=second) == pytest.approx(cohen_kappa_score(first, second))
    assert cohen_kappa(first, second=second) < 0
    assert cohen_kappa(["billing"] * 3, second=["billing"] * 3) is None
    assert cohen_kappa([], second=[]) is None


def test_decisions_per_hour_counts_only_hours_at_work():
    start = timezone.now()
    morning = [start + timedelta(seconds=30 * i) for i in range(120)]  # an hour, 30 s each
    afternoon = [start + timedelta(hours=5, seconds=30 * i) for i in range(120)]
    rate = decisions_per_hour(morning + afternoon, median_seconds=30.0)
    # 240 decisions in two hours of work; the three-hour lunch is not work.
    assert rate == pytest.approx(120, rel=0.01)


def test_an_analysts_quality_counts_checks_gold_and_speed(categories, settings):
    settings.TRIAGE_SECOND_REVIEW_SHARE = 1.0
    analyst, other, senior = make_user("ann"), make_user(), make_user(group=SENIORS)
    now = timezone.now()
    agreed = decide(confident_task(categories["billing"], confidence=0.5), analyst, "billing")
    decide(ReviewCheck.objects.get(first_review=agreed).second_task, other, "billing", now=now)
    disputed = decide(confident_task(categories["billing"], confidence=0.5), analyst, "outage")
    check = ReviewCheck.objects.get(first_review=disputed)
    decide(check.second_task, other, "billing")
    check.refresh_from_db()
    decide(check.senior_task, senior, "outage")
    quality = analyst_quality(analyst)
    assert (quality.decisions, quality.checked, quality.agreed) == (2, 2, 1)
    assert quality.agreement == pytest.approx(0.5)
    # The senior sided with ann on the one disputed item.
    assert (quality.gold, quality.gold_agreed) == (1, 1)
    assert analyst_quality(other).gold_agreement == 0.0
    assert quality.quarantine is None
