"""Quarantine: an analyst whose decisions cannot be trusted stops steering the loop.

The rules are looked at after decisions, again and again, so each is *anytime-valid*: an
honest analyst is quarantined with probability at most TRIAGE_QUARANTINE_ALPHA over all
the looks together, not per look. (Before issue 18 each look used a one-look
Clopper–Pearson bound: an analyst right at the agreement floor was quarantined in 5–13%
of simulated 90-day runs at α = 1%, and the overturn rule combined two bounds at α each,
so it ran at about 2α.) The statistics are mixture e-values and Robbins's confidence
sequence (triage.stats), over the analyst's evidence since the end of their last
quarantine (or since they began): a sequence with a fixed start, which is what lets
Ville's inequality cover every look.

- low agreement: the e-value that the analyst's agreement with second reviews is below
  TRIAGE_QUARANTINE_AGREEMENT_FLOOR reaches 1/α;
- overturns: among first decisions on items the model was confident about (at or above
  RoutingPolicy.second_review_confidence), the e-value that the analyst's overturn rate
  is above TRIAGE_QUARANTINE_OVERTURN_RATIO times everyone else's reaches 2/α, with the
  peers' rate taken at its anytime upper bound at α/2 over the same span: the level is
  split between the two sides, so the rule runs at α in all. Second reviews,
  disagreements and escalations are left out of both sides: they are chosen because
  someone doubted the model, so they overturn more.

Evidence, not rates: a raw rate from five decisions says little, so the rules act only
once the evidence rules luck out. The assumption: an analyst's decisions are independent
trials whose rate is at least the floor while they are honest
(tests/reviews/test_quarantine.py simulates 90 days of looks).

From then on each new decision's training example is held (HeldLabel): out of every
training snapshot and holdout until an admin releases or rejects it; an audit decision's
verdict is held too (AuditSample.held), out of live precision and the drift watch.
Rejecting sends the item back for a blind review (an audit: a blind audit) by someone
else. Starting a quarantine, and every admin action on one, is written to the audit log.
"""

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from reviews.trust.models import HeldLabel, Quarantine, ReviewCheck
from triage.models import Review, ReviewTask, RoutingPolicy
from triage.models.audit_log import AuditLog
from triage.monitoring.models import AuditSample
from triage.monitoring.tallies import tally_opened_tasks
from triage.monitoring.watch import check_category
from triage.stats import (
    mixture_lower,
    mixture_upper,
    rate_above_e_value,
    rate_below_e_value,
)
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
    upper: float  # anytime-valid upper bound on agreement, at α
    floor: float
    e_value: float = 0.0  # evidence that agreement is below the floor
    alpha: float = 0.01

    @property
    def fires(self) -> bool:
        return self.checks > 0 and self.e_value >= 1 / self.alpha


@dataclass(frozen=True)
class OverturnEvidence:
    confident: int
    overturned: int
    lower: float  # anytime-valid lower bound on the overturn rate, at α/2
    peers_confident: int
    peers_overturned: int
    peers_upper: float  # anytime-valid upper bound on the peers' rate, at α/2
    ratio: float
    e_value: float = 0.0  # evidence that the rate is above ratio × peers_upper
    alpha: float = 0.01

    @property
    def fires(self) -> bool:
        return self.confident > 0 and self.e_value >= 2 / self.alpha


def open_quarantine(user: User) -> Quarantine | None:
    return Quarantine.objects.filter(analyst=user, ended_at__isnull=True).first()


# The start of an analyst's evidence when they were never quarantined: all of it.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


def evidence_since(user: User, *, now: datetime) -> datetime:
    """The end of the analyst's last quarantine (an admin who lifted it has judged the
    evidence up to then), else the beginning. A fixed start, not a sliding window: the
    anytime guarantee holds for one growing sequence of trials."""
    last_end = (
        Quarantine.objects.filter(analyst=user, ended_at__isnull=False, ended_at__lte=now)
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )
    return last_end or BEGINNING


def agreement_evidence(user: User, *, since: datetime) -> AgreementEvidence:
    counts = ReviewCheck.objects.filter(
        first_review__reviewer=user, first_review__created_at__gte=since, agreed__isnull=False
    ).aggregate(checks=Count("pk"), agreed=Count("pk", filter=Q(agreed=True)))
    alpha = settings.TRIAGE_QUARANTINE_ALPHA
    floor = settings.TRIAGE_QUARANTINE_AGREEMENT_FLOOR
    return AgreementEvidence(
        checks=counts["checks"],
        agreed=counts["agreed"],
        upper=mixture_upper(counts["agreed"], counts["checks"], alpha),
        floor=floor,
        e_value=rate_below_e_value(counts["agreed"], counts["checks"], floor),
        alpha=alpha,
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
    # The peers over the same span: one fixed start for both sides' sequences.
    peers = confident.filter(created_at__gte=since).exclude(reviewer=user).aggregate(**tally)
    alpha = settings.TRIAGE_QUARANTINE_ALPHA
    ratio = settings.TRIAGE_QUARANTINE_OVERTURN_RATIO
    # The level split: α/2 for the peers' bound, α/2 for the analyst's test.
    peers_upper = mixture_upper(peers["x"], peers["n"], alpha / 2)
    return OverturnEvidence(
        confident=own["n"],
        overturned=own["x"],
        lower=mixture_lower(own["x"], own["n"], alpha / 2),
        peers_confident=peers["n"],
        peers_overturned=peers["x"],
        peers_upper=peers_upper,
        ratio=ratio,
        e_value=rate_above_e_value(own["x"], own["n"], ratio * peers_upper),
        alpha=alpha,
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
    sample = None
    if review.task.reason == ReviewTask.Reason.AUDIT_SAMPLE:
        sample = (
            AuditSample.objects.filter(item_id=review.item_id, held=True).order_by("-id").first()
        )
    return HeldLabel.objects.create(
        quarantine=quarantine, review=review, example=example, audit_sample=sample
    )


def _labels(quarantine: Quarantine, label_ids: Iterable[int] | None) -> list[HeldLabel]:
    labels = quarantine.labels.select_for_update(of=("self",)).filter(state=HeldLabel.State.HELD)
    if label_ids is not None:
        wanted = set(label_ids)
        labels = labels.filter(pk__in=wanted)
        found = {label.pk for label in labels}
        if found != wanted:
            missing = ", ".join(str(pk) for pk in sorted(wanted - found))
            raise QuarantineError(f"no held label {missing} in this quarantine")
    return list(labels.select_related("review", "example", "audit_sample__category"))


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
        samples = [label.audit_sample for label in labels if label.audit_sample is not None]
        AuditSample.objects.filter(pk__in=[s.pk for s in samples]).update(held=False)
        AuditLog.record(
            actor=actor,
            action="quarantine.release",
            quarantine=quarantine.pk,
            analyst=quarantine.analyst.get_username(),
            labels=[label.pk for label in labels],
            audit_verdicts=[s.pk for s in samples],
        )
        # The released verdicts now count: the drift watch looks again.
        for category in {s.category.pk: s.category for s in samples}.values():
            check_category(category=category, now=now)
    return len(labels)


def reject_labels(
    *, quarantine: Quarantine, actor: str, label_ids: Iterable[int] | None = None
) -> int:
    """The labels are not trusted: they never train, and each item still carrying one
    goes back to the queue for a blind review by someone else; an audit's verdict is
    cleared and its item goes back for a blind audit by someone else."""
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
        # A rejected audit verdict is cleared: the sample is open again, for someone else.
        audits = [label for label in labels if label.audit_sample is not None]
        AuditSample.objects.filter(pk__in=[label.audit_sample_id for label in audits]).update(
            held=False, audited_at=None, correct=None, audited_category=None
        )
        requeue = [label for label in still_current if label.audit_sample is None] + audits
        requeued = ReviewTask.objects.bulk_create(
            ReviewTask(
                item_id=label.example.item_id,
                reason=(
                    ReviewTask.Reason.AUDIT_SAMPLE
                    if label.audit_sample is not None
                    else ReviewTask.Reason.SECOND_REVIEW
                ),
                excluded_reviewer=quarantine.analyst,
                created_at=now,
            )
            for label in requeue
        )
        tally_opened_tasks(task.reason for task in requeued)
        AuditLog.record(
            actor=actor,
            action="quarantine.reject",
            quarantine=quarantine.pk,
            analyst=quarantine.analyst.get_username(),
            labels=[label.pk for label in labels],
            requeued=len(requeue),
            audits_reopened=len(audits),
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
