"""A rule's consequences in items rather than shares: how many a day it would act on
alone, and how many of those it would get wrong if precision sat at its certified bound.

"Automates 46%" does not say whether that is 4 items a day or 4,000; an admin setting a
target needs the count, and the count of mistakes it buys. The volume is this category's
recent intake: the items the model gave it over the last VOLUME_DAYS days (or since the
first prediction, if the install is younger), per day.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min
from django.utils import timezone

from triage.models import Category, Prediction

VOLUME_DAYS = 30


@dataclass(frozen=True)
class Daily:
    predicted: float  # items a day the model gives this category
    automated: float | None  # of those, acted on without a person
    wrong: float | None  # expected wrong among them at the certified bound (a ceiling)
    days: float  # the span the volume was measured over


def daily_volume(category: Category, *, now: datetime | None = None) -> tuple[float, float]:
    """(items a day suggested as `category`, the days measured), over the last
    VOLUME_DAYS days; at least one day, so a young install does not divide by minutes."""
    now = now or timezone.now()
    since = now - timedelta(days=VOLUME_DAYS)
    recent = Prediction.objects.filter(created_at__gte=since)
    first = recent.aggregate(first=Min("created_at"))["first"]
    if first is None:
        return 0.0, float(VOLUME_DAYS)
    days = min(float(VOLUME_DAYS), max(1.0, (now - first).total_seconds() / 86400))
    items = recent.filter(label=category).values("item_id").distinct().count()
    return items / days, days


def daily_consequences(
    category: Category,
    *,
    coverage: float | None,
    certified_bound: float | None,
    now: datetime | None = None,
) -> Daily:
    predicted, days = daily_volume(category, now=now)
    automated = predicted * coverage if coverage is not None else None
    wrong = (
        automated * (1 - certified_bound)
        if automated is not None and certified_bound is not None
        else None
    )
    return Daily(predicted=predicted, automated=automated, wrong=wrong, days=days)
