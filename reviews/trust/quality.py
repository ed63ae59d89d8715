"""Per-analyst quality: agreement with second reviews and with gold labels, Cohen's kappa,
and speed.

- Agreement with second reviews: of the analyst's decisions that got a blind second
  review, the share the second analyst agreed with; kappa is Cohen's on those pairs
  (the analyst's labels against the second reviewers', pooled), which discounts the
  agreement two people reach by chance when one category dominates.
- Gold: a senior's final decision on a disagreement. Agreement with gold is the share
  of the analyst's decisions (first or second) on such items that match the senior's.
  Gold items are disputed by construction, so this rate runs lower than agreement with
  second reviews: compare analysts with each other on it, not with the other column.
- Decisions per hour: decisions over hours at work, where work is split into sessions
  at gaps over SESSION_GAP (a session of one decision counts the median seconds).
- Median seconds per decision: over decisions whose time on the card is known.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone

from reviews.trust.models import HeldLabel, Quarantine, ReviewCheck
from reviews.trust.quarantine import evidence_since, overturn_evidence
from triage.models import Review

SESSION_GAP = timedelta(minutes=15)


@dataclass(frozen=True)
class AnalystQuality:
    analyst: User
    decisions: int
    checked: int
    agreed: int
    kappa: float | None
    gold: int
    gold_agreed: int
    decisions_per_hour: float | None
    median_seconds: float | None
    confident: int
    overturned: int
    quarantine: Quarantine | None
    held: int
    # Open quarantines and ended ones that still hold labels, each annotated with `held`.
    quarantines: Sequence[Quarantine]

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.checked if self.checked else None

    @property
    def gold_agreement(self) -> float | None:
        return self.gold_agreed / self.gold if self.gold else None


def cohen_kappa(first: list[str], *, second: list[str]) -> float | None:
    """Cohen's kappa, or None where it is undefined (no pairs, or one label on both sides)."""
    from sklearn.metrics import cohen_kappa_score

    if not first or len(set(first) | set(second)) < 2:
        return None
    value = float(cohen_kappa_score(first, second))
    return None if math.isnan(value) else value


def decisions_per_hour(times: list[datetime], *, median_seconds: float | None) -> float | None:
    if not times:
        return None
    times = sorted(times)
    per_session = median_seconds or 0.0
    worked = 0.0
    start = previous = times[0]
    for at in times[1:]:
        if at - previous > SESSION_GAP:
            worked += (previous - start).total_seconds() + per_session
            start = at
        previous = at
    worked += (previous - start).total_seconds() + per_session
    return len(times) * 3600 / worked if worked > 0 else None


def analyst_quality(user: User, *, now: datetime | None = None) -> AnalystQuality:
    now = now or timezone.now()
    since = now - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    reviews = Review.objects.filter(reviewer=user, created_at__gte=since)
    rows = list(reviews.values_list("created_at", "seconds_spent"))
    seconds = [s for _, s in rows if s is not None]
    median = statistics.median(seconds) if seconds else None
    pairs = list(
        ReviewCheck.objects.filter(
            first_review__reviewer=user, first_review__created_at__gte=since, agreed__isnull=False
        ).values_list("first_review__category__slug", "second_review__category__slug", "agreed")
    )
    settled = ReviewCheck.objects.filter(
        senior_review__isnull=False, first_review__created_at__gte=since
    )
    gold_pairs = [
        (mine, gold)
        for first_by, first, second_by, second, gold in settled.values_list(
            "first_review__reviewer",
            "first_review__category",
            "second_review__reviewer",
            "second_review__category",
            "senior_review__category",
        )
        for by, mine in ((first_by, first), (second_by, second))
        if by == user.pk
    ]
    overturns = overturn_evidence(user, since=evidence_since(user, now=now), now=now)
    quarantine = Quarantine.objects.filter(analyst=user, ended_at__isnull=True).first()
    quarantines = [
        q
        for q in Quarantine.objects.filter(analyst=user)
        .annotate(held=Count("labels", filter=Q(labels__state=HeldLabel.State.HELD)))
        .order_by("-started_at")
        if q.ended_at is None or q.held
    ]
    return AnalystQuality(
        analyst=user,
        decisions=len(rows),
        checked=len(pairs),
        agreed=sum(1 for *_, agreed in pairs if agreed),
        kappa=cohen_kappa([a for a, _, _ in pairs], second=[b for _, b, _ in pairs]),
        gold=len(gold_pairs),
        gold_agreed=sum(1 for mine, gold in gold_pairs if mine == gold),
        decisions_per_hour=decisions_per_hour([at for at, _ in rows], median_seconds=median),
        median_seconds=median,
        confident=overturns.confident if overturns else 0,
        overturned=overturns.overturned if overturns else 0,
        quarantine=quarantine,
        held=sum(q.held for q in quarantines),
        quarantines=quarantines,
    )


def quality_table(*, now: datetime | None = None) -> list[AnalystQuality]:
    """Everyone who decided something in the window, or is quarantined."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    ids = set(Review.objects.filter(created_at__gte=since).values_list("reviewer", flat=True))
    ids |= set(
        HeldLabel.objects.filter(state=HeldLabel.State.HELD).values_list(
            "quarantine__analyst", flat=True
        )
    )
    ids |= set(Quarantine.objects.filter(ended_at__isnull=True).values_list("analyst", flat=True))
    users = get_user_model().objects.filter(pk__in=ids).order_by("username")
    return [analyst_quality(user, now=now) for user in users]
