"""The settings recovery rests on, as Celery sees them (the fault tests exercise them)."""

from django.conf import settings

from triage.celery import app as celery_app
from triage.classify import tasks
from triage.training import tasks as training_tasks


def test_a_dead_workers_task_is_handed_out_again_within_minutes_not_an_hour():
    options = celery_app.conf.broker_transport_options
    assert options["visibility_timeout"] == settings.TRIAGE_VISIBILITY_TIMEOUT_SECONDS == 300
    # kombu otherwise scans for expired tasks only every 10th restore interval.
    assert options["unacked_restore_interval"] == 10
    assert options["unacked_restore_throttle"] == 1
    assert celery_app.conf.task_acks_late and celery_app.conf.task_reject_on_worker_lost


def test_the_visibility_timeout_outlasts_every_task_acknowledged_late():
    assert settings.TRIAGE_VISIBILITY_TIMEOUT_SECONDS > 10 * settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS
    # Retraining takes minutes: acknowledged on receipt, so the timeout need not cover it.
    assert training_tasks.retrain_nightly.acks_late is False
    assert tasks.classify_items.acks_late is True


def test_the_sweep_runs_as_often_as_its_setting_says():
    schedule = celery_app.conf.beat_schedule["classify-stuck-items"]
    assert schedule["schedule"] == settings.TRIAGE_STUCK_SWEEP_SECONDS == 30
