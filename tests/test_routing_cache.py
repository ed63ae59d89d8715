"""The derived routing policy is cached per process and dropped when any input changes.

Each test warms the cache, changes one input through a real write path, and checks
that the next derivation is new and reflects the change: a key that ignored the
input would hand back the stale object and fail the test.
"""

import pytest
from django.core.management import call_command
from django.utils import timezone

from triage import training
from triage.access import ADMINS
from triage.classify import service
from triage.cockpit.preview import Setting
from triage.cockpit.services import save_category_setting
from triage.models import Category, ModelVersion, Prediction, RoutingPolicy
from triage.monitoring.models import CategoryWatch
from triage.monitoring.watch import resume_category
from triage.routing import cache, derive
from triage.routing.derive import derived, routing_policy

from .factories import make_item, make_labelled_history, make_user

pytestmark = pytest.mark.django_db

BILLING_TEXT = "refund the double charge on my card invoice payment"


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0, "audit_floor": 0},
    )
    return training.retrain().version


@pytest.fixture
def certifications(monkeypatch):
    """Counts derivations (each certifies every active category)."""
    calls = []
    original = derive.derive_rules

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(derive, "derive_rules", counting)
    cache.clear()  # the retrain that made the champion derived its policy already
    return calls


def test_a_second_derivation_costs_one_query_and_no_certification(
    champion, certifications, django_assert_num_queries
):
    first = derived(champion)
    assert len(certifications) == 1
    with django_assert_num_queries(1):
        again = derived(champion)
    assert again is first and len(certifications) == 1


@pytest.mark.parametrize(
    ("field", "value", "seen"),
    [
        ("target_precision", 0.95, lambda d: d.reports[0].rule.target == 0.95),
        ("default_threshold", 0.42, lambda d: d.policy.default.threshold == 0.42),
        ("min_support", 10_000, lambda d: all(r.rule.threshold is None for r in d.reports)),
        # The default splits delta across the scopes: each scope's share grows with it.
        ("delta", 0.2, lambda d: (d.reports[0].delta or 0) > 0.05),
        (
            "certification",
            "per_category",
            lambda d: d.reports[0].scope == "category" and d.reports[0].delta == 0.05,
        ),
        ("audit_rate", 0.5, lambda d: d.policy.audit_rate == 0.5),
    ],
)
@pytest.mark.parametrize("write", ["save", "queryset update"])
def test_a_policy_change_drops_the_cached_policy(champion, field, value, seen, write):
    before = derived(champion)
    assert not seen(before)
    if write == "save":
        policy = RoutingPolicy.current()
        setattr(policy, field, value)
        policy.save()
    else:
        RoutingPolicy.objects.filter(pk=1).update(**{field: value})
    after = derived(champion)
    assert after is not before and seen(after)


def test_the_policy_command_drops_the_cached_policy(champion):
    before = routing_policy(champion)
    call_command("policy", "--threshold", "0.33")
    after = routing_policy(champion)
    assert after is not before and after.default.threshold == 0.33


def test_a_category_rule_saved_in_the_cockpit_drops_the_cached_policy(champion):
    before = routing_policy(champion)
    billing = Category.objects.get(slug="billing")
    save_category_setting(category=billing, setting=Setting(None, 0.99), actor="test")
    after = routing_policy(champion)
    assert after is not before
    assert after.rule_for("billing").threshold == 0.99
    assert after.rule_for("billing").mode == "threshold"


@pytest.mark.parametrize("write", ["save", "queryset update", "bulk_update"])
def test_a_category_threshold_change_drops_the_cached_policy(champion, write):
    before = routing_policy(champion)
    billing = Category.objects.get(slug="billing")
    if write == "save":
        billing.threshold, billing.target_precision = 0.61, None
        billing.save(update_fields=["threshold", "target_precision"])
    elif write == "queryset update":
        Category.objects.filter(slug="billing").update(threshold=0.61)
    else:
        billing.threshold = 0.61
        Category.objects.bulk_update([billing], ["threshold"])
    after = routing_policy(champion)
    assert after is not before and after.rule_for("billing").threshold == 0.61


def test_switching_a_category_off_in_the_admin_drops_the_cached_policy(champion, client):
    client.force_login(make_user("root", group=ADMINS))
    before = derived(champion)
    assert "outage" in {r.slug for r in before.reports}
    outage = Category.objects.get(slug="outage")
    form = client.get(f"/admin/triage/category/{outage.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "is_active"}
    response = client.post(f"/admin/triage/category/{outage.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    after = derived(champion)
    assert after is not before
    assert "outage" not in {r.slug for r in after.reports}


def test_adding_and_deleting_a_category_drop_the_cached_policy(champion):
    before = derived(champion)
    Category.objects.create(slug="refunds", name="Refunds")
    added = derived(champion)
    assert added is not before and "refunds" in {r.slug for r in added.reports}
    Category.objects.filter(slug="refunds").delete()
    deleted = derived(champion)
    assert deleted is not added and "refunds" not in {r.slug for r in deleted.reports}


def never_edited(*slugs: str) -> list[Category]:
    """Categories with revision 0, as bulk_create (which skips save()) or the migration
    that added revisions leaves them."""
    keys = iter("789")
    return Category.objects.bulk_create(
        [Category(slug=slug, name=slug.title(), hotkey=next(keys)) for slug in slugs]
    )


def test_deleting_a_never_edited_category_drops_the_cached_policy(champion):
    """Only the number of categories tells: the sum of revisions and the highest id stay."""
    spare, _ = never_edited("spare", "newest")
    before = derived(champion)
    Category.objects.filter(pk=spare.pk).delete()
    after = derived(champion)
    assert after is not before and "spare" not in {r.slug for r in after.reports}


def test_a_category_replaced_by_a_bulk_created_one_drops_the_cached_policy(champion):
    """Only the highest id tells: the count and the sum of revisions stay."""
    (spare,) = never_edited("spare")
    before = derived(champion)
    Category.objects.filter(pk=spare.pk).delete()
    never_edited("refunds")
    after = derived(champion)
    assert after is not before and "refunds" in {r.slug for r in after.reports}


def test_a_new_champion_gets_its_own_derivation(champion):
    before = derived(champion)
    second = training.retrain().version
    training.promote_version(version=second, actor="test")
    served = ModelVersion.objects.champion()
    assert served == second
    assert derived(served) is not before
    assert derived(served).evidence.example_ids == before.evidence.example_ids
    assert derived(None).evidence is None  # cold start: its own entry too


def test_a_suspension_applies_at_once_though_the_policy_is_cached(champion):
    """Suspensions are applied after the cache (live_routing_policy), not derived into it."""
    warm = routing_policy(champion)
    billing = Category.objects.get(slug="billing")
    CategoryWatch.objects.filter(category=billing).update(suspended_at=timezone.now())
    item = make_item(BILLING_TEXT)
    service.classify_items(item_ids=[item.pk])
    assert Prediction.objects.get(item=item).reason == "suspended"
    assert routing_policy(champion) is warm  # the derivation did not need to change

    resume_category(slug="billing", reason="checked by hand", actor="test")
    again = make_item(BILLING_TEXT + " again")
    service.classify_items(item_ids=[again.pk])
    assert Prediction.objects.get(item=again).reason != "suspended"


def test_every_write_bumps_the_revision():
    policy = RoutingPolicy.current()
    seen = [policy.revision]
    policy.audit_rate = 0.2
    policy.save()
    seen.append(policy.revision)
    policy.save(update_fields=["audit_rate"])
    seen.append(policy.revision)
    RoutingPolicy.objects.filter(pk=1).update(audit_rate=0.3)
    policy.refresh_from_db()
    seen.append(policy.revision)
    assert seen == sorted(seen) and len(set(seen)) == 4
    assert isinstance(policy.revision, int)


def test_the_admin_category_list_certifies_once_not_per_row(champion, client, certifications):
    client.force_login(make_user("root", group=ADMINS))
    response = client.get("/admin/triage/category/")
    assert response.status_code == 200
    assert response.content.decode().count("(derived, automates") == 3
    assert len(certifications) == 1
    client.get("/admin/triage/category/")
    assert len(certifications) == 1
