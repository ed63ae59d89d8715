"""Retraining as Celery tasks: nightly, and on a count of new labels (training.cadence).

Both go through training.exclusive: when they overlap, one runs and the other returns
"skipped: …" and logs it."""

from celery import shared_task

from triage.training.exclusive import retrain_exclusively
from triage.training.finetune import fine_tune_exclusively


# Acknowledged on receipt: a retrain takes minutes, longer than the broker's visibility
# timeout, and one lost to a dying worker simply runs again the next night.
@shared_task(acks_late=False)
def retrain_nightly() -> str:
    return retrain_exclusively(actor="nightly")


# Acknowledged on receipt too: a lost one is replaced by the next count or the night.
@shared_task(acks_late=False)
def retrain_on_count() -> str:
    return retrain_exclusively(actor="count")


# Its own task: fine-tuning takes minutes of CPU, and a retrain (nightly or on a count)
# must never wait behind it. Acknowledged on receipt, like the retrain.
@shared_task(acks_late=False)
def fine_tune(actor: str = "system") -> str:
    return fine_tune_exclusively(actor=actor)
