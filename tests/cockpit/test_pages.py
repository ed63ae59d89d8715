"""The overview and the audit log."""

from datetime import timedelta

import pytest
from django.utils import timezone

from triage.cockpit.figures import overview
from triage.models import AuditLog, Category, Item, Prediction, ReviewTask
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.summary import metrics_snapshot

from ..factories import make_item, make_task

pytestmark = pytest.mark.django_db


def predicted(category, route, champion, days_ago=0):
    item = make_item(status=Item.Status.ROUTED if route == "auto" else Item.Status.IN_REVIEW)
    when = timezone.now() - timedelta(days=days_ago)
    Prediction.objects.create(
        item=item,
        model_version=champion,
        label=category,
        confidence=0.9,
        scores=[],
        route=route,
        reason="x",
        created_at=when,
    )
    return item


def audited(category, champion, *, correct, probability=0.5):
    item = predicted(category, "auto", champion)
    prediction = item.predictions.get()
    now = timezone.now()
    return AuditSample.objects.create(
        item=item,
        prediction=prediction,
        category=category,
        model_version=champion,
        probability=probability,
        sampled_at=now,
        audited_at=now,
        correct=correct,
        audited_category=category,
    )


def test_the_overview_shows_per_category_figures_and_trends(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    for route in ["auto", "auto", "auto", "review"]:
        predicted(billing, route, champion)
    item = predicted(billing, "review", champion)
    task = make_task(item)
    ReviewTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(hours=5))
    make_task(predicted(Category.objects.get(slug="outage"), "review", champion))
    for correct in [True] * 9 + [False]:
        audited(billing, champion, correct=correct)

    data = overview()
    (row,) = [r for r in data.rows if r.category.slug == "billing"]
    assert row.open_tasks == 1
    assert timezone.now() - row.oldest_task_at >= timedelta(hours=5)
    assert data.open_tasks == 2
    items_per_day = data.trends[0]
    assert len(items_per_day.days) == 30 and items_per_day.values[-1] >= 16
    assert data.trends[2].values[-1] == pytest.approx(0.9)  # today's audits, 9 of 10 right

    # The live figures are the snapshot's (GET /api/metrics), drawn as they are.
    live = metrics_snapshot()["live"]["categories"]["billing"]["since_change"]
    assert live["audited"] == 10 and live["correct"] == 9
    html = admin_client.get("/cockpit/").content.decode()
    row_html = html.split('data-category="billing"')[1].split("</tr>")[0]
    low, high = live["interval"]
    assert f"{live['precision'] * 100:.1f}%" in row_html
    assert f"{low * 100:.1f}%–{high * 100:.1f}%, n=10" in row_html
    rate = live["automation"]["rate"]
    assert f"{rate * 100:.1f}%" in row_html and f"of {live['automation']['total']}" in row_html
    assert "watching" in row_html
    assert "Items received per day" in html and "<svg" in html and "<table>" in html


def test_a_suspended_category_shows_why_and_since_when_and_resumes_with_a_reason(
    admin_client, champion
):
    billing = Category.objects.get(slug="billing")
    since = timezone.now() - timedelta(hours=3)
    CategoryWatch.objects.update_or_create(
        category=billing,
        defaults={
            "suspended_at": since,
            "suspension": {
                "reason": "live precision below the 70.0% target: 6 wrong of 20",
                "statistic": 3.2,
                "audited": 20,
            },
        },
    )
    overview_html = admin_client.get("/cockpit/").content.decode()
    assert 'data-suspended="billing"' in overview_html
    assert "6 wrong of 20" in overview_html
    page = admin_client.get("/cockpit/categories/billing/").content.decode()
    assert 'id="suspension"' in page and f"Suspended since {since:%Y-%m-%d %H:%M}" in page

    refused = admin_client.post("/cockpit/categories/billing/resume", {"reason": "  "})
    assert refused.status_code == 422
    assert "reason" in refused.context["resume_form"].errors
    assert CategoryWatch.objects.get(category=billing).suspended_at is not None

    done = admin_client.post(
        "/cockpit/categories/billing/resume", {"reason": "labels fixed upstream"}
    )
    assert done.status_code == 302
    assert CategoryWatch.objects.get(category=billing).suspended_at is None
    entry = AuditLog.objects.get(action="resume")
    assert (entry.actor, entry.detail["reason"]) == ("user:root", "labels fixed upstream")
    assert (
        'id="suspension"' not in admin_client.get("/cockpit/categories/billing/").content.decode()
    )


def test_resuming_a_category_that_is_not_suspended_is_refused(admin_client, champion):
    response = admin_client.post("/cockpit/categories/billing/resume", {"reason": "why not"})
    assert response.status_code == 422
    assert "is not suspended" in response.content.decode()


def test_the_audit_log_reads_before_and_after_and_filters(admin_client, champion):
    AuditLog.record(
        actor="user:root",
        action="category",
        target="category:billing",
        before={"target_precision": None, "threshold": 0.9},
        after={"target_precision": 0.95, "threshold": None},
        changed=["target_precision", "threshold"],
    )
    AuditLog.record(actor="user:bob", action="policy", default_threshold=0.8)
    html = admin_client.get("/cockpit/audit/").content.decode()
    assert "changed a category&#x27;s rule" in html and "category:billing" in html
    assert '<td class="before">0.9</td><td>→</td><td class="after">—</td>' in html
    assert '<td class="before">—</td><td>→</td><td class="after">0.95</td>' in html

    filtered = admin_client.get("/cockpit/audit/", {"actor": "bob"}).content.decode()
    assert "user:bob" in filtered and "category:billing" not in filtered
    by_subject = admin_client.get("/cockpit/audit/", {"subject": "billing"})
    assert [e.log.action for e in by_subject.context["entries"]] == ["category"]
    bad = admin_client.get("/cockpit/audit/", {"since": "2026-02-01", "until": "2026-01-01"})
    assert bad.status_code == 400 and "until must be on or after since" in bad.content.decode()


def test_the_overview_draws_the_metrics_snapshot_it_does_not_recompute(admin_client, champion):
    from triage.cockpit.preview import Setting
    from triage.cockpit.services import save_category_setting
    from triage.monitoring.summary import metrics_snapshot

    save_category_setting(
        category=Category.objects.get(slug="outage"), setting=Setting(None, 0.8), actor="t"
    )
    snapshot = metrics_snapshot()
    html = admin_client.get("/cockpit/").content.decode()
    for entry in snapshot["categories"]:
        row = html.split(f'data-category="{entry["slug"]}"')[1].split("</tr>")[0]
        threshold = "—" if entry["threshold"] is None else f"{entry['threshold']:.3f}"
        share = entry["automation_share"]
        assert f'<td class="n">{threshold}</td>' in row
        assert (f"{share * 100:.1f}%" if share is not None else "—") in row
        assert f"of {entry['evidence_count']}" in row
    assert snapshot["guarantee"] in html.replace("&#x27;", "'")


def test_the_overview_shows_the_pooled_certification_beside_the_categories(admin_client, champion):
    from triage.models import RoutingPolicy

    RoutingPolicy.objects.filter(pk=1).update(certification="pooled")
    html = admin_client.get("/cockpit/").content.decode()
    assert 'id="pooled"' in html and "(in force)" in html
    assert "billing, other, outage" in html or "billing, outage, other" in html


def test_the_overview_counts_failed_webhook_deliveries_per_category(admin_client, champion):
    from triage.actions.models import Delivery, Endpoint, Event

    billing = Category.objects.get(slug="billing")
    endpoint = Endpoint.objects.create(url="https://receiver.example/hook")
    for state in [Delivery.State.FAILED, Delivery.State.FAILED, Delivery.State.SUCCEEDED]:
        item = make_item(status=Item.Status.ROUTED, final_category=billing)
        event = Event.objects.create(type="item.routed", item=item, payload={})
        Delivery.objects.create(event=event, endpoint=endpoint, item_id=item.pk, state=state)
    data = overview()
    failed = {r.category.slug: r.failed_deliveries for r in data.rows}
    assert failed == {"billing": 2, "other": 0, "outage": 0}
    html = admin_client.get("/cockpit/").content.decode()
    row = html.split('data-category="billing"')[1].split("</tr>")[0]
    assert '?state__exact=failed">2</a>' in row
