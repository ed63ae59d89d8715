"""Which decisions get a second, independent review, and what its outcome does.

A second review is asked for a random share of decisions (TRIAGE_SECOND_REVIEW_SHARE),
a share of bulk decisions (TRIAGE_SECOND_REVIEW_BULK_SHARE), and every decision that
overturns a model prediction at or above RoutingPolicy.second_review_confidence. The
second analyst is never the first (ReviewTask.excluded_reviewer) and decides blind: no
first decision and no model suggestion, so agreement measures the first reviewer rather
than how often two people follow the model. A disagreement goes to the senior queue; the
senior's decision, recorded like any other, is final.
"""

import random

from django.conf import settings

from reviews.trust.models import ReviewCheck
from reviews.trust.quarantine import evaluate_analyst, hold_if_quarantined
from triage.models import Prediction, Review, ReviewTask, RoutingPolicy
from triage.monitoring.tallies import tally_opened_tasks

Reason = ReviewTask.Reason
# Tasks that are themselves part of checking someone: never checked again.
CHECKING_REASONS = {Reason.SECOND_REVIEW, Reason.DISAGREEMENT}

_rng = random.Random()


def after_review(review: Review, *, rng: random.Random | None = None) -> None:
    """Called by submit_review, in its transaction, once a decision is recorded."""
    task = review.task
    prediction = review.item.latest_prediction()
    if prediction is not None:
        review.model_confidence = prediction.confidence
        review.save(update_fields=["model_confidence"])
    if task.reason == Reason.SECOND_REVIEW:
        _record_second_opinion(review)
    elif task.reason == Reason.DISAGREEMENT:
        ReviewCheck.objects.filter(senior_task=task).update(senior_review=review)
    else:
        why = second_review_reason(review, prediction=prediction, rng=rng or _rng)
        if why is not None:
            ask_second_review(review, why=why)
        if why == ReviewCheck.Why.CONFIDENT_OVERTURN:
            evaluate_analyst(review.reviewer, now=review.created_at)
    hold_if_quarantined(review)


def second_review_reason(
    review: Review, *, prediction: Prediction | None, rng: random.Random
) -> str | None:
    threshold = RoutingPolicy.current().second_review_confidence
    if (
        prediction is not None
        and review.agreed_with_model is False
        and threshold is not None
        and prediction.confidence >= threshold
    ):
        return ReviewCheck.Why.CONFIDENT_OVERTURN
    if review.bulk:
        return (
            ReviewCheck.Why.BULK
            if rng.random() < settings.TRIAGE_SECOND_REVIEW_BULK_SHARE
            else None
        )
    if rng.random() < settings.TRIAGE_SECOND_REVIEW_SHARE:
        return ReviewCheck.Why.RANDOM
    return None


def ask_second_review(review: Review, *, why: str) -> ReviewCheck:
    task = ReviewTask.objects.create(
        item=review.item,
        reason=Reason.SECOND_REVIEW,
        excluded_reviewer=review.reviewer,
        created_at=review.created_at,
    )
    tally_opened_tasks([task.reason])
    return ReviewCheck.objects.create(
        first_review=review, why=why, second_task=task, created_at=review.created_at
    )


def _record_second_opinion(review: Review) -> None:
    check = (
        ReviewCheck.objects.select_for_update()
        .select_related("first_review__reviewer")
        .filter(second_task=review.task)
        .first()
    )
    if check is None:  # a re-review of a rejected label (quarantine), not a check
        return
    check.second_review = review
    check.agreed = review.category_id == check.first_review.category_id
    if not check.agreed:
        check.senior_task = ReviewTask.objects.create(
            item=review.item,
            reason=Reason.DISAGREEMENT,
            senior_only=True,
            excluded_reviewer=check.first_review.reviewer,
            created_at=review.created_at,
        )
        tally_opened_tasks([check.senior_task.reason])
    check.save(update_fields=["second_review", "agreed", "senior_task"])
    evaluate_analyst(check.first_review.reviewer, now=review.created_at)
