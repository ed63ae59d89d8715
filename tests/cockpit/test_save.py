"""Saving a rule: routing changes, the audit log holds before and after, and the
waiting tasks that now pass can be re-routed after their count is shown."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from triage.actions.models import Event
from triage.classify import service
from triage.cockpit.services import reroute_candidates
from triage.models import AuditLog, Category, Item, Prediction, ReviewTask, RoutingPolicy
from triage.monitoring.models import AuditSample
from triage.routing.derive import routing_policy

from ..factories import make_item, make_task, make_user

pytestmark = pytest.mark.django_db


def waiting(champion, category, confidence, **task_fields):
    item = make_item(f"waiting {confidence}", status=Item.Status.IN_REVIEW)
    Prediction.objects.create(
        item=item,
        model_version=champion,
        label=category,
        confidence=confidence,
        scores=[{"label": category.slug, "confidence": confidence}],
        route=Prediction.Route.REVIEW,
        reason="below_threshold",
    )
    return make_task(item, **task_fields)


def test_saving_changes_routing_and_logs_the_values_before_and_after(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    response = admin_client.post(
        "/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.99999"}
    )
    assert response.status_code == 302
    billing.refresh_from_db()
    assert (billing.target_precision, billing.threshold) == (None, 0.99999)
    entry = AuditLog.objects.filter(action="category").latest("at")
    assert entry.actor == "user:root"
    assert entry.detail["target"] == "category:billing"
    assert entry.detail["before"] == {"target_precision": None, "threshold": None}
    assert entry.detail["after"] == {"target_precision": None, "threshold": 0.99999}
    assert entry.detail["changed"] == ["threshold"]

    item = make_item("please refund the double charge on my card")
    service.classify_items(item_ids=[item.pk])
    prediction = Prediction.objects.get(item=item)
    assert (prediction.mode, prediction.threshold) == ("threshold", 0.99999)

    admin_client.post("/cockpit/categories/billing/save", {"mode": "target", "target": "0.8"})
    billing.refresh_from_db()
    assert (billing.target_precision, billing.threshold) == (0.8, None)
    latest = AuditLog.objects.filter(action="category").latest("at")
    assert latest.detail["before"] == {"target_precision": None, "threshold": 0.99999}
    assert latest.detail["after"] == {"target_precision": 0.8, "threshold": None}
    assert routing_policy(champion).rule_for("billing").target == 0.8


def test_saving_offers_to_reroute_the_waiting_tasks_that_now_pass(admin_client, champion):
    billing, outage = Category.objects.get(slug="billing"), Category.objects.get(slug="outage")
    passing = [waiting(champion, billing, c) for c in (0.95, 0.8, 0.61)]
    waiting(champion, billing, 0.4)  # below the new threshold
    waiting(champion, outage, 0.99)  # another category
    waiting(None, billing, 0.99)  # scored by no model (cold start): not this threshold's scale
    waiting(
        champion,
        billing,
        0.9,
        claimed_by=make_user("alice"),
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )  # in an analyst's hands

    response = admin_client.post(
        "/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.6"}, follow=True
    )
    html = response.content.decode()
    assert response.context["reroute_count"] == 3
    assert "<b>3</b> waiting review tasks of this category now pass" in html
    # Showing the count changed nothing.
    assert ReviewTask.objects.open().count() == 7

    response = admin_client.post("/cockpit/categories/billing/reroute", {"expected": "3"})
    assert response.status_code == 302
    for task in passing:
        task.refresh_from_db()
        item = task.item
        item.refresh_from_db()
        assert task.completed_at is not None
        assert (item.status, item.final_category, item.decided_by) == (
            Item.Status.ROUTED,
            billing,
            f"model:v{champion.pk}",
        )
        latest = item.latest_prediction()
        assert (latest.route, latest.threshold) == ("auto", 0.6)
    assert ReviewTask.objects.open().count() == 4
    entry = AuditLog.objects.get(action="reroute")
    assert (entry.detail["routed"], entry.detail["target"]) == (3, "category:billing")
    assert reroute_candidates(category=billing) == []


def test_a_reroute_emits_item_routed_and_says_what_happened_in_items(admin_client, champion):
    """Issue 18, item 5: re-routed items were routed silently (no `item.routed`, so webhook
    subscribers never heard), and the flash said only "Re-routed 3 waiting items" however
    many went to audit."""
    RoutingPolicy.objects.filter(pk=1).update(audit_rate=1.0)
    billing = Category.objects.get(slug="billing")
    admin_client.post("/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.6"})
    tasks = [waiting(champion, billing, c) for c in (0.95, 0.8, 0.61)]

    page = admin_client.get("/cockpit/categories/billing/?saved=1").content.decode()
    # The preview says it before the admin confirms.
    assert "Re-routing them: <b>0</b> acted on, <b>3</b> acted on and sent to audit" in page
    key = re.search(r'name="items" value="([0-9a-f]+)"', page).group(1)

    response = admin_client.post(
        "/cockpit/categories/billing/reroute", {"expected": "3", "items": key}, follow=True
    )
    assert "3 re-routed: 0 acted on, 3 acted on and sent to audit." in response.content.decode()
    events = Event.objects.filter(type="item.routed").order_by("item_id")
    assert [e.item_id for e in events] == [t.item_id for t in tasks]
    data = events[0].payload["data"]
    assert (data["category"], data["audit"], data["decided_by"]) == (
        "billing",
        True,
        f"model:v{champion.pk}",
    )
    for task in tasks:
        task.refresh_from_db()
        assert task.completed_at is None and task.reason == ReviewTask.Reason.AUDIT_SAMPLE
    assert AuditSample.objects.filter(item_id__in=[t.item_id for t in tasks]).count() == 3


def test_a_reroute_whose_items_changed_since_the_preview_is_refused_whole(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    admin_client.post("/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.6"})
    first = waiting(champion, billing, 0.9)
    waiting(champion, billing, 0.7)
    page = admin_client.get("/cockpit/categories/billing/?saved=1").content.decode()
    key = re.search(r'name="items" value="([0-9a-f]+)"', page).group(1)
    # Meanwhile one is decided by hand and another arrives: still two, not the same two.
    first.completed_at = timezone.now()
    first.save()
    Item.objects.filter(pk=first.item_id).update(status=Item.Status.RESOLVED)
    waiting(champion, billing, 0.8)
    response = admin_client.post(
        "/cockpit/categories/billing/reroute", {"expected": "2", "items": key}, follow=True
    )
    assert "2 tasks pass, but not the ones you saw; nothing was re-routed" in (
        response.content.decode()
    )
    assert ReviewTask.objects.open().count() == 2
    assert not Event.objects.filter(type="item.routed").exists()
    assert not AuditLog.objects.filter(action="reroute").exists()


def test_a_reroute_whose_count_changed_since_it_was_shown_does_nothing(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    admin_client.post("/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.6"})
    waiting(champion, billing, 0.9)
    waiting(champion, billing, 0.7)
    response = admin_client.post(
        "/cockpit/categories/billing/reroute", {"expected": "1"}, follow=True
    )
    assert "the queue changed: 2 tasks now pass, not 1" in response.content.decode()
    assert ReviewTask.objects.open().count() == 2
    assert not AuditLog.objects.filter(action="reroute").exists()


def test_audit_draws_keep_a_rerouted_task_open_as_an_audit_sample(admin_client, champion):

    RoutingPolicy.objects.filter(pk=1).update(audit_rate=1.0)
    billing = Category.objects.get(slug="billing")
    admin_client.post("/cockpit/categories/billing/save", {"mode": "threshold", "threshold": "0.6"})
    task = waiting(champion, billing, 0.9)
    admin_client.post("/cockpit/categories/billing/reroute", {"expected": "1"})
    task.refresh_from_db()
    assert task.completed_at is None and task.reason == ReviewTask.Reason.AUDIT_SAMPLE
    task.item.refresh_from_db()
    assert task.item.status == Item.Status.ROUTED


def test_a_target_no_scope_can_certify_is_saved_and_the_page_says_so(admin_client, champion):
    response = admin_client.post(
        "/cockpit/categories/billing/save", {"mode": "target", "target": "0.999"}, follow=True
    )
    assert response.status_code == 200
    billing = Category.objects.get(slug="billing")
    assert billing.target_precision == 0.999  # the admin's choice stands
    body = response.content.decode()
    assert "no scope can certify 99.9% for" in body
    assert "certifiable today" in body
    # The page shows the frontier, with the note on picking a target from it.
    assert 'id="frontier"' in body
    assert "a target picked because its row looks good is a look at that evidence" in body


def test_a_certifiable_target_saves_without_the_warning(admin_client, champion):
    response = admin_client.post(
        "/cockpit/categories/billing/save", {"mode": "target", "target": "0.5"}, follow=True
    )
    body = response.content.decode()
    assert "Saved the rule for" in body
    assert "no scope can certify" not in body
