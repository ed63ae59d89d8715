"""The stuck sweep: re-queue items whose classification was lost (a crash, a broker
outage), and give up on those re-queued too often."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from triage.classify.service import give_up_on
from triage.models import Item, Prediction


def requeue_stuck_items(*, now: datetime | None = None, limit: int = 10_000) -> list[int]:
    """Re-queue items whose classification was lost; returns the ids re-queued.

    Items merely waiting behind a long queue are left alone: while the queue is
    moving (something was classified within TRIAGE_STUCK_AFTER_SECONDS), only items
    received before the newest classified one count as stuck, since the workers have
    already passed them. Each re-queue counts an attempt and doubles the wait before
    the next; after TRIAGE_STUCK_MAX_ATTEMPTS the item goes to review, unscored.
    """
    now = now or timezone.now()
    stuck_after = timedelta(seconds=settings.TRIAGE_STUCK_AFTER_SECONDS)
    latest = (
        Prediction.objects.order_by("-id").values_list("created_at", "item__received_at").first()
    )
    candidates = (
        Item.objects.pending()
        .filter(received_at__lt=now - stuck_after)
        .filter(Q(classify_after__isnull=True) | Q(classify_after__lte=now))
    )
    if latest is not None and latest[0] >= now - stuck_after:
        candidates = candidates.filter(received_at__lte=latest[1])
    rows = list(candidates.order_by("pk").values_list("pk", "classify_attempts")[:limit])
    give_up = [pk for pk, attempts in rows if attempts >= settings.TRIAGE_STUCK_MAX_ATTEMPTS]
    if give_up:
        give_up_on(
            give_up,
            alert_kind="classification_lost",
            message=(
                f"Items were re-queued {settings.TRIAGE_STUCK_MAX_ATTEMPTS} times and "
                "never classified (are the Celery workers running?); sent to review."
            ),
        )
    by_attempts: dict[int, list[int]] = {}
    for pk, attempts in rows:
        if attempts < settings.TRIAGE_STUCK_MAX_ATTEMPTS:
            by_attempts.setdefault(attempts, []).append(pk)
    requeued: list[int] = []
    for attempts, ids in by_attempts.items():
        Item.objects.filter(pk__in=ids).update(
            classify_attempts=attempts + 1, classify_after=now + stuck_after * 2 ** (attempts + 1)
        )
        requeued.extend(ids)
    return sorted(requeued)
