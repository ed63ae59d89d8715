"""Thin Celery tasks for delivery: they take ids and call the delivery service."""

from celery import shared_task

from triage.actions import delivery


@shared_task(acks_late=True)
def deliver(delivery_id: int) -> str:
    return delivery.deliver(delivery_id=delivery_id)


@shared_task
def sweep_deliveries() -> int:
    """Re-queue due deliveries whose message was lost (a broker outage, a killed worker)."""
    ids = delivery.due_delivery_ids()
    delivery.queue_deliveries(ids)
    return len(ids)
