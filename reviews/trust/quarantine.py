"""Quarantine: an analyst whose labels cannot be trusted stops feeding training.

Two rules, each on exact one-sided binomial bounds at level TRIAGE_QUARANTINE_ALPHA
(Clopper–Pearson, triage.stats) over the last TRIAGE_QUALITY_WINDOW_DAYS, so a short unlucky
run never quarantines an honest analyst:

- low agreement: the upper bound of the analyst's agreement with second reviews is
  below TRIAGE_QUARANTINE_AGREEMENT_FLOOR (we are confident it is below the floor);
- overturns: among first decisions on items the model was confident about (at or
  above RoutingPolicy.second_review_confidence), the lower bound of the analyst's
  overturn rate is above TRIAGE_QUARANTINE_OVERTURN_RATIO times the upper bound of
  everyone else's. Second reviews, disagreements and escalations are left out of both
  sides: they are chosen because someone doubted the model, so they overturn more.

Bounds, not rates: a raw rate from five decisions says little (3 agreements of 5 is 60%,
yet an analyst who agrees 90% of the time shows it about one time in twelve), so the rules
act only once the evidence rules luck out. The assumption: an analyst's decisions are
independent trials with one fixed rate over the window (tests/reviews/test_quarantine.py
simulates it).

From then on each new decision's training example is held (HeldLabel): out of every
training snapshot and holdout until an admin releases or rejects it. Starting a
quarantine, and every admin action on one, is written to the audit log.
"""

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from reviews.trust.models import HeldLabel, Quarantine, ReviewCheck
from triage.models import Review, ReviewTask, RoutingPolicy
from triage.models.audit_log import AuditLog
from triage.stats import clopper_pearson_lower, clopper_pearson_upper
from triage.training.models import TrainingExample

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:quarantine"
# Decisions chosen because someone doubted the model: not a fair sample of overturns.
NOT_FIRST_LOOKS = [
    ReviewTask.Reason.SECOND_REVIEW,
    ReviewTask.Reason.DISAGREEMENT,
    ReviewTask.Reason.ESCALATED,
]


class QuarantineError(Exception):
    pass


@dataclass(frozen=True)
class AgreementEvidence:
    checks: int
    agreed: int
    upper: float
    floor: float

    @property
    def fires(self) -> bool:
        return self.checks > 0 and self.upper < self.floor


@dataclass(frozen=True)
class OverturnEvidence:
    confident: int
    overturned: int
    lower: float
    peers_confident: int
    peers_overturned: int
    peers_upper: float
    ratio: float

    @property
    def fires(self) -> bool:
        return self.confident > 0 and self.lower > self.ratio * self.peers_upper


def open_quarantine(user: User) -> Quarantine | None:
    return Quarantine.objects.filter(analyst=user, ended_at__isnull=True).first()


def evidence_since(user: User, *, now: datetime) -> datetime:
    """The window, but never before the end of the analyst's last quarantine: an admin who
    lifted it has judged the evidence up to then."""
    since = now - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    last_end = (
        Quarantine.objects.filter(analyst=user, ended_at__isnull=False)
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )
    return max(since, last_end) if last_end else since


def agreement_evidence(user: User, *, since: datetime) -> AgreementEvidence:
    counts = ReviewCheck.objects.filter(
        first_review__reviewer=user, first_review__created_at__gte=since, agreed__isnull=False
    ).aggregate(checks=Count("pk"), agreed=Count("pk", filter=Q(agreed=True)))
    alpha = settings.TRIAGE_QUARANTINE_ALPHA
    return AgreementEvidence(
        checks=counts["checks"],
        agreed=counts["agreed"],
        upper=clopper_pearson_upper(counts["agreed"], counts["checks"], alpha),
        floor=settings.TRIAGE_QUARANTINE_AGREEMENT_FLOOR,
    )


def overturn_evidence(user: User, *, since: datetime, now: datetime) -> OverturnEvidence | None:
    """None when the admin set no confidence that makes a prediction 'confident'."""
    threshold = RoutingPolicy.current().second_review_confidence
    if threshold is None:
        return None
    confident = Review.objects.filter(
        model_confidence__gte=threshold, agreed_with_model__isnull=False
    ).exclude(task__reason__in=NOT_FIRST_LOOKS)
    tally = {"n": Count("pk"), "x": Count("pk", filter=Q(agreed_with_model=False))}
    own = confident.filter(reviewer=user, created_at__gte=since).aggregate(**tally)
    window = now - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    peers = confident.filter(created_at__gte=window).exclude(reviewer=user).aggregate(**tally)
    alpha = settings.TRIAGE_QUARANTINE_ALPHA
    return OverturnEvidence(
        confident=own["n"],
        overturned=own["x"],
        lower=clopper_pearson_lower(own["x"], own["n"], alpha),
        peers_confident=peers["n"],
        peers_overturned=peers["x"],
        peers_upper=clopper_pearson_upper(peers["x"], peers["n"], alpha),
        ratio=settings.TRIAGE_QUARANTINE_OVERTURN_RATIO,
    )


def evaluate_analyst(user: User, *, now: datetime | None = None) -> Quarantine | None:
    """Quarantine the analyst if either rule fires; the open quarantine, if any."""
    now = now or timezone.now()
    current = open_quarantine(user)
    if current is not None:
        return current
    since = evidence_since(user, now=now)
    agreement = agreement_evidence(user, since=since)
    overturns = overturn_evidence(user, since=since, now=now)
    if agreement.fires:
        rule, evidence = Quarantine.Rule.LOW_AGREEMENT, asdict(agreement)
    elif overturns is not None and overturns.fires:
        rule, evidence = Quarantine.Rule.OVERTURNS, asdict(overturns)
    else:
        return None
    evidence["alpha"] = settings.TRIAGE_QUARANTINE_ALPHA
    evidence["since"] = since.isoformat()
    quarantine = Quarantine.objects.create(
        analyst=user, rule=rule, evidence=evidence, started_at=now
    )
    AuditLog.record(
        actor=SYSTEM_ACTOR,
        action="quarantine",
        analyst=user.get_username(),
        quarantine=quarantine.pk,
        rule=rule,
        evidence=evidence,
    )
    logger.warning("quarantined %s (%s): %s", user.get_username(), rule, evidence)
    return quarantine


def hold_if_quarantined(review: Review) -> HeldLabel | None:
    quarantine = open_quarantine(review.reviewer)
    if quarantine is None:
        return None
    example = TrainingExample.objects.active().filter(item_id=review.item_id).first()
    if example is None:
        return None
    return HeldLabel.objects.create(quarantine=quarantine, review=review, example=example)


def _labels(quarantine: Quarantine, label_ids: Iterable[int] | None) -> list[HeldLabel]:
    labels = quarantine.labels.select_for_update().filter(state=HeldLabel.State.HELD)
    if label_ids is not None:
        wanted = set(label_ids)
        labels = labels.filter(pk__in=wanted)
        found = {label.pk for label in labels}
        if found != wanted:
            missing = ", ".join(str(pk) for pk in sorted(wanted - found))
            raise QuarantineError(f"no held label {missing} in this quarantine")
    return list(labels.select_related("review", "example"))


def release_labels(
    *, quarantine: Quarantine, actor: str, label_ids: Iterable[int] | None = None
) -> int:
    """The labels are fine after all: they join the next snapshots."""
    now = timezone.now()
    with transaction.atomic():
        labels = _labels(quarantine, label_ids)
        HeldLabel.objects.filter(pk__in=[label.pk for label in labels]).update(
            state=HeldLabel.State.RELEASED, resolved_at=now, resolved_by=actor
        )
        AuditLog.record(
            actor=actor,
            action="quarantine.release",
            quarantine=quarantine.pk,
            analyst=quarantine.analyst.get_username(),
            labels=[label.pk for label in labels],
        )
    return len(labels)


def reject_labels(
    *, quarantine: Quarantine, actor: str, label_ids: Iterable[int] | None = None
) -> int:
    """The labels are not trusted: they never train, and each item still carrying one
    goes back to the queue for a blind review by someone else."""
    now = timezone.now()
    with transaction.atomic():
        labels = _labels(quarantine, label_ids)
        HeldLabel.objects.filter(pk__in=[label.pk for label in labels]).update(
            state=HeldLabel.State.REJECTED, resolved_at=now, resolved_by=actor
        )
        still_current = [label for label in labels if label.example.superseded_at is None]
        TrainingExample.objects.filter(pk__in=[label.example_id for label in still_current]).update(
            superseded_at=now
        )
        ReviewTask.objects.bulk_create(
            ReviewTask(
                item_id=label.example.item_id,
                reason=ReviewTask.Reason.SECOND_REVIEW,
                excluded_reviewer=quarantine.analyst,
                created_at=now,
            )
            for label in still_current
        )
        AuditLog.record(
            actor=actor,
            action="quarantine.reject",
            quarantine=quarantine.pk,
            analyst=quarantine.analyst.get_username(),
            labels=[label.pk for label in labels],
            requeued=len(still_current),
        )
    return len(labels)


def end_quarantine(*, quarantine: Quarantine, actor: str) -> None:
    """New labels flow again; labels already held stay held until released or rejected."""
    with transaction.atomic():
        if quarantine.ended_at is not None:
            raise QuarantineError(f"quarantine {quarantine.pk} already ended")
        quarantine.ended_at = timezone.now()
        quarantine.ended_by = actor
        quarantine.save(update_fields=["ended_at", "ended_by"])
        AuditLog.record(
            actor=actor,
            action="quarantine.end",
            quarantine=quarantine.pk,
            analyst=quarantine.analyst.get_username(),
            still_held=quarantine.labels.filter(state=HeldLabel.State.HELD).count(),
        )
