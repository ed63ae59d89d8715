"""Whoever chooses external ids cannot choose which items are audited: the draw is keyed."""

import pytest

from triage import training
from triage.classify import service
from triage.models import ReviewTask, RoutingPolicy
from triage.routing.draws import audit_key
from triage.stats import hash_draw

from .factories import make_item, make_labelled_history

pytestmark = pytest.mark.django_db

RATE = 0.05


def ids_chosen_for(want_audit: bool, count: int = 60) -> list[str]:
    """Ids an outsider picks by the unkeyed hash to be audited (or never to be)."""
    picked = (f"probe-{n}" for n in range(100_000))
    return [i for i in picked if (hash_draw(i, salt="audit:") < RATE) == want_audit][:count]


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "audit_rate": RATE, "audit_floor": 0}
    )
    return training.retrain().version


def audited(external_ids: list[str]) -> int:
    items = [make_item("refund my card please", external_id=e) for e in external_ids]
    service.classify_items(item_ids=[i.pk for i in items])
    return ReviewTask.objects.filter(
        item__external_id__in=external_ids, reason=ReviewTask.Reason.AUDIT_SAMPLE
    ).count()


def test_ids_chosen_by_the_unkeyed_hash_are_audited_at_the_ordinary_rate(champion):
    # Before the key, all 60 chosen ids were audited and none of the 60 others.
    # Binomial(60, 0.05): more than 12 happens about once in a million.
    assert audited(ids_chosen_for(True)) <= 12
    assert audited(ids_chosen_for(False)) <= 12


def test_the_key_is_the_setting_or_derived_from_the_secret_key(settings):
    settings.TRIAGE_AUDIT_KEY = ""
    derived = audit_key()
    settings.SECRET_KEY = "another secret key"
    assert audit_key() != derived
    settings.TRIAGE_AUDIT_KEY = "an audit key"
    configured = audit_key()
    settings.SECRET_KEY = "yet another secret key"
    assert audit_key() == configured != derived
    assert b"an audit key" not in configured  # a derived key, not the setting itself
