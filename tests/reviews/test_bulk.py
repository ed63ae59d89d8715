import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from reviews.bulk import BulkError, bulk_decide
from reviews.trust.models import ReviewCheck
from tests.factories import make_task, make_user
from triage.access import ANALYSTS
from triage.models import Item, Review, ReviewTask

pytestmark = pytest.mark.django_db


def test_each_task_gets_its_own_bulk_review(categories):
    tasks = [make_task() for _ in range(4)]
    user = make_user()
    reviews = bulk_decide(user=user, task_ids=[t.pk for t in tasks], category_slug="billing")
    assert len(reviews) == 4
    assert {r.task_id for r in reviews} == {t.pk for t in tasks}
    assert all(r.bulk and r.reviewer == user for r in reviews)
    for task in tasks:
        task.item.refresh_from_db()
        assert task.item.status == Item.Status.RESOLVED
        assert task.item.final_category.slug == "billing"
        assert [e.category.slug for e in task.item.training_examples.active()] == ["billing"]


def test_a_selection_over_the_limit_is_refused_whole(categories, settings):
    settings.TRIAGE_BULK_LIMIT = 3
    tasks = [make_task() for _ in range(4)]
    with pytest.raises(BulkError, match="4 tasks selected; at most 3"):
        bulk_decide(user=make_user(), task_ids=[t.pk for t in tasks], category_slug="billing")
    assert not Review.objects.exists()
    assert not ReviewTask.objects.filter(claimed_by__isnull=False).exists()


def test_a_selection_holding_a_task_someone_else_holds_is_refused_whole(categories):
    other = make_user()
    held = make_task(claimed_by=other, lease_expires_at=timezone.now() + timedelta(minutes=5))
    free = [make_task() for _ in range(3)]
    with pytest.raises(BulkError, match=f"task {held.pk} is held by someone else"):
        bulk_decide(
            user=make_user(), task_ids=[*(t.pk for t in free), held.pk], category_slug="billing"
        )
    assert not Review.objects.exists()
    # Nothing half-written: the free tasks are not left claimed either.
    assert not ReviewTask.objects.filter(
        pk__in=[t.pk for t in free], claimed_by__isnull=False
    ).exists()


def test_a_task_whose_lease_expired_can_be_taken_into_a_bulk(categories):
    stale = make_task(
        claimed_by=make_user(), lease_expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert len(bulk_decide(user=make_user(), task_ids=[stale.pk], category_slug="outage")) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"reason": ReviewTask.Reason.AUDIT_SAMPLE},
        {"reason": ReviewTask.Reason.SECOND_REVIEW},
        {"reason": ReviewTask.Reason.ESCALATED, "senior_only": True},
    ],
)
def test_tasks_that_need_their_own_look_cannot_join_a_bulk(categories, fields):
    special = make_task(**fields)
    ordinary = make_task()
    with pytest.raises(BulkError, match=f"task {special.pk} cannot be decided in bulk"):
        bulk_decide(user=make_user(), task_ids=[ordinary.pk, special.pk], category_slug="billing")
    assert not Review.objects.exists()


def test_decided_unknown_and_empty_selections_are_refused(categories):
    user = make_user()
    done = make_task(completed_at=timezone.now())
    with pytest.raises(BulkError, match="already decided"):
        bulk_decide(user=user, task_ids=[done.pk], category_slug="billing")
    with pytest.raises(BulkError, match="task 999999 does not exist"):
        bulk_decide(user=user, task_ids=[999999], category_slug="billing")
    with pytest.raises(BulkError, match="select at least one"):
        bulk_decide(user=user, task_ids=[], category_slug="billing")
    with pytest.raises(BulkError, match="unknown category 'nope'"):
        bulk_decide(user=user, task_ids=[make_task().pk], category_slug="nope")


def test_bulk_decisions_are_sampled_for_a_second_review(categories, settings):
    settings.TRIAGE_SECOND_REVIEW_BULK_SHARE = 1.0
    tasks = [make_task() for _ in range(3)]
    user = make_user()
    reviews = bulk_decide(user=user, task_ids=[t.pk for t in tasks], category_slug="billing")
    checks = ReviewCheck.objects.filter(first_review__in=reviews)
    assert checks.count() == 3
    assert {c.why for c in checks} == {ReviewCheck.Why.BULK}
    assert {c.second_task.excluded_reviewer_id for c in checks} == {user.pk}


def test_the_bulk_form_decides_and_the_next_card_offers_to_undo_all(client, categories):
    user = make_user(group=ANALYSTS)
    soon = timezone.now() + timedelta(minutes=5)
    # The panel answers only for the task the analyst holds (issue 21).
    tasks = [make_task(claimed_by=user, lease_expires_at=soon), make_task(), make_task()]
    client.force_login(user)
    response = client.post(
        f"/reviews/tasks/{tasks[0].pk}/bulk",
        {"tasks": [t.pk for t in tasks[:2]], "category": "outage"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Decided 2 as Outage. Press u to undo all 2." in body
    assert f'data-task-id="{tasks[2].pk}"' in body  # the next card, claimed
    assert Review.objects.filter(bulk=True).count() == 2


def test_undo_after_a_bulk_changes_the_whole_batch(client, categories):
    tasks = [make_task() for _ in range(3)]
    user = make_user(group=ANALYSTS)
    client.force_login(user)
    other = bulk_decide(user=user, task_ids=[tasks[2].pk], category_slug="billing")
    batch = bulk_decide(user=user, task_ids=[t.pk for t in tasks[:2]], category_slug="outage")
    page = client.get("/reviews/undo", HTTP_HX_REQUEST="true").content.decode()
    assert "You decided 2 items at once as" in page
    newest = max(batch, key=lambda r: r.pk)
    assert f"/reviews/decisions/{newest.pk}/change-all" in page
    response = client.post(
        f"/reviews/decisions/{newest.pk}/change-all", {"category": "other"}, HTTP_HX_REQUEST="true"
    )
    assert "Changed all 2 to Other." in response.content.decode()
    assert {r.category.slug for r in Review.objects.filter(pk__in=[r.pk for r in batch])} == {
        "other"
    }
    assert Review.objects.get(pk=other[0].pk).category.slug == "billing"  # another bulk


def test_a_refused_bulk_shows_the_reason_on_the_panel(client, categories):
    held = make_task(claimed_by=make_user(), lease_expires_at=timezone.now() + timedelta(minutes=5))
    user = make_user(group=ANALYSTS)
    mine = make_task(claimed_by=user, lease_expires_at=timezone.now() + timedelta(minutes=5))
    client.force_login(user)
    response = client.post(
        f"/reviews/tasks/{mine.pk}/bulk", {"tasks": [mine.pk, held.pk], "category": "outage"}
    )
    assert response.status_code == 409
    assert "held by someone else" in response.content.decode()
    assert not Review.objects.exists()
    no_category = client.post(f"/reviews/tasks/{mine.pk}/bulk", {"tasks": [mine.pk]})
    assert no_category.status_code == 400 and "choose a category" in no_category.content.decode()


@pytest.mark.needs_postgres("SKIP LOCKED")
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulks_and_claims_never_decide_a_task_twice(categories):
    from reviews.claims import claim_next_task
    from reviews.decisions import submit_review

    tasks = [make_task().pk for _ in range(60)]
    users = [make_user() for _ in range(8)]
    won: list[set[int]] = []
    errors: list[Exception] = []
    lock = threading.Lock()
    start = threading.Barrier(len(users))

    def bulk_worker(user, seed):
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(6):
                selection = rng.sample(tasks, 8)
                try:
                    bulk_decide(user=user, task_ids=selection, category_slug="billing")
                except BulkError:
                    continue
                with lock:
                    won.append(set(selection))
        except Exception as exc:  # anything but a clean refusal fails the test
            errors.append(exc)
        finally:
            connection.close()

    def claim_worker(user):
        try:
            start.wait()
            while (task := claim_next_task(user=user)) is not None:
                submit_review(task_id=task.pk, user=user, category_slug="outage")
                with lock:
                    won.append({task.pk})
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=bulk_worker, args=(u, i)) for i, u in enumerate(users[:6])]
    threads += [threading.Thread(target=claim_worker, args=(u,)) for u in users[6:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    decided = [pk for selection in won for pk in selection]
    assert len(decided) == len(set(decided)), "a task was decided twice"
    assert Review.objects.count() == len(decided)
