"""The nightly retrain, as a Celery task."""

from celery import shared_task

from triage import training


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


# Its own task: fine-tuning takes minutes of CPU, and a retrain (nightly or on a count)
# must never wait behind it. Acknowledged on receipt, like the retrain.
@shared_task(acks_late=False)
def fine_tune(actor: str = "system") -> str:
    try:
        result = training.retrain_fine_tuned(actor=actor)
    except training.RetrainError as exc:
        return f"skipped: {exc}"
    return result.message
