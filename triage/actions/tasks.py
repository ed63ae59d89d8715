"""Thin Celery tasks for delivery: they take ids and call the delivery service."""

from celery import shared_task

from triage.actions import delivery


@shared_task(acks_late=True)
def deliver_endpoint(endpoint_id: int) -> str:
    """Send an endpoint's due deliveries in batches (see triage.actions.delivery)."""
    return delivery.deliver_endpoint(endpoint_id=endpoint_id)


@shared_task(acks_late=True)
def deliver(delivery_id: int) -> str:
    """One delivery: what was queued before deliveries went in batches."""
    return delivery.deliver(delivery_id=delivery_id)


@shared_task
def sweep_deliveries() -> int:
    """Queue the endpoints of overdue deliveries (a lost message, a killed worker)."""
    endpoint_ids = delivery.due_endpoint_ids()
    delivery.queue_endpoints(endpoint_ids)
    return len(endpoint_ids)
