"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def classify_items(item_ids: list[int]) -> int:
    return services.classify_items(item_ids=item_ids)


@shared_task
def retrain_nightly() -> str:
    try:
        result = services.retrain(actor="nightly")
    except services.RetrainError as exc:
        # Too few examples is a normal state for a young deployment, not a crash.
        return f"skipped: {exc}"
    return result.message
