"""The overview and the audit log."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import Review, ReviewTask
from triage.cockpit.figures import overview
from triage.models import AuditLog, Category, Item, Prediction

from ..factories import make_item, make_task, make_user

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


def test_the_overview_shows_per_category_figures_and_trends(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    for route in ["auto", "auto", "auto", "review"]:
        predicted(billing, route, champion)
    predicted(billing, "auto", champion, days_ago=40)  # outside the window: not counted
    item = predicted(billing, "review", champion)
    task = make_task(item)
    ReviewTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(hours=5))
    audited = predicted(billing, "auto", champion)
    audit = make_task(audited, reason=ReviewTask.Reason.AUDIT_SAMPLE)
    Review.objects.create(
        task=audit,
        item=audited,
        reviewer=make_user("alice"),
        category=billing,
        agreed_with_model=True,
    )

    data = overview()
    (row,) = [r for r in data.rows if r.category.slug == "billing"]
    assert (row.predicted, row.automated) == (6, 4)
    assert (row.audited, row.audit_agreed) == (1, 1)
    # The review task is open; the audit task is open too (its review did not close it here).
    assert row.open_tasks == 2
    assert row.oldest_task_at is not None
    assert timezone.now() - row.oldest_task_at >= timedelta(hours=5)
    items_per_day = data.trends[0]
    assert len(items_per_day.days) == 30 and items_per_day.values[-1] >= 7

    html = admin_client.get("/cockpit/").content.decode()
    assert 'data-category="billing"' in html
    assert "66.7%" in html  # live automation of billing, 4 of 6
    assert "1 of 1" in html
    assert "Items received per day" in html and "<svg" in html and "<table>" in html


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
    from triage.monitoring.metrics import metrics_snapshot

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
