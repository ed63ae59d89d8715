import pytest

from reviews.claims import claim_next_task
from reviews.trust.models import ReviewCheck
from reviews.views import is_blind
from tests.factories import make_user
from triage.access import SENIORS
from triage.models import ReviewTask, RoutingPolicy

from .trust_helpers import confident_task, decide

pytestmark = pytest.mark.django_db

Reason = ReviewTask.Reason


def second_reviews():
    return ReviewTask.objects.filter(reason=Reason.SECOND_REVIEW)


def test_overturning_a_confident_prediction_always_gets_a_blind_second_review(categories):
    first = make_user()
    review = decide(confident_task(categories["billing"], confidence=0.95), first, "outage")
    check = ReviewCheck.objects.get(first_review=review)
    assert check.why == ReviewCheck.Why.CONFIDENT_OVERTURN
    task = check.second_task
    assert task.reason == Reason.SECOND_REVIEW and task.excluded_reviewer == first
    assert task.completed_at is None
    # The second analyst sees neither the model's suggestion nor, so, an anchor.
    assert is_blind(task)
    assert review.model_confidence == pytest.approx(0.95)


def test_agreeing_or_overturning_an_unsure_prediction_gets_no_second_review(categories):
    analyst = make_user()
    decide(confident_task(categories["billing"], confidence=0.99), analyst, "billing")
    decide(confident_task(categories["billing"], confidence=0.6), analyst, "outage")
    assert not second_reviews().exists()


def test_without_a_confidence_set_overturns_are_not_checked(categories):
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"second_review_confidence": None})
    decide(confident_task(categories["billing"], confidence=0.99), make_user(), "outage")
    assert not second_reviews().exists()


def test_a_random_share_of_decisions_gets_a_second_review(categories, settings):
    settings.TRIAGE_SECOND_REVIEW_SHARE = 1.0
    review = decide(confident_task(categories["billing"], confidence=0.5), make_user(), "billing")
    assert ReviewCheck.objects.get(first_review=review).why == ReviewCheck.Why.RANDOM


def test_a_second_review_is_itself_never_checked_again(categories, settings):
    settings.TRIAGE_SECOND_REVIEW_SHARE = 1.0
    review = decide(confident_task(categories["billing"]), make_user(), "billing")
    check = ReviewCheck.objects.get(first_review=review)
    decide(check.second_task, make_user(), "billing")
    assert second_reviews().count() == 1


def test_agreement_is_recorded_and_ends_the_check(categories):
    first, second = make_user(), make_user()
    review = decide(confident_task(categories["billing"]), first, "outage")
    check = ReviewCheck.objects.get(first_review=review)
    decide(check.second_task, second, "outage")
    check.refresh_from_db()
    assert check.agreed is True
    assert check.senior_task is None
    assert not ReviewTask.objects.filter(reason=Reason.DISAGREEMENT).exists()


def test_a_disagreement_goes_to_a_senior_whose_decision_is_final(categories):
    first, second, senior = make_user(), make_user(), make_user(group=SENIORS)
    review = decide(confident_task(categories["billing"]), first, "outage")
    check = ReviewCheck.objects.get(first_review=review)
    decide(check.second_task, second, "billing")
    check.refresh_from_db()
    assert check.agreed is False
    dispute = check.senior_task
    assert dispute.reason == Reason.DISAGREEMENT and dispute.senior_only
    assert is_blind(dispute)
    # Ordinary analysts never get it; a senior does.
    assert claim_next_task(user=make_user()) is None
    assert claim_next_task(user=senior) == dispute
    decide(dispute, senior, "other")
    check.refresh_from_db()
    item = review.item
    item.refresh_from_db()
    assert check.senior_review.category.slug == "other"
    assert item.final_category.slug == "other"
    assert [e.category.slug for e in item.training_examples.active()] == ["other"]
    # The senior's decision opens no further review.
    assert ReviewTask.objects.open().count() == 0
