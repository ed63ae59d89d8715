import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from reviews.claims import ReviewError, claim_next_task
from reviews.decisions import submit_review
from tests.factories import make_item, make_task, make_user
from triage.models import Item, ReviewTask, RoutingPolicy

pytestmark = pytest.mark.django_db


def test_claims_highest_priority_first_and_keeps_the_claim(categories):
    low = make_task(priority=0)
    high = make_task(priority=10)
    user = make_user()
    assert claim_next_task(user=user) == high
    # Asking again returns the task already held, not a second one.
    assert claim_next_task(user=user) == high
    assert claim_next_task(user=make_user()) == low


def test_a_task_under_a_live_lease_is_not_claimed_by_another(categories):
    make_task()
    assert claim_next_task(user=make_user()) is not None
    assert claim_next_task(user=make_user()) is None


def test_an_expired_lease_can_be_claimed_again(categories):
    task = make_task()
    first, second = make_user(), make_user()
    past = timezone.now() - timedelta(hours=2)
    assert claim_next_task(user=first, now=past) == task
    assert claim_next_task(user=second) == task


def test_review_of_a_task_claimed_by_someone_else_is_refused(categories):
    task = make_task()
    owner, other = make_user(), make_user()
    claim_next_task(user=owner)
    with pytest.raises(ReviewError, match="no longer yours"):
        submit_review(task_id=task.pk, user=other, category_slug="billing")
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_decision_after_an_uncontested_lapse_is_recorded(categories):
    task = make_task()
    user = make_user()
    claim_next_task(user=user, now=timezone.now() - timedelta(hours=2))
    review = submit_review(task_id=task.pk, user=user, category_slug="billing")
    task.refresh_from_db()
    assert review.task_id == task.pk and task.completed_at is not None
    assert task.lease_expires_at > timezone.now()  # re-claimed with the decision
    assert task.item.training_examples.exists()


def test_a_decision_after_a_lapse_is_refused_when_the_task_is_no_longer_offered(categories):
    task = make_task()
    user = make_user()
    claim_next_task(user=user, now=timezone.now() - timedelta(hours=2))
    ReviewTask.objects.filter(pk=task.pk).update(senior_only=True)  # escalated meanwhile
    with pytest.raises(ReviewError, match="expired"):
        submit_review(task_id=task.pk, user=user, category_slug="billing")
    assert not task.item.training_examples.exists()


def test_review_with_an_unknown_category_is_refused(categories):
    task = make_task()
    user = make_user()
    claim_next_task(user=user)
    with pytest.raises(ReviewError, match="unknown category 'nope'"):
        submit_review(task_id=task.pk, user=user, category_slug="nope")
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_decision_resolves_the_item_and_becomes_a_training_example(categories):
    task = make_task(make_item("refund my card", status=Item.Status.IN_REVIEW))
    user = make_user()
    claim_next_task(user=user)
    review = submit_review(task_id=task.pk, user=user, category_slug="billing", seconds_spent=3.5)
    item = Item.objects.get(pk=task.item_id)
    assert item.status == Item.Status.RESOLVED
    assert item.final_category.slug == "billing"
    assert item.decided_by == f"user:{user.username}"
    (example,) = item.training_examples.active()
    assert (example.category.slug, example.source, example.text) == (
        "billing",
        "review",
        "refund my card",
    )
    assert review.seconds_spent == 3.5
    with pytest.raises(ReviewError, match="already decided"):
        submit_review(task_id=task.pk, user=user, category_slug="outage")


def test_a_later_decision_supersedes_the_earlier_example(categories):
    item = make_item("server error", status=Item.Status.IN_REVIEW)
    user = make_user()
    for slug in ["billing", "outage"]:
        make_task(item)
        task = claim_next_task(user=user)
        submit_review(task_id=task.pk, user=user, category_slug=slug)
    assert [e.category.slug for e in item.training_examples.active()] == ["outage"]
    assert item.training_examples.count() == 2


@pytest.mark.needs_postgres("SKIP LOCKED")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("order", ["oldest", "smallest_margin"])
def test_concurrent_claims_never_hand_out_a_task_twice(categories, order):
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"queue_order": order})
    # Margins that put the newest first, so the margin order really differs from the oldest.
    tasks = {make_task(margin=1 - n / 40).pk for n in range(40)}
    users = [make_user() for _ in range(8)]
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(users))

    def work(user):
        try:
            start.wait()
            while (task := claim_next_task(user=user)) is not None:
                with lock:
                    claimed.append(task.pk)
                # Finish it, so this analyst's next claim is a new task.
                ReviewTask.objects.filter(pk=task.pk).update(completed_at=timezone.now())
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    assert set(claimed) == tasks


def test_the_senior_queue_is_only_offered_to_seniors(categories):
    from triage.access import SENIORS

    escalated = make_task(reason=ReviewTask.Reason.ESCALATED, senior_only=True, priority=5)
    ordinary = make_task()
    assert claim_next_task(user=make_user()) == ordinary
    assert claim_next_task(user=make_user()) is None
    assert claim_next_task(user=make_user(group=SENIORS)) == escalated


def test_a_second_review_is_never_offered_to_the_first_reviewer(categories):
    first = make_user()
    task = make_task(reason=ReviewTask.Reason.SECOND_REVIEW, excluded_reviewer=first)
    assert claim_next_task(user=first) is None
    assert claim_next_task(user=make_user()) == task
