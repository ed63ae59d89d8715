"""`manage.py prune --older-than`: retention of old, decided items; the beat entry."""

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reviews.decisions import record_training_example
from tests.factories import make_item, make_labelled_history, make_prediction, make_task
from triage import training
from triage.actions.events import emit, item_data
from triage.actions.models import Event
from triage.classify import service
from triage.models import AuditLog, Embedding, Item, ModelVersion, Prediction, ReviewTask
from triage.monitoring.models import AuditSample
from triage.privacy import retention
from triage.privacy import tasks as privacy_tasks
from triage.routing.evidence import load_evidence
from triage.training.models import TrainingExample

ROOT = Path(__file__).resolve().parents[2]
OLD = timezone.now() - timedelta(days=200)


def decided(text, category, *, received_at=OLD, status=Item.Status.ROUTED):
    item = make_item(
        text,
        status=status,
        received_at=received_at,
        final_category=category,
        metadata={"who": "someone"},
    )
    Embedding.objects.create(item=item, encoder="fake", vector=b"\0" * 8)
    prediction = make_prediction(item, category)
    record_training_example(item=item, category=category, source="review")
    emit(
        "item.routed",
        item=item,
        category=category,
        data=item_data(item, category=category, decided_by="model:v1", reason="above_threshold"),
    )
    return item, prediction


@pytest.mark.django_db
def test_old_decided_items_lose_text_metadata_embeddings_examples_and_predictions(categories):
    billing = categories["billing"]
    old, _ = decided("old and decided", billing)
    recent, _ = decided("recent", billing, received_at=timezone.now() - timedelta(days=10))

    out = io.StringIO()
    call_command("prune", "--older-than", "180d", stdout=out)

    old.refresh_from_db()
    assert (old.text, old.metadata, old.status, old.final_category) == ("", {}, "routed", billing)
    assert old.pruned_at is not None
    assert not Embedding.objects.filter(item=old).exists()
    assert not TrainingExample.objects.filter(item=old).exists()
    assert not Prediction.objects.filter(item=old).exists()
    item_payload = Event.objects.get(item=old).payload["data"]["item"]
    assert (item_payload["text"], item_payload["metadata"]) == ("", {})
    assert item_payload["text_removed"] == "retention"

    recent.refresh_from_db()
    assert recent.text == "recent" and recent.pruned_at is None
    assert Embedding.objects.filter(item=recent).exists()
    assert Prediction.objects.filter(item=recent).exists()
    assert TrainingExample.objects.filter(item=recent).exists()

    printed = out.getvalue()
    assert "pruned 1 item(s)" in printed
    assert "predictions deleted: 1" in printed
    entry = AuditLog.objects.get(action="prune")
    assert entry.detail["items"] == 1 and entry.detail["older_than_days"] == 180


@pytest.mark.django_db
def test_items_still_open_are_kept_whole(categories):
    billing = categories["billing"]
    waiting = make_item("in review", status=Item.Status.IN_REVIEW, received_at=OLD)
    make_task(waiting)
    received = make_item("never classified", received_at=OLD)
    audited, _ = decided("routed, audit pending", billing)
    make_task(audited, reason=ReviewTask.Reason.AUDIT_SAMPLE)

    out = io.StringIO()
    call_command("prune", "--older-than", "26w", stdout=out)

    for item, text in [
        (waiting, "in review"),
        (received, "never classified"),
        (audited, "routed, audit pending"),
    ]:
        item.refresh_from_db()
        assert (item.text, item.pruned_at) == (text, None)
    assert Prediction.objects.filter(item=audited).exists()
    assert "pruned 0 item(s)" in out.getvalue()
    assert "still open (received, in review, or with an open task): 3" in out.getvalue()


@pytest.mark.django_db
def test_a_backlog_is_pruned_in_batches_past_items_still_open(categories, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    billing = categories["billing"]
    items = [decided(f"old {n}", billing)[0] for n in range(3)]
    make_task(items[1])  # open: kept, and the next batches read on past it
    items += [decided(f"old {n}", billing)[0] for n in range(3, 6)]
    report = retention.prune(older_than=timedelta(days=180), actor="test")
    assert (report.items, report.still_open) == (5, 1)
    pruned = set(Item.objects.filter(pruned_at__isnull=False).values_list("pk", flat=True))
    assert pruned == {item.pk for item in items} - {items[1].pk}


@pytest.mark.django_db
def test_predictions_audit_verdicts_rest_on_are_kept(categories):
    billing = categories["billing"]
    item, prediction = decided("audited long ago", billing, status=Item.Status.RESOLVED)
    AuditSample.objects.create(
        item=item,
        prediction=prediction,
        category=billing,
        probability=0.05,
        audited_at=OLD,
        correct=True,
        audited_category=billing,
    )
    call_command("prune", "--older-than", "180d", stdout=io.StringIO())
    item.refresh_from_db()
    assert item.text == "" and item.pruned_at is not None
    assert Prediction.objects.filter(pk=prediction.pk).exists()
    assert AuditSample.objects.filter(prediction=prediction, correct=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("180", "give a number of days or weeks, e.g. 180d"),
        ("abc", "give a number of days or weeks"),
        ("-5d", "give a number of days or weeks"),
        ("1.5d", "give a number of days or weeks"),
        ("", "give a number of days or weeks"),
        ("0d", "the shortest retention is 30 days"),
        ("7d", "the shortest retention is 30 days"),
        ("999999d", "the longest retention is 36500 days"),
        ("９０d", "give a number of days or weeks"),  # full-width digits
    ],
)
def test_a_bad_duration_is_a_clear_error_and_nothing_is_pruned(categories, value, message):
    item, _ = decided("old and decided", categories["billing"])
    with pytest.raises(CommandError, match=message):
        call_command("prune", f"--older-than={value}")
    item.refresh_from_db()
    assert item.text == "old and decided"
    assert not AuditLog.objects.filter(action="prune").exists()


@pytest.mark.django_db
def test_the_duration_is_required():
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune")


@pytest.mark.django_db
def test_a_model_trained_on_pruned_examples_keeps_serving_and_retraining_uses_the_rest(
    categories,
):
    history = make_labelled_history(categories)
    champion = training.retrain().version
    evidence = load_evidence(champion).as_json()
    # The first half of each category's history is old.
    old = [item.pk for i, item in enumerate(history) if (i // 5) % 16 < 8]
    Item.objects.filter(pk__in=old).update(received_at=OLD)

    call_command("prune", "--older-than", "180d", stdout=io.StringIO())
    assert TrainingExample.objects.count() == len(history) - len(old)

    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.CHAMPION
    # Its certified thresholds rest on stored evidence.
    assert load_evidence(champion).as_json() == evidence
    new = make_item("the server is down with an error")
    service.classify_items(item_ids=[new.pk])
    assert Prediction.objects.get(item=new).model_version == champion

    result = training.retrain()
    assert result.version.training_snapshot["per_category"] == {
        "billing": 40,
        "other": 40,
        "outage": 40,
    }


@pytest.mark.django_db
def test_the_beat_task_prunes_with_the_configured_retention_and_is_off_without_it(
    categories, settings
):
    item, _ = decided("old and decided", categories["billing"])
    settings.TRIAGE_RETENTION_DAYS = 0
    assert "off" in privacy_tasks.prune_retention()
    item.refresh_from_db()
    assert item.pruned_at is None

    settings.TRIAGE_RETENTION_DAYS = 180
    assert "pruned 1 item(s)" in privacy_tasks.prune_retention()
    item.refresh_from_db()
    assert item.pruned_at is not None
    assert AuditLog.objects.get(action="prune").actor == "retention"


def settings_run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRIAGE_"))}
    return subprocess.run(
        [sys.executable, "-c", f"from triage import settings as s; {code}"],
        cwd=ROOT,
        env=base | {"TRIAGE_ENV_FILE": "", "DEBUG": "1"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_beat_schedules_the_prune_only_when_a_retention_is_configured():
    show = "print(s.CELERY_BEAT_SCHEDULE.get('prune-retention', {}).get('task'))"
    assert settings_run(show).stdout.strip() == "None"
    configured = settings_run(show, TRIAGE_RETENTION_DAYS="180")
    assert configured.stdout.strip() == "triage.privacy.tasks.prune_retention", configured.stderr


def test_a_retention_setting_below_the_minimum_refuses_to_start():
    result = settings_run("pass", TRIAGE_RETENTION_DAYS="7")
    assert result.returncode != 0
    assert "TRIAGE_RETENTION_DAYS=7: the shortest retention is 30 days" in result.stderr


def test_an_unknown_phone_region_refuses_to_start():
    result = settings_run("pass", TRIAGE_PHONE_REGIONS="US,XX")
    assert result.returncode != 0
    assert "TRIAGE_PHONE_REGIONS: XX is not a region" in result.stderr
