import pytest
from django.conf import settings
from django.contrib.auth.models import User

from reviews.claims import claim_next_task
from triage.access import ADMINS
from triage.models import AuditLog, Review, RoutingPolicy

from .factories import make_task, make_user

pytestmark = pytest.mark.django_db

# The policy form's other required fields, at their defaults.
CERTIFICATION = {"delta": "0.05", "certification": "per_category", "queue_order": "oldest"}


def test_analysts_cannot_change_thresholds(client, analyst, categories):
    policy = RoutingPolicy.current()
    assert not analyst.has_perm("triage.change_routingpolicy")
    assert not analyst.has_perm("triage.change_category")
    client.force_login(analyst)
    url = f"/admin/triage/routingpolicy/{policy.pk}/change/"
    response = client.post(
        url,
        {
            "default_threshold": "0.1",
            "audit_rate": "0",
            "min_support": "30",
            "audit_floor": "20",
            **CERTIFICATION,
        },
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    policy.refresh_from_db()
    assert policy.default_threshold == 0.9


def test_admins_change_thresholds_in_the_admin_and_it_is_audited(client, categories):
    admin = make_user("root", group=ADMINS)
    policy = RoutingPolicy.current()
    client.force_login(admin)
    response = client.post(
        f"/admin/triage/routingpolicy/{policy.pk}/change/",
        {
            "default_threshold": "0.75",
            "audit_rate": "0.1",
            "min_support": "30",
            "audit_floor": "20",
            **CERTIFICATION,
        },
    )
    assert response.status_code == 302, response.content
    policy.refresh_from_db()
    assert (policy.default_threshold, policy.audit_rate) == (0.75, 0.1)
    assert AuditLog.objects.filter(action="policy", actor="user:root").exists()


def test_a_threshold_outside_zero_to_one_is_a_form_error(client, categories):
    client.force_login(make_user("root", group=ADMINS))
    policy = RoutingPolicy.current()
    response = client.post(
        f"/admin/triage/routingpolicy/{policy.pk}/change/",
        {
            "default_threshold": "1.5",
            "audit_rate": "0",
            "min_support": "30",
            "audit_floor": "20",
            **CERTIFICATION,
        },
    )
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 1.0" in response.content.decode()
    policy.refresh_from_db()
    assert policy.default_threshold == 0.9


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("audit_rate", "1.5", "Ensure this value is less than or equal to 1.0"),
        ("audit_rate", "-0.1", "Ensure this value is greater than or equal to 0.0"),
        ("audit_floor", "-1", "Ensure this value is greater than or equal to 0"),
    ],
)
def test_an_audit_rate_or_floor_out_of_range_is_a_form_error_on_that_field(
    client, categories, field, value, message
):
    client.force_login(make_user("root", group=ADMINS))
    policy = RoutingPolicy.current()
    data = {"default_threshold": "0.9", "audit_rate": "0.05", "min_support": "30"}
    data |= {"audit_floor": "20", **CERTIFICATION, field: value}
    response = client.post(f"/admin/triage/routingpolicy/{policy.pk}/change/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    policy.refresh_from_db()
    assert (policy.audit_rate, policy.audit_floor) == (0.05, 20)


def test_people_outside_both_groups_cannot_review(client, categories):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    assert client.get("/reviews/").status_code == 403


def test_the_queue_requires_login(client):
    response = client.get("/reviews/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_deciding_with_an_unknown_category_shows_the_error_on_the_card(client, analyst, categories):
    task = make_task()
    claim_next_task(user=analyst)
    client.force_login(analyst)
    response = client.post(
        f"/reviews/tasks/{task.pk}/decide", {"category": "nope"}, HTTP_HX_REQUEST="true"
    )
    # What the analyst sent is wrong (400), not the task's state (409); nothing is written.
    assert response.status_code == 400
    assert not Review.objects.exists()
    assert "unknown category &#x27;nope&#x27;" in response.content.decode()
    assert f'data-task-id="{task.pk}"' in response.content.decode()


def test_item_text_is_escaped_on_the_card(client, analyst, categories):
    from .factories import make_item

    make_task(make_item("<script>alert(1)</script>"))
    client.force_login(analyst)
    body = client.post("/reviews/claim", HTTP_HX_REQUEST="true").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_nightly_retrain_is_scheduled_at_two_by_default():
    entry = settings.CELERY_BEAT_SCHEDULE["nightly-retrain"]
    assert entry["task"] == "triage.training.tasks.retrain_nightly"
    assert entry["schedule"].hour == {2} and entry["schedule"].minute == {0}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("delta", "0.5", "delta (the chance the guarantee fails) must be above 0 and below 0.5"),
        ("delta", "0", "delta (the chance the guarantee fails) must be above 0 and below 0.5"),
        ("target_precision", "0", "a target precision must be above 0 and at most 1"),
        ("target_precision", "1.2", "a target precision must be above 0 and at most 1"),
    ],
)
def test_a_bad_delta_or_target_is_a_form_error_on_that_field(
    client, categories, field, value, message
):
    client.force_login(make_user("root", group=ADMINS))
    policy = RoutingPolicy.current()
    data = {
        "default_threshold": "0.9",
        "audit_rate": "0",
        "min_support": "30",
        "audit_floor": "20",
        "delta": "0.05",
        "certification": "pooled",
        "queue_order": "oldest",
        field: value,
    }
    response = client.post(f"/admin/triage/routingpolicy/{policy.pk}/change/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    policy.refresh_from_db()
    assert (policy.delta, policy.certification) == (0.05, "fallback")  # the default, unchanged


def test_the_queues_access_check_answers_as_has_perm_does_for_every_kind_of_user():
    from django.contrib.auth.models import AnonymousUser, Group, Permission

    from triage.access import SENIORS, can_review

    users = [make_user(group=g) for g in ("analysts", SENIORS, ADMINS)]
    users.append(User.objects.create_superuser("root", password="pw"))
    users.append(User.objects.create_user("nobody", password="pw"))
    direct = User.objects.create_user("direct", password="pw")
    direct.user_permissions.add(Permission.objects.get(codename="add_review"))
    users.append(direct)
    # Permissions through a group of one's own, and a group without the permission.
    other = Group.objects.create(name="readers")
    other.permissions.add(Permission.objects.get(codename="view_item"))
    users.append(make_user(group="readers"))
    inactive = make_user()
    inactive.is_active = False
    inactive.save()
    users.append(inactive)
    answers = {
        u.username: (can_review(User.objects.get(pk=u.pk)), u.has_perm("triage.add_review"))
        for u in users
    }
    assert all(mine == django for mine, django in answers.values()), answers
    assert [mine for mine, _ in answers.values()] == [True] * 4 + [False, True, False, False]
    assert can_review(AnonymousUser()) is False
