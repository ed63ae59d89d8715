"""No item is stuck and none is routed wrongly: scoring failures, inactive categories,
fixed slugs, and the stuck-item sweep."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from triage import training
from triage.access import ADMINS
from triage.actions.models import Event
from triage.classify import service, sweep
from triage.classify.scoring import Scores
from triage.ml.heads import ArtifactError
from triage.models import Category, Item, ModelVersion, Prediction, RoutingPolicy
from triage.monitoring.models import Alert

from .factories import make_item, make_labelled_history, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "audit_rate": 0}
    )
    return training.retrain().version


def assert_sent_to_review_unscored(item):
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.review_tasks.get().reason == "model_unavailable"
    assert not Event.objects.filter(item=item).exists()


def test_a_missing_artifact_sends_items_to_review_with_an_alert(champion):
    Path(champion.artifact_path).unlink()
    items = [make_item("refund my card"), make_item("server down")]
    assert service.classify_items(item_ids=[i.pk for i in items]) == 2
    for item in items:
        assert_sent_to_review_unscored(item)
    alert = Alert.objects.get(kind="model_unavailable", resolved_at=None)
    assert alert.count == 2
    assert "items went to review" in alert.message
    # A second failure bumps the same open alert instead of adding one.
    service.classify_items(item_ids=[make_item("again").pk])
    assert Alert.objects.get(resolved_at=None).count == 3


def tamper(path: str) -> None:
    """Flip one byte in the middle of the file: same size, different sha256."""
    with open(path, "r+b") as fh:
        middle = fh.seek(0, 2) // 2
        fh.seek(middle)
        byte = fh.read(1)
        fh.seek(middle)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_process_that_already_loaded_the_head_stops_serving_it_once_the_file_changes(
    champion,
):
    first = make_item("refund the double charge on my card invoice payment")
    service.classify_items(item_ids=[first.pk])  # this process now holds the head
    first.refresh_from_db()
    assert first.status == Item.Status.ROUTED
    tamper(champion.artifact_path)  # no cache is cleared: the same process goes on serving
    item = make_item("refund the double charge on my card invoice payment")
    service.classify_items(item_ids=[item.pk])
    assert_sent_to_review_unscored(item)
    assert "sha256" in Alert.objects.get(kind="model_unavailable").message


def test_a_tampered_version_cannot_come_back_though_this_process_loaded_it(champion):
    service.classify_items(item_ids=[make_item("refund my card").pk])  # caches its head
    newer = training.retrain().version  # nothing new: kept as a candidate
    training.promote_version(version=newer, actor="user:root")
    tamper(champion.artifact_path)
    with pytest.raises(ArtifactError, match="sha256"):
        training.rollback(actor="user:root")
    with pytest.raises(ArtifactError, match="sha256"):
        training.promote_version(version=champion, actor="user:root")
    assert ModelVersion.objects.champion() == newer


def test_a_champion_changed_elsewhere_to_a_tampered_version_is_refused_here(champion):
    # Another process promoted it while its file was sound; the file changed since. This
    # process loaded that head back when it was champion the first time.
    service.classify_items(item_ids=[make_item("refund my card").pk])
    newer = training.retrain().version
    training.promote_version(version=newer, actor="user:root")
    service.classify_items(item_ids=[make_item("server down").pk])
    tamper(champion.artifact_path)
    ModelVersion.objects.filter(pk=newer.pk).update(status=ModelVersion.Status.RETIRED)
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelVersion.Status.CHAMPION)
    item = make_item("refund the double charge on my card invoice payment")
    service.classify_items(item_ids=[item.pk])
    assert_sent_to_review_unscored(item)


def test_an_encoder_error_sends_items_to_review(champion, monkeypatch):
    def broken(version, *, items):
        raise RuntimeError("CUDA out of memory, or any other encoder crash")

    monkeypatch.setattr(service, "version_scores", broken)
    item = make_item("refund my card")
    service.classify_items(item_ids=[item.pk])
    assert_sent_to_review_unscored(item)
    assert "encoder crash" in Alert.objects.get().message


def test_a_label_with_no_category_sends_items_to_review(champion, monkeypatch):
    def ghost(version, *, items):
        return Scores(("billing", "ghost"), np.array([[0.1, 0.9]] * len(items)))

    monkeypatch.setattr(service, "version_scores", ghost)
    item = make_item("refund my card")
    service.classify_items(item_ids=[item.pk])
    assert_sent_to_review_unscored(item)
    assert "'ghost' have no category" in Alert.objects.get().message


def test_an_inactive_category_is_never_auto_routed(champion, categories):
    Category.objects.filter(slug="billing").update(is_active=False)
    billing = make_item("refund the double charge on my card invoice payment")
    outage = make_item("the server is down and shows an error")
    service.classify_items(item_ids=[billing.pk, outage.pk])
    billing.refresh_from_db()
    outage.refresh_from_db()
    assert billing.status == Item.Status.IN_REVIEW
    assert billing.final_category is None
    assert Prediction.objects.get(item=billing).reason == "category_inactive"
    assert billing.review_tasks.get().reason == "category_inactive"
    assert outage.status == Item.Status.ROUTED  # the others still flow


def test_a_slug_cannot_change_once_items_use_it(categories):
    billing = categories["billing"]
    billing.slug = "payments"
    billing.full_clean()  # unused: renaming is fine
    billing.slug = "billing"
    make_item("x", final_category=billing, status=Item.Status.RESOLVED)
    billing.slug = "payments"
    with pytest.raises(ValidationError) as excinfo:
        billing.full_clean()
    assert "cannot change" in excinfo.value.message_dict["slug"][0]


def test_the_admin_shows_a_used_slug_read_only(client, categories):
    make_item("x", final_category=categories["billing"], status=Item.Status.RESOLVED)
    client.force_login(make_user("root", group=ADMINS))
    used = client.get(f"/admin/triage/category/{categories['billing'].pk}/change/")
    unused = client.get(f"/admin/triage/category/{categories['outage'].pk}/change/")
    assert 'name="slug"' not in used.content.decode()
    assert 'name="slug"' in unused.content.decode()


# --- The stuck-item sweep ------------------------------------------------------


def received(minutes_ago, now, text="refund"):
    return make_item(text, received_at=now - timedelta(minutes=minutes_ago))


def classified(minutes_ago, now, categories, received_minutes_ago):
    item = received(received_minutes_ago, now)
    Prediction.objects.create(
        item=item,
        label=categories["billing"],
        confidence=0.5,
        scores=[],
        route="review",
        reason="below_threshold",
        created_at=now - timedelta(minutes=minutes_ago),
    )
    Item.objects.filter(pk=item.pk).update(status=Item.Status.IN_REVIEW)
    return item


def test_the_sweep_leaves_items_waiting_behind_a_moving_queue(categories, settings):
    settings.TRIAGE_STUCK_AFTER_SECONDS = 120
    now = timezone.now()
    lost = received(30, now)  # the workers passed it: its message was lost
    # The workers are busy: they classified, a minute ago, an item received 20 minutes ago.
    classified(1, now, categories, received_minutes_ago=20)
    waiting = received(10, now)  # received after that one: still in the queue
    assert sweep.requeue_stuck_items(now=now) == [lost.pk]
    assert Item.objects.get(pk=waiting.pk).classify_attempts == 0


def test_when_the_queue_is_idle_every_overdue_item_is_requeued(categories, settings):
    settings.TRIAGE_STUCK_AFTER_SECONDS = 120
    now = timezone.now()
    classified(60, now, categories, received_minutes_ago=61)  # nothing classified lately
    old, newer = received(30, now), received(10, now)
    fresh = received(1, now)  # not overdue yet
    assert sweep.requeue_stuck_items(now=now) == [old.pk, newer.pk]
    assert Item.objects.get(pk=fresh.pk).classify_attempts == 0


def test_the_sweep_counts_attempts_and_backs_off(categories, settings):
    settings.TRIAGE_STUCK_AFTER_SECONDS = 60
    settings.TRIAGE_STUCK_MAX_ATTEMPTS = 3
    now = timezone.now()
    item = received(5, now)
    waits = []
    for attempt in (1, 2, 3):
        assert sweep.requeue_stuck_items(now=now) == [item.pk]
        item.refresh_from_db()
        assert item.classify_attempts == attempt
        waits.append((item.classify_after - now).total_seconds())
        assert sweep.requeue_stuck_items(now=now) == []  # backing off
        now = item.classify_after
    assert waits == [120, 240, 480]
    # Out of attempts: a person decides rather than the sweep re-queuing it forever.
    assert sweep.requeue_stuck_items(now=now) == []
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.review_tasks.get().reason == "model_unavailable"
    assert Alert.objects.get(kind="classification_lost").count == 1


def test_open_alerts_are_shown_on_the_admin_home_page(client, champion):
    Path(champion.artifact_path).unlink()
    service.classify_items(item_ids=[make_item("refund my card").pk])
    client.force_login(make_user("root", group=ADMINS))
    body = client.get("/admin/").content.decode()
    assert "model_unavailable" in body and "items went to review" in body
    Alert.objects.update(resolved_at=timezone.now())
    assert "items went to review" not in client.get("/admin/").content.decode()
