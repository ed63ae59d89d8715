"""Endpoints and rules changed in the admin are logged, and hand-made action posts are refused."""

import pytest

from triage.access import ADMINS
from triage.actions.models import Endpoint
from triage.models import AuditLog, Category
from triage.routing.models import Rule

from .factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", group=ADMINS))
    return client


def test_adding_an_endpoint_is_logged_without_its_secret(admin_client, categories):
    response = admin_client.post(
        "/admin/actions/endpoint/add/",
        {"url": "https://93.184.216.34/hook", "description": "desk", "is_active": "on"},
    )
    # The secret is shown once, on its own page (issue 21), never in the messages cookie.
    assert response.status_code == 200, response.content.decode()[:2000]
    endpoint = Endpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    assert endpoint.secret not in str(response.cookies.get("messages", ""))
    entry = AuditLog.objects.get(action="endpoint")
    assert entry.actor == "user:root" and entry.detail["before"] is None
    assert entry.detail["after"]["url"] == "https://93.184.216.34/hook"
    assert endpoint.secret not in str(entry.detail)


def test_changing_a_rule_is_logged_before_and_after(admin_client, categories):
    rule = Rule.objects.create(
        name="vip",
        position=10,
        condition=Rule.Condition.KEYWORDS,
        keywords=["refund"],
        action=Rule.Action.ROUTE,
        category=categories["billing"],
    )
    response = admin_client.post(
        f"/admin/triage/rule/{rule.pk}/change/",
        {
            "name": "vip",
            "position": "5",
            "is_active": "on",
            "condition": "keywords",
            "keywords": "refund\nchargeback",
            "action": "route",
            "category": categories["billing"].pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditLog.objects.get(action="rule")
    assert entry.detail["before"]["keywords"] == ["refund"]
    assert entry.detail["after"]["keywords"] == ["refund", "chargeback"]
    assert set(entry.detail["changed"]) == {"keywords", "position"}


@pytest.mark.parametrize("selected", ["0.5", "abc", "1e3"])
def test_an_action_on_something_that_is_not_an_id_is_refused(admin_client, categories, selected):
    # Django's admin would filter on it and answer a 500.
    response = admin_client.post(
        "/admin/triage/category/",
        {"action": "delete_selected", "_selected_action": [selected], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert "is not an id" in response.content.decode()
    assert Category.objects.count() == 3
