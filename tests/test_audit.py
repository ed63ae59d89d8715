"""The audit log cannot be rewritten, and changes are logged with their values before and after."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from triage import training
from triage.access import ADMINS
from triage.models import (
    ApiToken,
    AuditLog,
    Category,
    ModelVersion,
    Prediction,
    Review,
    RoutingPolicy,
)
from triage.training.models import TrainingExample

from .factories import make_task, make_user

pytestmark = pytest.mark.django_db
# The policy form also asks for the certification and queue settings (their defaults
# here, as the form posts them: a ticked box is "on", an unticked one is not sent).
CERTIFICATION = {
    "delta": "0.05",
    "certification": "fallback",
    "queue_order": "oldest",
    "reroute_waiting": "on",
}


@pytest.fixture
def superuser(client):
    user = User.objects.create_superuser("boss", password="pw")
    client.force_login(user)
    return user


@pytest.mark.needs_postgres("the append-only trigger is PostgreSQL's")
def test_the_database_refuses_update_and_delete_of_audit_entries():
    entry = AuditLog.record(actor="user:root", action="policy", note="original")
    for statement in [
        lambda: AuditLog.objects.filter(pk=entry.pk).update(actor="user:someone-else"),
        lambda: AuditLog.objects.filter(pk=entry.pk).delete(),
        lambda: connection.cursor().execute("DELETE FROM triage_auditlog"),
    ]:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            statement()
    entry.refresh_from_db()
    assert (entry.actor, entry.detail) == ("user:root", {"note": "original"})
    AuditLog.record(actor="system", action="still-appends")
    assert AuditLog.objects.count() == 2


def test_not_even_a_superuser_can_change_or_delete_an_entry_in_the_admin(client, superuser):
    entry = AuditLog.record(actor="user:root", action="policy")
    base = f"/admin/triage/auditlog/{entry.pk}"
    assert client.post(f"{base}/change/", {"actor": "x", "action": "y"}).status_code == 403
    assert client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/triage/auditlog/add/").status_code == 403
    response = client.post(
        "/admin/triage/auditlog/",
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert response.status_code in {200, 302}
    assert AuditLog.objects.filter(pk=entry.pk, actor="user:root").exists()
    # Still readable.
    assert client.get(f"{base}/change/").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["triage/item", "triage/prediction", "triage/reviewtask", "triage/review"]
    + ["triage/trainingexample"],
)
def test_records_that_feed_decisions_and_training_are_read_only_in_the_admin(
    client, superuser, categories, path
):
    task = make_task()
    item = task.item
    prediction = Prediction.objects.create(
        item=item,
        label=categories["billing"],
        confidence=0.5,
        scores=[],
        route="review",
        reason="below_threshold",
    )
    review = Review.objects.create(
        task=task, item=item, reviewer=superuser, category=categories["billing"]
    )
    example = TrainingExample.objects.create(
        item=item, text=item.text, category=categories["billing"], source="review", split="train"
    )
    pk = {
        "triage/item": item.pk,
        "triage/prediction": prediction.pk,
        "triage/reviewtask": task.pk,
        "triage/review": review.pk,
        "triage/trainingexample": example.pk,
    }[path]
    assert client.get(f"/admin/{path}/add/").status_code == 403
    assert client.post(f"/admin/{path}/{pk}/change/", {"text": "edited"}).status_code == 403
    assert client.post(f"/admin/{path}/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/{path}/{pk}/change/").status_code == 200  # viewable
    item.refresh_from_db()
    assert item.text == "some text"
    assert Review.objects.count() == TrainingExample.objects.count() == 1


def test_admins_group_may_only_view_audited_records_but_may_still_review():
    admins = Group.objects.get(name=ADMINS)
    codenames = set(admins.permissions.values_list("codename", flat=True))
    for model in ["auditlog", "item", "prediction", "reviewtask", "trainingexample"]:
        assert f"view_{model}" in codenames
        assert not {f"add_{model}", f"change_{model}", f"delete_{model}"} & codenames
    assert "add_review" in codenames and "change_review" not in codenames
    assert {"change_category", "change_routingpolicy", "add_apitoken"} <= codenames


def test_a_category_change_in_the_admin_is_logged_with_before_and_after(client, categories):
    client.force_login(make_user("root", group=ADMINS))
    billing = categories["billing"]
    response = client.post(
        f"/admin/triage/category/{billing.pk}/change/",
        {
            "slug": "billing",
            "name": "Billing",
            "description": billing.description,
            "action_queue": "billing",
            "threshold": "0.8",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content
    entry = AuditLog.objects.get(action="category")
    assert entry.actor == "user:root"
    assert entry.detail["target"] == "category:billing"
    assert entry.detail["before"]["threshold"] is None
    assert entry.detail["after"]["threshold"] == 0.8
    assert entry.detail["changed"] == ["threshold"]


def test_deleting_a_category_in_the_admin_is_logged(client, categories):
    client.force_login(make_user("root", group=ADMINS))
    other = categories["other"]
    response = client.post(f"/admin/triage/category/{other.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Category.objects.filter(slug="other").exists()
    entry = AuditLog.objects.get(action="category")
    assert entry.detail["before"]["slug"] == "other" and entry.detail["after"] is None


def test_a_policy_change_in_the_admin_records_the_old_and_new_values(client, categories):
    client.force_login(make_user("root", group=ADMINS))
    policy = RoutingPolicy.current()
    client.post(
        f"/admin/triage/routingpolicy/{policy.pk}/change/",
        {
            "default_threshold": "0.75",
            "audit_rate": "0.05",
            "audit_floor": "20",
            "min_support": "30",
            **CERTIFICATION,
        },
    )
    entry = AuditLog.objects.get(action="policy")
    assert entry.detail["before"]["default_threshold"] == 0.9
    assert entry.detail["after"]["default_threshold"] == 0.75
    assert entry.detail["changed"] == ["default_threshold"]  # not updated_at


def test_the_policy_command_records_before_and_after(categories):
    call_command("policy", "--target-precision", "0.95", "--category", "billing")
    entry = AuditLog.objects.get(action="policy")
    assert entry.detail["target"] == "category:billing"
    assert entry.detail["before"]["target_precision"] is None
    assert entry.detail["after"]["target_precision"] == 0.95


def test_promote_and_roll_back_record_the_champion_before_and_after(categories):
    def version(status: str) -> ModelVersion:
        return ModelVersion.objects.create(
            status=status, kind=ModelVersion.Kind.SEQUENCE_CLASSIFIER, encoder="e", labels=[]
        )

    old, new = version(ModelVersion.Status.CHAMPION), version(ModelVersion.Status.CANDIDATE)
    old.promoted_at = old.created_at
    old.save()
    training.promote_version(version=new, actor="user:root")
    promote = AuditLog.objects.get(action="promote")
    assert (promote.detail["before"], promote.detail["after"]) == (
        {"champion": [old.pk]},
        {"champion": [new.pk]},
    )
    training.rollback(actor="user:root")
    rollback = AuditLog.objects.get(action="rollback")
    assert rollback.detail["before"] == {"champion": [new.pk]}
    assert rollback.detail["after"] == {"champion": [old.pk]}


def test_a_new_token_is_shown_once_on_its_page_never_in_a_message_or_cookie(client):
    client.force_login(make_user("root", group=ADMINS))
    response = client.post(
        "/admin/triage/apitoken/add/", {"name": "zendesk", "scopes": ["ingest", "read"]}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="zendesk")
    page = response.content.decode()
    plain = page.split('id="issued-token"')[1].split('value="')[1].split('"')[0]
    assert plain.startswith("trg_") and ApiToken.authenticate(plain) == token
    assert "no-store" in response["Cache-Control"]
    for morsel in response.cookies.values():
        assert plain not in morsel.value
    assert plain not in str(client.session.items())
    # Gone afterwards: neither the list nor the token's page shows it.
    assert plain not in client.get("/admin/triage/apitoken/").content.decode()
    assert plain not in client.get(f"/admin/triage/apitoken/{token.pk}/change/").content.decode()
    entry = AuditLog.objects.get(action="token")
    assert entry.detail["after"]["name"] == "zendesk" and entry.detail["before"] is None
    assert token.token_hash not in str(entry.detail)


def test_revoking_tokens_in_the_admin_is_logged(client):
    client.force_login(make_user("root", group=ADMINS))
    token, plain = ApiToken.issue("old-bridge")
    client.post("/admin/triage/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert ApiToken.authenticate(plain) is None
    entry = AuditLog.objects.get(action="token")
    assert entry.detail["before"]["revoked_at"] is None
    assert entry.detail["after"]["revoked_at"] is not None


def test_token_authentication_needs_the_exact_value_of_an_active_token():
    token, plain = ApiToken.issue("bridge")
    assert ApiToken.authenticate(plain) == token
    assert ApiToken.authenticate(plain[:-1]) is None
    assert ApiToken.authenticate(plain + "x") is None
    assert ApiToken.authenticate("") is None


def test_create_api_token_command_is_logged(capsys):
    call_command("create_api_token", "cli-bridge")
    assert AuditLog.objects.get(action="token").detail["after"]["name"] == "cli-bridge"


def test_threshold_edits_in_the_category_list_are_logged_one_entry_per_category(client, categories):
    client.force_login(make_user("root", group=ADMINS))
    rows = list(Category.objects.order_by("slug"))
    data = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "_save": "Save"}
    for n, category in enumerate(rows):
        data |= {f"form-{n}-id": category.pk, f"form-{n}-is_active": "on"}
        data[f"form-{n}-threshold"] = "0.7" if category.slug == "outage" else ""
        data[f"form-{n}-target_precision"] = ""
    response = client.post("/admin/triage/category/", data)
    assert response.status_code == 302, response.content
    assert Category.objects.get(slug="outage").threshold == 0.7
    entries = AuditLog.objects.filter(action="category")
    assert [(e.detail["target"], e.detail["changed"]) for e in entries] == [
        ("category:outage", ["threshold"])
    ]
