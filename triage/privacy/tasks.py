"""Beat's daily retention run, as a Celery task."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from triage.privacy import retention


@shared_task
def prune_retention() -> str:
    """Beat's daily retention run, when TRIAGE_RETENTION_DAYS is set (see triage.privacy)."""
    if not settings.TRIAGE_RETENTION_DAYS:
        return "retention is off (TRIAGE_RETENTION_DAYS is not set)"
    report = retention.prune(
        older_than=timedelta(days=settings.TRIAGE_RETENTION_DAYS), actor="retention"
    )
    return "; ".join(line.strip() for line in report.lines())
