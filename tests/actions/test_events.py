"""Events are outbox rows written in the decision's transaction."""

import pytest
from django.db import transaction
from django.utils import timezone

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from tests.factories import make_item, make_labelled_history, make_user
from triage import training
from triage.actions.events import emit
from triage.actions.models import Delivery, Endpoint, Event
from triage.classify import service
from triage.models import Item, RoutingPolicy
from triage.routing.models import Rule

pytestmark = pytest.mark.django_db

ITEM_DATA_KEYS = {
    "item",
    "category",
    "action_queue",
    "decided_by",
    "confidence",
    "model_version",
    "reason",
    "rule",
}


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    return training.retrain().version


def set_policy(**fields):
    RoutingPolicy.objects.update_or_create(pk=1, defaults=fields)


def test_an_auto_routed_item_gets_an_item_routed_event(champion):
    set_policy(default_threshold=0.0, audit_rate=0, audit_floor=0)  # no audits at all
    item = make_item("refund the double charge on my card invoice", metadata={"channel": "email"})
    service.classify_items(item_ids=[item.pk])
    event = Event.objects.get(item=item)
    payload = event.payload
    assert event.type == payload["type"] == "item.routed"
    assert payload["id"] == event.event_id and payload["id"].startswith("evt_")
    assert payload["schema_version"] == 1
    assert payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert set(data) >= ITEM_DATA_KEYS
    assert data["item"]["external_id"] == item.external_id
    assert data["item"]["text"] == item.text
    assert data["item"]["metadata"] == {"channel": "email"}
    assert data["category"] == "billing"
    assert data["action_queue"] == "billing"
    assert data["decided_by"] == f"model:v{champion.pk}"
    assert data["model_version"] == champion.pk
    assert 0 < data["confidence"] <= 1
    assert data["reason"] in {"above_threshold", "audit_sample"}  # audits may be stratified
    assert data["rule"] is None


def test_items_sent_to_review_get_no_routed_event(champion):
    set_policy(target_precision=0.99, min_support=10_000, audit_rate=0)
    item = make_item("refund the double charge")
    service.classify_items(item_ids=[item.pk])
    assert Item.objects.get(pk=item.pk).status == Item.Status.IN_REVIEW
    assert not Event.objects.exists()


def test_a_rule_routes_before_the_model_and_counts_its_hit(champion, categories):
    set_policy(
        target_precision=0.99, min_support=10_000, audit_rate=0
    )  # the model alone would never auto-act
    Rule.objects.create(
        name="vip-to-outage",
        condition=Rule.Condition.METADATA,
        metadata_field="tier",
        metadata_values=["vip"],
        action=Rule.Action.ROUTE,
        category=categories["outage"],
    )
    vip = make_item("refund the double charge", metadata={"tier": "vip"})
    plain = make_item("refund the double charge", metadata={"tier": "free"})
    service.classify_items(item_ids=[vip.pk, plain.pk])
    vip.refresh_from_db()
    plain.refresh_from_db()
    assert (vip.status, vip.final_category.slug, vip.decided_by) == (
        "routed",
        "outage",
        "rule:vip-to-outage",
    )
    assert vip.predictions.get().reason == "rule"  # the model's view is still recorded
    assert plain.status == "in_review"
    data = Event.objects.get(item=vip).payload["data"]
    assert (data["reason"], data["rule"], data["category"]) == ("rule", "vip-to-outage", "outage")
    assert (data["confidence"], data["model_version"]) == (None, None)
    rule = Rule.objects.get()
    assert rule.hits == 1 and rule.last_hit_at is not None


def test_a_rule_can_force_review(champion):
    set_policy(default_threshold=0.0, audit_rate=0)
    Rule.objects.create(
        name="legal", condition=Rule.Condition.KEYWORDS, keywords=["lawyer"], action="review"
    )
    item = make_item("my LAWYER wants a refund of the charge")
    service.classify_items(item_ids=[item.pk])
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.review_tasks.get().reason == "rule"
    assert not Event.objects.exists()


def decide(item, user, slug):
    task = claim_next_task(user=user)
    assert task is not None and task.item_id == item.pk
    return submit_review(task_id=task.pk, user=user, category_slug=slug)


def test_a_review_emits_item_reviewed_with_agreement(champion):
    set_policy(target_precision=0.99, min_support=10_000, audit_rate=0)
    item = make_item("refund the double charge on my card invoice")
    service.classify_items(item_ids=[item.pk])
    decide(item, make_user("ann"), "billing")
    (event,) = Event.objects.filter(item=item)
    data = event.payload["data"]
    assert event.type == "item.reviewed"
    assert (data["agreed_with_model"], data["model_label"], data["audit"]) == (
        True,
        "billing",
        False,
    )
    assert (data["decided_by"], data["category"], data["reason"]) == (
        "user:ann",
        "billing",
        "low_confidence",
    )


def test_an_audit_that_overturns_an_auto_action_emits_item_corrected_after_routed(champion):
    set_policy(default_threshold=0.0, audit_rate=1.0)
    item = make_item("refund the double charge on my card invoice")
    service.classify_items(item_ids=[item.pk])
    item.refresh_from_db()
    assert item.status == Item.Status.ROUTED
    decide(item, make_user("ann"), "outage")
    item.refresh_from_db()
    assert item.final_category.slug == "outage"
    events = list(Event.objects.filter(item=item).order_by("id"))
    assert [e.type for e in events] == ["item.routed", "item.reviewed", "item.corrected"]
    reviewed, corrected = events[1].payload["data"], events[2].payload["data"]
    assert (reviewed["agreed_with_model"], reviewed["audit"]) == (False, True)
    assert (corrected["previous_category"], corrected["category"]) == ("billing", "outage")
    assert corrected["previous_decided_by"] == f"model:v{champion.pk}"


def test_an_audit_that_agrees_emits_no_correction(champion):
    set_policy(default_threshold=0.0, audit_rate=1.0)
    item = make_item("refund the double charge on my card invoice")
    service.classify_items(item_ids=[item.pk])
    decide(item, make_user("ann"), "billing")
    types = list(Event.objects.filter(item=item).order_by("id").values_list("type", flat=True))
    assert types == ["item.routed", "item.reviewed"]


def test_emit_outside_a_transaction_is_refused(transactional_db):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        emit("item.routed", data={})


@pytest.mark.parametrize("bad", ["routed", "Item.Routed", "item.", "item routed", ""])
def test_event_types_must_be_noun_verb(db, bad):
    with transaction.atomic(), pytest.raises(ValueError, match="noun.verb"):
        emit(bad, data={})


def test_new_event_types_are_accepted(db):
    # The type set is open: other parts (e.g. category suspension) emit their own.
    with transaction.atomic():
        event = emit("policy.suspended", data={"category": "billing"})
    assert event.payload["data"] == {"category": "billing"}


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_writes_and_delivers_nothing(
    webhook_settings, receiver, categories
):
    endpoint = Endpoint.objects.create(url=receiver.url)
    receiver.secret = endpoint.secret
    item = make_item("refund")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        emit("item.routed", item=item, data={"n": 1})
        assert Delivery.objects.count() == 1
        raise Boom
    # The same flow, committed, is delivered: the receiver works.
    with transaction.atomic():
        committed = emit("item.routed", item=item, data={"n": 2})
    receiver.wait_for(1)
    assert receiver.event_ids() == [committed.event_id]
    assert Event.objects.count() == Delivery.objects.count() == 1
    assert Delivery.objects.get().delivered_at <= timezone.now()
