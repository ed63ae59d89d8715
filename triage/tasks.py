"""Celery tasks: thin wrappers that take ids and call services."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from . import redelivery, services, training
from .privacy import retention


# A lost connection (a database restart, a failover) or a deadlock is transient: retry
# with exponential backoff (1, 2, 4... s, jittered, at most a minute apart) instead of
# leaving the items to the stuck-item sweep. classify_items is safe to run twice.
@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=6,
)
def classify_items(item_ids: list[int]) -> int:
    # A redelivery after a dead worker: see triage.redelivery.
    return redelivery.classify_delivery(item_ids, run_apart=classify_items.delay)


@shared_task
def classify_stuck() -> int:
    """Re-queue items whose classification was lost (a crash, a broker outage)."""
    ids = services.requeue_stuck_items()
    chunk = settings.TRIAGE_CLASSIFY_CHUNK
    for start in range(0, len(ids), chunk):
        classify_items.delay(ids[start : start + chunk])
    return len(ids)


# Acknowledged on receipt: a retrain takes minutes, longer than the broker's visibility
# timeout, and one lost to a dying worker simply runs again the next night.
@shared_task(acks_late=False)
def retrain_nightly() -> str:
    try:
        result = training.retrain(actor="nightly")
    except training.RetrainError as exc:
        # Too few examples is a normal state for a young deployment, not a crash.
        return f"skipped: {exc}"
    return result.message


@shared_task
def prune_retention() -> str:
    """Beat's daily retention run, when TRIAGE_RETENTION_DAYS is set (see triage.privacy)."""
    if not settings.TRIAGE_RETENTION_DAYS:
        return "retention is off (TRIAGE_RETENTION_DAYS is not set)"
    report = retention.prune(
        older_than=timedelta(days=settings.TRIAGE_RETENTION_DAYS), actor="retention"
    )
    return "; ".join(line.strip() for line in report.lines())
