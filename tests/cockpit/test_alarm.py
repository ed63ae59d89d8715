"""An alarm the admin cannot miss (issue 18, item 2): a category audited at 50% (exact 95%
interval 24.7–75.3%, 16 audits) against a 90% target showed a green "watching" badge and
no alert, because the drift watch had not yet passed its threshold."""

import pytest
from django.utils import timezone

from triage.models import RoutingPolicy
from triage.monitoring.models import AuditSample

from ..factories import make_item, make_prediction, make_token

pytestmark = pytest.mark.django_db


def audited(category, results):
    now = timezone.now()
    for correct in results:
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, category),
            category=category,
            probability=1.0,
            sampled_at=now,
            audited_at=now,
            correct=correct,
        )


@pytest.fixture
def collapsed(categories):
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.90})
    audited(categories["billing"], [True, False] * 8)
    audited(categories["outage"], [True] * 10)
    return categories


def test_a_category_audited_wholly_below_target_is_in_alarm_in_the_metrics(
    collapsed, client, auth_headers
):
    live = client.get("/api/metrics", **auth_headers).json()["live"]
    billing = live["categories"]["billing"]
    assert billing["since_change"]["interval"] == [0.2465, 0.7535]
    assert billing["alarm"]["on"] and billing["alarm"]["below_target"]
    assert "wholly below the 90.0% target" in billing["alarm"]["reasons"][0]
    assert live["categories"]["outage"]["alarm"]["on"] is False
    assert live["alarms"] == ["billing"]


def test_the_alarm_is_in_prometheus(collapsed, client):
    token = make_token(scopes=["metrics"])
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    assert 'triage_category_alarm{category="billing"} 1.0' in text
    assert 'triage_category_alarm{category="outage"} 0.0' in text


def test_the_overview_shows_the_alarm_row_kpi_alert_bar_and_target(collapsed, admin_client):
    html = admin_client.get("/cockpit/").content.decode()
    assert 'data-alarm="billing"' in html  # the alert above the table
    assert "Billing needs a look:</b> audited at 50.0% (95% interval 24.7%–75.3%, n = 16)" in html
    assert 'data-category="billing" class="alarm" data-alarm="on"' in html
    assert 'data-category="outage" class="alarm"' not in html
    assert 'class="kpi bad" id="kpi-precision"' in html
    assert '<meter class="drift"' in html
    assert "target 90.0%" in html  # drawn on the precision chart


def test_the_category_page_shows_the_alarm_and_the_audited_figures(collapsed, admin_client):
    html = admin_client.get("/cockpit/categories/billing/").content.decode()
    assert 'data-alarm="billing"' in html
    assert "audited at 50.0% (95% interval 24.7%–75.3%, n = 16)" in html
    assert "(24.7%–75.3%, n = 16)" in html  # audited since the change
