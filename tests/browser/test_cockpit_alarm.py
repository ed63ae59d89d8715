"""The alarm on the cockpit's overview, in a real browser (issue 18): a category audited
below its target is red in the table and the KPI, with an alert above the table, its drift
statistic as a bar and the target on the precision chart, and no script error."""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from triage.models import RoutingPolicy
from triage.monitoring.models import AuditSample

from ..factories import make_item, make_keyword_categories, make_prediction
from .test_cockpit import log_in, watch_for_errors

pytestmark = pytest.mark.browser


def test_a_category_audited_below_target_shows_the_alarm_on_the_overview(
    transactional_db, live_server, page: Page
):
    categories = make_keyword_categories()
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.90})
    now = timezone.now()
    # 8 right of 16: 50%, exact 95% interval 24.7–75.3%, wholly below the 90% target.
    for correct in [True, False] * 8:
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, categories["billing"]),
            category=categories["billing"],
            probability=1.0,
            sampled_at=now,
            audited_at=now,
            correct=correct,
        )
    errors = watch_for_errors(page)
    log_in(page, live_server)

    alert = page.locator('[data-alarm="billing"][role="alert"]')
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("audited at 50.0% (95% interval 24.7%–75.3%, n = 16)")
    expect(alert).to_contain_text("wholly below the 90.0% target")
    row = page.locator('tr[data-category="billing"]')
    expect(row).to_have_class("alarm")
    expect(row.locator(".pill.bad")).to_have_text("alarm")
    expect(row.locator("meter.drift")).to_be_visible()
    expect(page.locator('tr[data-category="outage"]')).not_to_have_class("alarm")
    expect(page.locator("#kpi-precision")).to_have_class("kpi bad")
    # The row is drawn red: its cells take the alarm background.
    background = row.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(253, 243, 242)"
    # The target line on the precision chart.
    chart = page.locator("figure.chart", has_text="Audited precision")
    expect(chart.locator("line.hline.target")).to_have_count(1)
    expect(chart.locator("text.target")).to_have_text("target 90.0%")
    assert errors == []
