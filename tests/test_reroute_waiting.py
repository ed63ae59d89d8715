"""Waiting items meet a new champion (triage.classify.waiting): when the champion changes,
the items still waiting because the model was unsure are scored by the new one and those
its rules now automate leave the queue, through the classify write path."""

from datetime import timedelta

import pytest
from django.utils import timezone

from triage import training
from triage.actions.models import Event
from triage.classify import waiting
from triage.classify.scoring import embed_items
from triage.ml.encoder import encoder_for
from triage.models import AuditLog, Item, ModelVersion, Prediction, ReviewTask, RoutingPolicy
from triage.monitoring.models import AuditSample
from triage.training.models import TrainingExample

from .factories import (
    make_item,
    make_labelled_history,
    make_prediction,
    make_task,
    make_user,
)

pytestmark = pytest.mark.django_db

BILLING_TEXT = "refund the double charge on my card invoice payment"
OUTAGE_TEXT = "the server is down with an outage error"


def sent_to_people(item, categories):
    """The item's prediction at arrival: unsure, so a person was asked."""
    make_prediction(
        item,
        categories["other"],
        confidence=0.4,
        route=Prediction.Route.REVIEW,
        reason="below_threshold",
    )


def certifying_policy():
    """A target the keyword model certifies on its small history, no audits."""
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0, "audit_floor": 0},
    )


@pytest.fixture
def champion(categories):
    # As if each labelled item had waited in the queue and a person decided it (the
    # re-route certifies on such items only).
    for item in make_labelled_history(categories):
        sent_to_people(item, categories)
    certifying_policy()
    version = training.retrain().version
    assert ModelVersion.objects.champion() == version
    return version


def waiting_item(
    categories, text, *, reason=ReviewTask.Reason.LOW_CONFIDENCE, embedded=True, **task_fields
):
    """An item queued by an earlier model (none: cold start), as classification leaves it:
    with its embedding cached (classification embeds every item it scores)."""
    item = make_item(text, status=Item.Status.IN_REVIEW)
    if embedded:
        champion = ModelVersion.objects.champion()
        embed_items([item], encoder=encoder_for(champion.encoder_spec))
    sent_to_people(item, categories)
    return make_task(item, reason=reason, **task_fields)


def test_waiting_items_the_champion_now_automates_leave_the_queue(categories, champion):
    sure = waiting_item(categories, BILLING_TEXT)
    cold = waiting_item(categories, OUTAGE_TEXT, reason=ReviewTask.Reason.COLD_START)
    unsure = waiting_item(categories, "zzz qqq unrelated words")

    rerouted = waiting.reroute_waiting(actor="test")

    assert rerouted.scored == 3
    assert rerouted.outcome.routed == 2
    for task, slug in ((sure, "billing"), (cold, "outage")):
        task.refresh_from_db()
        item = Item.objects.get(pk=task.item_id)
        assert task.completed_at is not None
        assert (item.status, item.final_category.slug, item.decided_by) == (
            Item.Status.ROUTED,
            slug,
            f"model:v{champion.pk}",
        )
        latest = item.latest_prediction()
        assert (latest.route, latest.model_version) == (Prediction.Route.AUTO, champion)
    # One action, one write path: the re-routed items are announced like any auto-action.
    assert set(Event.objects.filter(type="item.routed").values_list("item_id", flat=True)) == {
        sure.item_id,
        cold.item_id,
    }
    # The one it is still unsure of keeps its task and the suggestion it was queued with.
    unsure.refresh_from_db()
    assert unsure.completed_at is None
    assert Prediction.objects.filter(item_id=unsure.item_id).count() == 1
    entry = AuditLog.objects.get(action="reroute_waiting")
    assert (entry.actor, entry.detail["routed"], entry.detail["version"]) == (
        "test",
        2,
        champion.pk,
    )
    assert sorted(entry.detail["items"]) == sorted([sure.item_id, cold.item_id])
    # Run again: nothing left to route.
    assert waiting.reroute_waiting(actor="test").outcome.routed == 0


def test_an_audit_draw_keeps_the_task_open_as_the_audit_sample(categories, champion):
    RoutingPolicy.objects.filter(pk=1).update(audit_rate=1.0)
    task = waiting_item(categories, BILLING_TEXT)

    assert waiting.reroute_waiting(actor="test").outcome.audited == 1

    task.refresh_from_db()
    assert task.completed_at is None and task.reason == ReviewTask.Reason.AUDIT_SAMPLE
    assert AuditSample.objects.filter(item_id=task.item_id).exists()
    assert Item.objects.get(pk=task.item_id).status == Item.Status.ROUTED


def test_held_tasks_and_other_reasons_are_left_alone(categories, champion):
    held = waiting_item(
        categories,
        BILLING_TEXT,
        claimed_by=make_user("alice"),
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    lapsed = waiting_item(
        categories,
        BILLING_TEXT + " again",
        claimed_by=make_user("bob"),
        lease_expires_at=timezone.now() - timedelta(minutes=1),
    )
    others = [
        waiting_item(categories, BILLING_TEXT + f" {n}", reason=reason)
        for n, reason in enumerate(
            [
                ReviewTask.Reason.ESCALATED,
                ReviewTask.Reason.SECOND_REVIEW,
                ReviewTask.Reason.AUDIT_SAMPLE,
                ReviewTask.Reason.RULE,
                ReviewTask.Reason.SUSPENDED,
            ]
        )
    ]

    assert waiting.reroute_waiting(actor="test").outcome.routed == 1

    lapsed.refresh_from_db()
    assert lapsed.completed_at is not None  # a lapsed lease is nobody's card
    for task in [held, *others]:
        task.refresh_from_db()
        assert task.completed_at is None, task.reason


def test_switched_off_by_the_policy(categories, champion):
    RoutingPolicy.objects.filter(pk=1).update(reroute_waiting=False)
    task = waiting_item(categories, BILLING_TEXT)
    assert waiting.reroute_waiting(actor="test") == waiting.Rerouted()
    task.refresh_from_db()
    assert task.completed_at is None


def test_queued_for_a_champion_that_was_replaced_does_nothing(categories, champion):
    task = waiting_item(categories, BILLING_TEXT)
    assert waiting.reroute_waiting(actor="test", version_id=champion.pk + 1000).scored == 0
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_promotion_and_a_roll_back_each_reroute_once_committed(
    categories, champion, django_capture_on_commit_callbacks
):
    second = training.retrain().version
    first_task = waiting_item(categories, BILLING_TEXT)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        training.promote_version(version=second, actor="admin")
    assert len(callbacks) == 1
    first_task.refresh_from_db()
    assert first_task.completed_at is not None
    assert Item.objects.get(pk=first_task.item_id).decided_by == f"model:v{second.pk}"
    assert AuditLog.objects.get(action="reroute_waiting").actor == "admin"

    again = waiting_item(categories, BILLING_TEXT + " again")
    with django_capture_on_commit_callbacks(execute=True):
        training.rollback(actor="admin")
    again.refresh_from_db()
    assert again.completed_at is not None
    assert Item.objects.get(pk=again.item_id).decided_by == f"model:v{champion.pk}"


def test_a_scoring_failure_leaves_every_item_waiting(categories, champion, monkeypatch):
    task = waiting_item(categories, BILLING_TEXT)

    def broken(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr("triage.classify.service.version_scores", broken)
    assert waiting.reroute_waiting(actor="test").scored == 0
    task.refresh_from_db()
    assert task.completed_at is None
    assert Item.objects.get(pk=task.item_id).status == Item.Status.IN_REVIEW


def test_the_policy_command_switches_it_and_logs_it(categories, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    assert RoutingPolicy.current().reroute_waiting  # on by default
    call_command("policy", "--reroute-waiting", "off")
    assert not RoutingPolicy.current().reroute_waiting
    entry = AuditLog.objects.filter(action="policy").latest("pk")
    assert (entry.detail["before"], entry.detail["after"]) == (
        {"reroute_waiting": True},
        {"reroute_waiting": False},
    )
    assert "waiting items a new champion automates: left for people" in capsys.readouterr().out
    with pytest.raises(CommandError, match="reroute-waiting|reroute_waiting"):
        call_command("policy", "--reroute-waiting", "maybe")


def test_items_the_champion_would_have_to_embed_again_keep_waiting(categories, champion):
    """A promotion costs the head's work per waiting item, never an encoder's: an item
    with no cached vector in the champion's space (a new encoder) is left for people."""
    task = waiting_item(categories, BILLING_TEXT, embedded=False)
    assert waiting.reroute_waiting(actor="test").scored == 0
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_sequence_classifier_champion_leaves_the_queue_alone(categories, champion):
    task = waiting_item(categories, BILLING_TEXT)
    ModelVersion.objects.filter(pk=champion.pk).update(kind=ModelVersion.Kind.SEQUENCE_CLASSIFIER)
    assert waiting.reroute_waiting(actor="test") == waiting.Rerouted()
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_task_claimed_while_the_champion_scores_stays_with_its_analyst(
    categories, champion, monkeypatch
):
    """An analyst claims the task after it was read but before the routing is written:
    the write re-checks under the row lock and leaves the analyst's card alone."""
    task = waiting_item(categories, BILLING_TEXT)
    other = waiting_item(categories, BILLING_TEXT + " too")
    analyst = make_user("alice")
    scoring = waiting.score_items

    def claimed_meanwhile(*args, **kwargs):
        ReviewTask.objects.filter(pk=task.pk).update(
            claimed_by=analyst, lease_expires_at=timezone.now() + timedelta(minutes=5)
        )
        return scoring(*args, **kwargs)

    monkeypatch.setattr(waiting, "score_items", claimed_meanwhile)
    assert waiting.reroute_waiting(actor="test").outcome.routed == 1
    task.refresh_from_db()
    other.refresh_from_db()
    assert task.completed_at is None and task.claimed_by == analyst
    assert Item.objects.get(pk=task.item_id).status == Item.Status.IN_REVIEW
    assert other.completed_at is not None


def test_the_promotion_page_says_what_happens_to_the_waiting_items(categories, champion, client):
    from triage.access import ADMINS

    second = training.retrain().version
    for n in range(3):
        waiting_item(categories, f"{BILLING_TEXT} {n}")
    client.force_login(make_user("root", group=ADMINS))
    page = client.get(f"/cockpit/models/{second.pk}/promote").content.decode()
    assert "Then the 3 items waiting for a first decision" in page
    assert f"are scored by v{second.pk}" in page
    RoutingPolicy.objects.filter(pk=1).update(reroute_waiting=False)
    page = client.get(f"/cockpit/models/{second.pk}/promote").content.decode()
    assert 'id="reroute-waiting"' not in page


def test_evidence_that_never_waited_certifies_no_reroute(categories):
    """Imported history is not what waits: the live rules automate the item, the
    re-route does not (certified on the queue's own evidence, there is none)."""
    make_labelled_history(categories)
    certifying_policy()
    training.retrain()
    task = waiting_item(categories, BILLING_TEXT)
    assert waiting.reroute_waiting(actor="test") == waiting.Rerouted()
    task.refresh_from_db()
    assert task.completed_at is None
    # A raw threshold is the admin's, certified on nothing: it applies as it is.
    categories["billing"].threshold = 0.5
    categories["billing"].save()
    assert waiting.reroute_waiting(actor="test").outcome.routed == 1


def test_queue_evidence_keeps_the_items_the_model_sent_to_people(categories, champion):
    from triage.routing.derive import derived

    evidence = derived(champion).evidence
    queued = waiting.queue_evidence(evidence)
    assert len(queued) == len(evidence) > 0
    # An audited auto-action and an item a rule sent to people are not the queue's.
    first, second = TrainingExample.objects.filter(pk__in=evidence.example_ids[:2])
    Prediction.objects.filter(item_id=first.item_id).update(route=Prediction.Route.AUTO)
    Prediction.objects.filter(item_id=second.item_id).update(reason="rule")
    assert len(waiting.queue_evidence(evidence)) == len(evidence) - 2
    assert waiting.queue_evidence(None) is None


def test_the_cockpits_reroute_certifies_a_target_on_the_queue_too(categories):
    """The admin's re-route after a rule change decides waiting items as a promotion's
    does: with imported history only, the target certifies nothing for them."""
    from triage.cockpit.services import reroute_candidates

    make_labelled_history(categories)
    certifying_policy()
    version = training.retrain().version
    item = make_item(BILLING_TEXT, status=Item.Status.IN_REVIEW)
    make_prediction(
        item, categories["billing"], confidence=1.0, route="review", model_version=version
    )
    make_task(item)
    live = waiting.policy_in_force(version, categories, now=timezone.now())
    assert live.rules["billing"].threshold <= 1.0  # an arrival as sure would go
    assert reroute_candidates(category=categories["billing"]) == []
