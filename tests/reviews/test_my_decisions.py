"""My decisions as a history: the suggestion and confidence (never on blind tasks), the
minutes left to change, search by external id, filters kept across pages; and the card's
last five decisions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from tests.factories import make_item, make_prediction, make_task, make_user
from triage.models import Item, Review, ReviewTask

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def decide(user, slug, *, external_id=None, suggest=None, reason=None, categories=None):
    item = make_item(
        "some text",
        status=Item.Status.IN_REVIEW,
        **({"external_id": external_id} if external_id else {}),
    )
    if suggest:
        make_prediction(item, categories[suggest], confidence=0.62, route="review", threshold=0.9)
    task = make_task(item, **({"reason": reason} if reason else {}))
    assert claim_next_task(user=user) == task
    return submit_review(task_id=task.pk, user=user, category_slug=slug)


def test_each_row_shows_the_suggestion_its_confidence_and_the_minutes_left(
    client, analyst, categories
):
    review = decide(analyst, "outage", suggest="billing", categories=categories)
    client.force_login(analyst)
    body = client.get("/reviews/decisions/").content.decode()
    assert '<td class="suggested">Billing 62%</td>' in body
    assert "10 min left" in body
    Review.objects.filter(pk=review.pk).update(created_at=timezone.now() - timedelta(minutes=4))
    assert "6 min left" in client.get("/reviews/decisions/").content.decode()


def test_a_blind_task_shows_no_suggestion_nor_agreement(client, analyst, categories):
    decide(
        analyst,
        "billing",
        suggest="billing",
        reason=ReviewTask.Reason.AUDIT_SAMPLE,
        categories=categories,
    )
    client.force_login(analyst)
    body = client.get("/reviews/decisions/").content.decode()
    assert "62%" not in body and '<td class="suggested">—</td>' in body
    assert "<td>yes</td>" not in body
    assert (
        client.get("/reviews/decisions/?agreed=yes").content.decode().count("<tr data-review=") == 0
    )


def test_search_by_external_id(client, analyst, categories):
    wanted = decide(analyst, "billing", external_id="msg-1042")
    decide(analyst, "billing", external_id="msg-2000")
    client.force_login(analyst)
    body = client.get("/reviews/decisions/?q=1042").content.decode()
    assert body.count("<tr data-review=") == 1 and f'data-review="{wanted.pk}"' in body


def test_the_pager_keeps_every_filter(client, analyst, categories, monkeypatch):
    monkeypatch.setattr("reviews.views.decisions.PAGE_SIZE", 1)
    for _ in range(3):
        decide(analyst, "billing", suggest="billing", categories=categories)
    client.force_login(analyst)
    body = client.get(
        "/reviews/decisions/?q=&category=billing&agreed=yes&changeable=1"
    ).content.decode()
    assert 'href="?category=billing&amp;agreed=yes&amp;changeable=1&amp;page=2"' in body
    second = client.get("/reviews/decisions/?category=billing&agreed=yes&changeable=1&page=2")
    assert (
        'href="?category=billing&amp;agreed=yes&amp;changeable=1&amp;page=1"'
        in second.content.decode()
    )


def test_the_card_lists_the_last_five_decisions_each_one_click_to_change(
    client, analyst, categories
):
    made = [decide(analyst, "billing") for _ in range(6)]
    make_task()
    client.force_login(analyst)
    body = client.post("/reviews/claim", **HTMX).content.decode()
    assert "Your last decisions" in body
    for review in made[1:]:
        assert f'href="/reviews/decisions/{review.pk}/"' in body
    assert f'href="/reviews/decisions/{made[0].pk}/"' not in body
    # All six came before this login: none of them is this session's.
    assert "0 decided this session · 1 open" in body


def test_the_undo_button_is_shown_only_when_there_is_something_to_undo(client, analyst, categories):
    client.force_login(analyst)
    decide(make_user(), "billing")  # someone else's
    assert "data-undo" not in client.get("/reviews/").content.decode()
    decide(analyst, "billing")
    assert "data-undo" in client.get("/reviews/").content.decode()
