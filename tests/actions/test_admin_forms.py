"""Admins manage endpoints and rules; bad input gets a form error naming the field."""

import pytest

from tests.factories import make_user
from triage.access import ADMINS
from triage.actions.admin import EndpointForm
from triage.actions.models import Endpoint
from triage.admin.rules import RuleForm
from triage.routing.models import Rule

pytestmark = pytest.mark.django_db


def endpoint_errors(url, **extra):
    form = EndpointForm(data={"url": url, "is_active": "on", **extra})
    return form.errors.get("url", [])


@pytest.mark.parametrize(
    ("url", "allow_private", "error"),
    [
        ("https://93.184.215.14/hooks", False, None),  # a public address, https
        ("http://93.184.215.14/hooks", False, "must use https"),
        ("ftp://93.184.215.14/hooks", False, "must start with https://"),
        ("not a url", False, "Enter a valid URL"),
        ("https://127.0.0.1:8001/hooks", False, "loopback"),
        ("https://10.0.0.5/hooks", False, "private"),
        ("https://169.254.169.254/latest/meta-data", False, "link-local"),
        ("https://[::1]/hooks", False, "loopback"),
        ("https://localhost:8001/hooks", False, "TRIAGE_WEBHOOK_ALLOW_PRIVATE"),
        ("https://user:pw@93.184.215.14/hooks", False, "user name or password"),
        ("https://127.0.0.1:8001/hooks", True, None),
        ("http://127.0.0.1:8001/hooks", True, None),  # http only for a local host
        ("http://localhost:8001/hooks", True, None),
        ("http://93.184.215.14/hooks", True, "must use https"),
    ],
)
def test_endpoint_url_validation(settings, url, allow_private, error):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = allow_private
    errors = endpoint_errors(url)
    if error is None:
        assert errors == []
    else:
        assert len(errors) == 1 and error in errors[0]


def test_a_duplicate_endpoint_is_a_form_error(settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True
    Endpoint.objects.create(url="http://127.0.0.1:8001/hooks")
    assert "already exists" in endpoint_errors("http://127.0.0.1:8001/hooks")[0]


def test_a_new_endpoint_gets_a_generated_secret_shown_once_saved(client, settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True
    client.force_login(make_user("root", group=ADMINS))
    response = client.post(
        "/admin/actions/endpoint/add/",
        {"url": "http://127.0.0.1:8001/hooks", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    endpoint = Endpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) > 40
    page = response.content.decode()
    assert endpoint.secret == page.split('id="issued-secret"')[1].split('value="')[1].split('"')[0]
    assert "no-store" in response["Cache-Control"]
    # Never in the messages cookie, the session or a later page.
    for morsel in response.cookies.values():
        assert endpoint.secret not in morsel.value
    assert endpoint.secret not in str(client.session.items())
    later = client.get(f"/admin/actions/endpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in later and f"whsec_…{endpoint.secret[-4:]}" in later
    assert endpoint.secret not in client.get("/admin/actions/endpoint/").content.decode()
    assert Endpoint.objects.create(url="http://127.0.0.1:9/x").secret != endpoint.secret


def test_the_admin_shows_a_private_address_error_on_the_url_field(client):
    client.force_login(make_user("root", group=ADMINS))
    response = client.post(
        "/admin/actions/endpoint/add/", {"url": "https://10.1.2.3/hook", "is_active": "on"}
    )
    assert response.status_code == 200
    assert "private, loopback or link-local" in response.context["adminform"].form.errors["url"][0]
    assert not Endpoint.objects.exists()


def rule_form(**fields):
    data = {"name": "r", "position": 1, "is_active": "on", "action": "review"} | fields
    return RuleForm(data=data)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"condition": "regex", "pattern": "(unclosed"}, "pattern", "does not compile"),
        ({"condition": "regex", "pattern": "(?<=look)behind"}, "pattern", "does not compile"),
        ({"condition": "regex", "pattern": ""}, "pattern", "Give a regular expression"),
        ({"condition": "keywords", "keywords": "  \n "}, "keywords", "at least one keyword"),
        ({"condition": "metadata", "metadata_values": '["a"]'}, "metadata_field", "Name"),
        ({"condition": "metadata", "metadata_field": "tier"}, "metadata_values", "at least one"),
        (
            {"condition": "keywords", "keywords": "x", "action": "route"},
            "category",
            "needs a category",
        ),
    ],
)
def test_bad_rules_are_form_errors_naming_the_field(fields, field, message):
    form = rule_form(**fields)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_a_rule_form_keeps_keywords_one_per_line_and_wraps_a_single_value(categories):
    form = rule_form(
        condition="keywords",
        keywords="refund\n  chargeback \n\n",
        action="route",
        category=categories["billing"].pk,
    )
    assert form.is_valid(), form.errors
    rule = form.save()
    assert rule.keywords == ["refund", "chargeback"]
    form = rule_form(name="m", condition="metadata", metadata_field="tier", metadata_values='"vip"')
    assert form.is_valid(), form.errors
    assert form.save().metadata_values == ["vip"]
    assert Rule.objects.count() == 2


def test_admins_redeliver_selected_deliveries_from_the_list(
    client, endpoint, receiver, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from tests.factories import make_item
    from triage.actions.events import emit
    from triage.actions.models import Delivery

    receiver.script = [500]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event = emit("item.routed", item=make_item("x"), data={})
    delivery = Delivery.objects.get(event=event)
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.FAILED)
    client.force_login(make_user("root", group=ADMINS))
    listing = client.get("/admin/actions/delivery/", {"state__exact": "failed"})
    assert "receiver says no" in listing.content.decode()  # the answer's excerpt
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/actions/delivery/",
            {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
            follow=True,
        )
    assert "Queued 1 deliveries again" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (Delivery.State.SUCCEEDED, 2)
    assert receiver.event_ids() == [event.event_id, event.event_id]
