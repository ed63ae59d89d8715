"""The what-if in items a day: the category's intake times the share automated, and the
expected wrong ones at the certified bound."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_item, make_keyword_categories, make_prediction
from triage.cockpit.consequences import daily_consequences
from triage.models import Prediction

pytestmark = pytest.mark.django_db


def intake(category, n, *, days_ago):
    for _ in range(n):
        prediction = make_prediction(make_item(), category)
        Prediction.objects.filter(pk=prediction.pk).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )


def test_items_a_day_and_expected_wrong_at_the_bound():
    categories = make_keyword_categories()
    intake(categories["billing"], 100, days_ago=10)  # 100 items over 10 days
    intake(categories["outage"], 50, days_ago=5)
    intake(categories["billing"], 7, days_ago=40)  # older than the window
    daily = daily_consequences(categories["billing"], coverage=0.5, certified_bound=0.9)
    assert daily.days == pytest.approx(10, abs=0.01)
    assert daily.predicted == pytest.approx(10, rel=0.01)
    assert daily.automated == pytest.approx(5, rel=0.01)
    assert daily.wrong == pytest.approx(0.5, rel=0.01)


def test_no_bound_means_no_expected_wrong_and_a_young_install_counts_one_day():
    categories = make_keyword_categories()
    intake(categories["billing"], 12, days_ago=0)
    daily = daily_consequences(categories["billing"], coverage=0.25, certified_bound=None)
    assert daily.days == 1.0 and daily.predicted == 12 and daily.automated == 3
    assert daily.wrong is None
