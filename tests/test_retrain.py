import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.decisions import record_training_example
from triage import training
from triage.api import ingest
from triage.classify import scoring, service, sweep
from triage.classify.scoring import embed_items
from triage.ml.encoder import get_encoder
from triage.ml.heads import load_head
from triage.models import (
    AuditLog,
    Embedding,
    Item,
    ModelVersion,
    Prediction,
    ReviewTask,
    RoutingPolicy,
)
from triage.monitoring.models import Alert
from triage.training import fit

from .factories import make_item, make_labelled_history

pytestmark = pytest.mark.django_db


def labelled_history(categories):
    return make_labelled_history(categories, copies=8)


def test_retrain_with_too_few_examples_says_what_is_missing(categories):
    item = make_item("refund", status=Item.Status.RESOLVED)
    record_training_example(item=item, category=categories["billing"], source="review")
    with pytest.raises(CommandError, match="too few examples to retrain.*billing"):
        call_command("retrain")
    assert not ModelVersion.objects.exists()


def test_first_model_is_promoted_with_a_checked_artifact(categories):
    labelled_history(categories)
    result = training.retrain()
    version = result.version
    assert result.promoted
    assert version.status == ModelVersion.Status.CHAMPION
    assert version.labels == ["billing", "other", "outage"]
    assert version.metrics["macro_f1"] > 0.8
    assert version.artifact_path.endswith(".safetensors")
    assert len(version.artifact_sha256) == 64
    assert AuditLog.objects.filter(action="promote").exists()


def add_examples(categories, copies: int, start: int = 100) -> None:
    """Fresh labelled examples (new wording, so new items) of every category."""
    from .factories import KEYWORD_TEXTS

    for k in range(start, start + copies):
        for slug, texts in KEYWORD_TEXTS.items():
            for text in texts:
                item = make_item(f"{text} case {k}", status=Item.Status.RESOLVED)
                record_training_example(item=item, category=categories[slug], source="review")


def test_a_worse_candidate_is_not_promoted(categories, monkeypatch):
    labelled_history(categories)
    champion = training.retrain().version
    add_examples(categories, copies=4)
    # A broken trainer: the candidate learns shuffled labels.
    real = fit.train_logistic_head

    def shuffled(vectors, labels, **kwargs):
        rng = np.random.default_rng(0)
        return real(vectors, list(rng.permutation(labels)), **kwargs)

    monkeypatch.setattr(fit, "train_logistic_head", shuffled)
    result = training.retrain()
    assert not result.promoted
    assert "kept champion: candidate is worse" in result.message
    assert "on the same" in result.message and "examples neither trained on" in result.message
    assert result.version.status == ModelVersion.Status.REJECTED
    assert ModelVersion.objects.champion() == champion


def test_a_candidate_with_nothing_new_keeps_the_champion(categories):
    labelled_history(categories)
    first = training.retrain().version
    second = training.retrain()
    assert not second.promoted
    assert "kept champion" in second.message
    assert ModelVersion.objects.champion() == first


def test_a_candidate_with_much_more_data_replaces_the_champion(categories):
    labelled_history(categories)
    first = training.retrain().version
    add_examples(categories, copies=8)
    second = training.retrain()
    assert second.promoted, second.message
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.RETIRED
    gate = second.version.metrics["gate"]
    assert gate["n"] == second.version.training_snapshot["train"] - first.training_snapshot["train"]


def test_rollback_brings_back_the_previous_champion(categories):
    labelled_history(categories)
    first = training.retrain().version
    add_examples(categories, copies=8)
    second = training.retrain().version
    assert training.rollback(actor="user:admin") == first
    second.refresh_from_db()
    assert second.status == ModelVersion.Status.REJECTED
    assert ModelVersion.objects.champion() == first


def test_a_tampered_artifact_is_refused(categories):
    labelled_history(categories)
    version = training.retrain().version
    with open(version.artifact_path, "r+b") as fh:
        size = fh.seek(0, 2)
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    scoring.clear_caches()
    item = make_item("refund my card")
    service.classify_items(item_ids=[item.pk])
    # Refused, and the item is not left in `received` to be re-queued forever.
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.review_tasks.get().reason == "model_unavailable"
    assert not item.predictions.exists()
    alert = Alert.objects.get(kind="model_unavailable", resolved_at=None)
    assert "sha256" in alert.message


def test_classify_routes_confident_items_and_queues_the_rest(categories):
    labelled_history(categories)
    version = training.retrain().version
    sure = make_item("refund the double charge on my card invoice payment")
    unsure = make_item("???")  # no words: a zero vector, the least confident input
    head = load_head(version.artifact_path, version.artifact_sha256)
    probs = head.predict_proba(get_encoder().encode([sure.text, unsure.text]))
    high, low = probs.max(axis=1)
    assert high > low
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"default_threshold": (high + low) / 2})
    assert service.classify_items(item_ids=[sure.pk, unsure.pk]) == 2
    sure.refresh_from_db()
    unsure.refresh_from_db()
    assert (sure.status, sure.final_category.slug) == ("routed", "billing")
    assert unsure.status == "in_review"
    assert ReviewTask.objects.get(item=unsure).reason == "low_confidence"
    # Running the task again (a redelivery) changes nothing.
    assert service.classify_items(item_ids=[sure.pk, unsure.pk]) == 0
    assert Prediction.objects.count() == 2


def test_audit_samples_are_routed_and_also_reviewed(categories):
    labelled_history(categories)
    training.retrain()
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "audit_rate": 1.0}
    )
    item = make_item("server down error outage")
    service.classify_items(item_ids=[item.pk])
    item.refresh_from_db()
    assert item.status == "routed"
    assert ReviewTask.objects.get(item=item).reason == "audit_sample"


def test_embeddings_are_cached_per_item(categories):
    items = [make_item("server down"), make_item("refund")]
    encoder = get_encoder()
    embed_items(items, encoder=encoder)
    calls = encoder.calls
    embed_items(items, encoder=encoder)
    assert encoder.calls == calls


@pytest.mark.needs_postgres("synchronous_commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_the_cache_alone_commits_without_waiting_for_the_disk(categories):
    """The embedding cache's own transaction skips the wait for the disk; a caller's
    transaction (which may hold decisions) keeps its durability, and so does the session."""
    lazy = "SET LOCAL synchronous_commit TO OFF"
    encoder = get_encoder()
    with CaptureQueriesContext(connection) as own:
        embed_items([make_item("server down"), make_item("refund")], encoder=encoder)
    with CaptureQueriesContext(connection) as inside, transaction.atomic():
        embed_items([make_item("card declined")], encoder=encoder)
    assert [q["sql"] for q in own.captured_queries].count(lazy) == 1
    assert lazy not in [q["sql"] for q in inside.captured_queries]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
    assert Embedding.objects.count() == 3


def test_items_whose_classification_failed_stay_received_and_are_swept(
    categories, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from triage.api.intake import ItemIn

    def broken(*, item_ids):
        raise RuntimeError("worker died")

    monkeypatch.setattr(service, "classify_items", broken)
    # The on-commit hand-off is robust: the failure is logged, the items are kept.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ingest.ingest_items(items=[ItemIn(external_id="lost-1", text="server down")])
    assert len(callbacks) == 1
    item = Item.objects.get(external_id="lost-1")
    assert result.created == [item]
    assert item.status == Item.Status.RECEIVED
    with override_settings(TRIAGE_STUCK_AFTER_SECONDS=300):
        assert sweep.requeue_stuck_items() == []
        later = timezone.now() + timedelta(minutes=6)
        assert sweep.requeue_stuck_items(now=later) == [item.pk]
