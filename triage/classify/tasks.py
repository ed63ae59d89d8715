"""Classification tasks: thin wrappers that take ids and call the classify services."""

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from triage.classify import redelivery, sweep, waiting


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
    # A redelivery after a dead worker: see triage.classify.redelivery.
    return redelivery.classify_delivery(item_ids, run_apart=classify_items.delay)


@shared_task
def classify_stuck() -> int:
    """Re-queue items whose classification was lost (a crash, a broker outage)."""
    ids = sweep.requeue_stuck_items()
    chunk = settings.TRIAGE_CLASSIFY_CHUNK
    for start in range(0, len(ids), chunk):
        classify_items.delay(ids[start : start + chunk])
    return len(ids)


@shared_task(acks_late=False)
def reroute_waiting(version_id: int, actor: str) -> int:
    """Route the waiting items the new champion now automates; how many it routed."""
    return waiting.reroute_waiting(actor=actor, version_id=version_id).outcome.routed
