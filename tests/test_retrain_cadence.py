"""Retraining on a count of new trusted labels, and never two retrains at once."""

import logging
import threading
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import override_settings

from reviews.decisions import record_training_example
from reviews.trust.models import Quarantine
from tests.factories import make_item, make_labelled_history, make_user
from tests.reviews.trust_helpers import confident_task, decide
from triage import training
from triage.models import Item, ModelVersion
from triage.training import cadence, exclusive, tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The count retrains queued (the task itself is tested below)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.retrain_on_count, "delay", lambda: calls.append(1))
    return calls


def one_label(categories, capture) -> None:
    """A decision's training example, committed (its own transaction)."""
    with capture(execute=True):
        item = make_item("refund please", status=Item.Status.RESOLVED)
        record_training_example(item=item, category=categories["billing"], source="review")


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=3)
def test_every_third_new_label_queues_one_retrain(
    categories, queued, django_capture_on_commit_callbacks
):
    fired_after = []
    for n in range(1, 8):
        one_label(categories, django_capture_on_commit_callbacks)
        if len(queued) > len(fired_after):
            fired_after.append(n)
    assert fired_after == [3, 6]


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=3)
def test_labels_the_champion_learned_from_do_not_count(
    categories, queued, django_capture_on_commit_callbacks
):
    make_labelled_history(categories, copies=8)
    training.retrain()
    assert cadence.labels_since_champion() == 0
    one_label(categories, django_capture_on_commit_callbacks)
    one_label(categories, django_capture_on_commit_callbacks)
    assert queued == []
    one_label(categories, django_capture_on_commit_callbacks)
    assert queued == [1]
    assert cadence.labels_since_champion() == 3


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=2)
def test_a_quarantined_analysts_held_labels_are_not_counted(
    categories, queued, django_capture_on_commit_callbacks
):
    analyst = make_user()
    Quarantine.objects.create(analyst=analyst, rule=Quarantine.Rule.OVERTURNS)
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            decide(confident_task(categories["billing"]), analyst, "billing")
    assert queued == []
    assert cadence.labels_since_champion() == 0
    one_label(categories, django_capture_on_commit_callbacks)
    one_label(categories, django_capture_on_commit_callbacks)
    assert queued == [1]


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=0)
def test_zero_turns_the_count_trigger_off(categories, queued, django_capture_on_commit_callbacks):
    for _ in range(5):
        one_label(categories, django_capture_on_commit_callbacks)
    assert queued == []


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=2)
def test_the_count_retrain_goes_through_the_gate(categories, django_capture_on_commit_callbacks):
    """Eager here (no broker): the label's commit runs the retrain, which the gate judges."""
    make_labelled_history(categories, copies=8)
    champion = training.retrain().version
    one_label(categories, django_capture_on_commit_callbacks)
    one_label(categories, django_capture_on_commit_callbacks)
    newer = ModelVersion.objects.exclude(pk=champion.pk).get()
    assert "neither model trained on" in newer.gate_decision  # 2 new: too few to compare
    assert ModelVersion.objects.champion() == champion


@override_settings(TRIAGE_RETRAIN_AFTER_LABELS=1)
def test_a_failing_count_retrain_never_fails_the_decision(
    categories, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exclusive, "retrain", broken)
    one_label(categories, django_capture_on_commit_callbacks)  # no exception
    assert "disk full" in caplog.text
    assert Item.objects.get().training_examples.active().count() == 1


def test_a_retrain_with_too_few_examples_is_skipped_not_crashed(categories):
    assert tasks.retrain_on_count().startswith("skipped: too few examples to retrain")
    assert tasks.retrain_nightly().startswith("skipped: too few examples to retrain")


def test_the_file_lock_admits_one_holder_at_a_time(monkeypatch, tmp_path, settings):
    """The embedded default's lock (SQLite): a second holder is refused, then admitted once
    the first lets go."""
    settings.TRIAGE_ARTIFACT_DIR = str(tmp_path)
    monkeypatch.setattr(exclusive, "connection", SimpleNamespace(vendor="sqlite"))
    with exclusive.retrain_lock() as first, exclusive.retrain_lock() as second:
        assert (first, second) == (True, False)
    with exclusive.retrain_lock() as again:
        assert again


@pytest.mark.needs_postgres("advisory locks across connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["retrain_nightly", "retrain_on_count"])
def test_overlapping_retrains_one_runs_and_the_other_is_skipped_and_logged(
    categories, monkeypatch, caplog, second
):
    """A count retrain is running (held in the middle) when the nightly one, or a second
    count retrain, starts on another connection: that one is skipped at once."""
    make_labelled_history(categories, copies=8)
    inside, finish = threading.Event(), threading.Event()
    real_retrain = exclusive.retrain

    started: list[str] = []

    def slow_retrain(**kwargs):
        started.append(kwargs["actor"])
        if len(started) == 1:  # the first one waits in the middle; any other runs through
            inside.set()
            assert finish.wait(timeout=60)
        return real_retrain(**kwargs)

    monkeypatch.setattr(exclusive, "retrain", slow_retrain)
    results: dict[str, str] = {}

    def first() -> None:
        try:
            results["first"] = tasks.retrain_on_count()
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(timeout=60)
        with caplog.at_level(logging.INFO, logger="triage.training.exclusive"):
            results["second"] = getattr(tasks, second)()
    finally:
        finish.set()
        thread.join(timeout=120)
    assert started == ["count"]
    assert results["second"] == exclusive.SKIPPED_RUNNING
    assert "skipped: another retrain is running" in caplog.text
    assert results["first"].startswith("first model")
    assert ModelVersion.objects.count() == 1
    # The lock is free again: the next retrain runs.
    assert not tasks.retrain_nightly().startswith("skipped")
