import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from reviews.similar import similar_open_tasks, similar_resolved
from tests.factories import make_item, make_prediction, make_task, make_user
from triage.access import ANALYSTS
from triage.models import Embedding, Item, ReviewTask

pytestmark = pytest.mark.django_db

SPACE = "test-space:v1"


def embed(item, vector, encoder=SPACE):
    Embedding.objects.create(
        item=item, encoder=encoder, vector=np.asarray(vector, dtype=np.float32).tobytes()
    )
    return item


def resolved(text, vector, category, by="user:bob"):
    item = make_item(
        text,
        status=Item.Status.RESOLVED,
        final_category=category,
        decided_by=by,
        decided_at=timezone.now(),
    )
    return embed(item, vector)


def open_task(vector, text="open", **fields):
    return make_task(embed(make_item(text, status=Item.Status.IN_REVIEW), vector), **fields)


def holder_of(task, group=ANALYSTS):
    """A user holding `task`: the panel answers only for the task its user holds."""
    user = make_user(group=group)
    ReviewTask.objects.filter(pk=task.pk).update(
        claimed_by=user, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    return user


def test_the_nearest_resolved_items_come_first_with_category_and_decider(categories):
    near = resolved("near", [1, 0.1, 0, 0], categories["billing"], by="user:ann")
    middle = resolved("middle", [1, 1, 0, 0], categories["outage"])
    resolved("far", [0, 0, 1, 0], categories["other"])
    # Not resolved: never shown, however close.
    embed(make_item("still open", status=Item.Status.IN_REVIEW), [1, 0, 0, 0])
    task = open_task([1, 0, 0, 0])
    found = similar_resolved(task.item, count=2)
    assert [s.item for s in found] == [near, middle]
    assert found[0].item.final_category.slug == "billing"
    assert found[0].item.decided_by == "user:ann"
    assert found[0].similarity > found[1].similarity


def test_only_vectors_of_the_same_embedding_space_are_compared(categories):
    other_space = make_item("x", status=Item.Status.RESOLVED, final_category=categories["billing"])
    embed(other_space, [1, 0, 0, 0], encoder="another-space")
    task = open_task([1, 0, 0, 0])
    assert similar_resolved(task.item) == []


def test_an_item_resolved_after_the_index_was_built_appears_after_a_refresh(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    task = open_task([1, 0, 0, 0])
    assert similar_resolved(task.item) == []
    later = embed(make_item("later", status=Item.Status.IN_REVIEW), [1, 0, 0, 0])
    assert similar_resolved(task.item) == []
    Item.objects.filter(pk=later.pk).update(
        status=Item.Status.RESOLVED, final_category=categories["billing"], decided_at=timezone.now()
    )
    assert [s.item.pk for s in similar_resolved(task.item)] == [later.pk]


def test_a_reopened_item_drops_out_even_before_the_index_refreshes(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 3600
    item = resolved("x", [1, 0, 0, 0], categories["billing"])
    task = open_task([1, 0, 0, 0])
    assert len(similar_resolved(task.item)) == 1
    Item.objects.filter(pk=item.pk).update(status=Item.Status.IN_REVIEW)
    assert similar_resolved(task.item) == []


def test_a_forgotten_item_drops_out_even_before_the_index_refreshes(categories, settings):
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 3600
    item = resolved("a customer's words", [1, 0, 0, 0], categories["billing"])
    task = open_task([1, 0, 0, 0])
    assert len(similar_resolved(task.item)) == 1
    call_command("forget", item.external_id, stdout=io.StringIO())
    assert similar_resolved(task.item) == []


def test_similar_open_tasks_leave_out_audits_and_tasks_held_by_others(categories):
    user, other = make_user(), make_user()
    task = open_task([1, 0, 0, 0])
    free = open_task([1, 0.2, 0, 0])
    open_task([1, 0, 0, 0], reason=ReviewTask.Reason.AUDIT_SAMPLE)
    open_task([1, 0, 0, 0], claimed_by=other, lease_expires_at=timezone.now() + timedelta(hours=1))
    open_task([0, 0, 0, 1])  # unlike: below any floor
    found = similar_open_tasks(task, user=user, senior=False, count=10, floor=-1.0)
    assert [s.task for s in found][0] == free
    assert len(found) == 2


def test_similar_open_tasks_stop_at_the_floor_most_similar_first(categories):
    user = make_user()
    task = open_task([1, 0, 0, 0])
    near = open_task([1, 0.1, 0, 0])  # cosine 0.995
    nearer = open_task([1, 0.01, 0, 0])  # cosine 0.99995
    open_task([1, 1, 0, 0])  # cosine 0.707: below the floor
    found = similar_open_tasks(task, user=user, senior=False, count=10, floor=0.8)
    assert [s.task for s in found] == [nearer, near]
    assert found[0].similarity > found[1].similarity > 0.8


def test_the_panel_offers_only_tasks_above_the_floor_with_their_suggestion(
    client, categories, settings
):
    settings.TRIAGE_BULK_SIMILARITY_FLOOR = 0.8
    resolved("refund my double charge", [1, 0, 0, 0], categories["billing"], by="user:ann")
    task = open_task([1, 0, 0, 0])
    alike = open_task([1, 0.1, 0, 0])
    make_prediction(alike.item, categories["outage"], confidence=0.7, route="review")
    unlike = open_task([1, 1, 0, 0])
    client.force_login(holder_of(task))
    page = client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    assert "refund my double charge" in page and "Billing" in page and "user:ann" in page
    assert f'action="/reviews/tasks/{task.pk}/bulk"' in page
    assert "Decide 1 similar open task too" in page
    assert f'value="{alike.pk}"' in page and f'value="{unlike.pk}"' not in page
    assert "Outage 70%" in page and '<span class="sim">99%</span>' in page


def test_without_a_task_above_the_floor_there_is_no_bulk_form(client, categories, settings):
    settings.TRIAGE_BULK_SIMILARITY_FLOOR = 0.8
    task = open_task([1, 0, 0, 0])
    open_task([0, 1, 0, 0])
    client.force_login(make_user(group=ANALYSTS))
    page = client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    assert "/bulk" not in page


@pytest.mark.parametrize(
    "reason",
    [
        ReviewTask.Reason.AUDIT_SAMPLE,
        ReviewTask.Reason.SECOND_REVIEW,
        ReviewTask.Reason.DISAGREEMENT,
    ],
)
def test_blind_tasks_show_no_neighbours(client, categories, reason):
    """Neighbours' final categories would hint at the answer a blind look must find alone."""
    resolved("refund my double charge", [1, 0, 0, 0], categories["billing"])
    task = open_task([1, 0, 0, 0], reason=reason)
    client.force_login(holder_of(task))
    page = client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    assert "refund my double charge" not in page and "Billing" not in page
    assert "No similar items to show." in page


def test_an_item_without_a_cached_vector_has_no_neighbours(client, categories):
    resolved("refund", [1, 0, 0, 0], categories["billing"])
    task = make_task()
    assert similar_resolved(task.item) == []
    client.force_login(holder_of(task))
    assert (
        "No similar items to show."
        in client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    )


def test_beyond_the_exact_size_an_inverted_file_finds_the_near_duplicate(categories, settings):
    settings.TRIAGE_SIMILAR_EXACT_MAX = 50
    settings.TRIAGE_SIMILAR_NPROBE = 4
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    items = [resolved(f"r{i}", v, categories["billing"]) for i, v in enumerate(vectors)]
    for target in (17, 123, 299):
        task = open_task(vectors[target] + 0.01 * rng.standard_normal(16))
        found = similar_resolved(task.item, count=5)
        assert found[0].item == items[target]
        assert len(found) == 5


def test_a_rebuild_drops_rows_that_are_gone(categories, settings):
    from reviews.similar import resolved_index
    from reviews.tasks import build_similar_indexes

    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 3600
    gone = resolved("gone", [1, 0, 0, 0], categories["billing"])
    task = open_task([1, 0, 0, 0])
    assert [s.item for s in similar_resolved(task.item)] == [gone]
    before = resolved_index.mapped(SPACE)
    assert before is not None and before.search(np.array([1, 0, 0, 0], "f4"), 5)[0][0] == gone.pk
    gone.delete()
    # Answered from the database at once, and left out of the next build.
    assert similar_resolved(task.item) == []
    build_similar_indexes()
    settings.TRIAGE_SIMILAR_REFRESH_SECONDS = 0
    assert similar_resolved(task.item) == []
    after = resolved_index.mapped(SPACE)
    assert after is not None and after.name != before.name and after.rows == 0


def test_the_panel_masks_personal_data_in_neighbours(client, categories):
    resolved(
        "refund to ana.lima@example.org please " + "x" * 300, [1, 0, 0, 0], categories["billing"]
    )
    task = open_task([1, 0, 0, 0])
    client.force_login(holder_of(task))
    page = client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    assert "ana.lima@example.org" not in page and "refund to [email] please" in page


@pytest.mark.parametrize(
    "reason", [ReviewTask.Reason.LOW_CONFIDENCE, ReviewTask.Reason.AUDIT_SAMPLE]
)
def test_a_task_not_held_answers_404_whatever_it_is(client, categories, reason):
    """By task id alone nobody but an admin learns which open tasks are audits: an empty
    panel, or a bulk refused for this task, would tell them."""
    resolved("refund my double charge", [1, 0, 0, 0], categories["billing"])
    task = open_task([1, 0, 0, 0], reason=reason)
    client.force_login(make_user())
    assert client.get(f"/reviews/tasks/{task.pk}/similar").status_code == 404
    answer = client.post(
        f"/reviews/tasks/{task.pk}/bulk", {"tasks": [task.pk], "category": "billing"}
    )
    assert answer.status_code == 404
    assert not ReviewTask.objects.filter(pk=task.pk, completed_at__isnull=False).exists()


@pytest.mark.parametrize(
    "reason", [ReviewTask.Reason.SECOND_REVIEW, ReviewTask.Reason.DISAGREEMENT]
)
def test_an_item_under_check_is_no_ones_neighbour_until_final(client, categories, reason):
    """Its first decision would reach the second reviewer (or anyone) through the panel."""
    checked = resolved(
        "refund my double charge", [1, 0, 0, 0], categories["billing"], by="user:ann"
    )
    check = make_task(checked, reason=reason)
    task = open_task([1, 0, 0, 0])
    assert similar_resolved(task.item) == []
    client.force_login(holder_of(task))
    page = client.get(f"/reviews/tasks/{task.pk}/similar").content.decode()
    assert "refund my double charge" not in page and "user:ann" not in page
    ReviewTask.objects.filter(pk=check.pk).update(completed_at=timezone.now())
    assert [s.item for s in similar_resolved(task.item)] == [checked]
