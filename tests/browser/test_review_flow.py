"""The analyst's path through the queue in a real browser: log in, decide by key, next card."""

import pytest
from playwright.sync_api import Page, expect

from triage.models import Item, Prediction, Review, ReviewTask
from triage.training.models import TrainingExample

from ..factories import make_item, make_keyword_categories, make_task, make_user
from .conftest import login

pytestmark = pytest.mark.browser


# transactional_db comes before live_server so the (session-wide) test database is set up
# before the live server and dropped after it has stopped.
def test_analyst_decides_two_tasks_by_number_keys(
    transactional_db, live_server, page: Page
) -> None:
    categories = make_keyword_categories()
    make_user("alice", password="s3cret-pw")
    texts = [
        "please refund the double charge on my card",
        "hello, thanks for the great support",
        "the server is down and shows an error",
    ]
    tasks = [make_task(make_item(text, status=Item.Status.IN_REVIEW)) for text in texts]
    Prediction.objects.create(
        item=tasks[0].item,
        label=categories["billing"],
        confidence=0.6,
        scores=[{"label": "billing", "confidence": 0.6}],
        route=Prediction.Route.REVIEW,
        reason="below_threshold",
    )
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))

    login(page, live_server, "alice", "s3cret-pw")
    page.wait_for_url(f"{live_server.url}/reviews/")
    # Opening the queue claims nothing; Enter on the focused start button does.
    assert ReviewTask.objects.filter(claimed_by__isnull=False).count() == 0
    page.keyboard.press("Enter")

    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(tasks[0].pk))
    expect(card.locator(".item-text")).to_have_text(texts[0])
    expect(card.locator(".suggestion")).to_contain_text("Billing 60%")
    # A full page load would wipe this; an htmx swap of the card keeps it.
    page.evaluate("window.__marker = 1")

    # Each category answers to its own stored key (given in order of creation).
    assert [categories[s].hotkey for s in ("billing", "outage", "other")] == ["1", "2", "3"]
    for key, task, next_task, next_text in [
        ("1", tasks[0], tasks[1], texts[1]),
        ("3", tasks[1], tasks[2], texts[2]),
    ]:
        expect(card).to_have_attribute("data-task-id", str(task.pk))
        page.keyboard.press(key)
        expect(card).to_have_attribute("data-task-id", str(next_task.pk))
        expect(card.locator(".item-text")).to_have_text(next_text)
        expect(page.locator(".error")).to_have_count(0)
        # The swap replaced the card in place: one card, one page header.
        expect(page.locator("#task-card")).to_have_count(1)
        expect(page.locator("header.bar")).to_have_count(1)
        assert page.evaluate("window.__marker") == 1

    assert js_errors == []
    for task, slug in [(tasks[0], "billing"), (tasks[1], "other")]:
        task.refresh_from_db()
        assert task.completed_at is not None
        review = Review.objects.get(task=task)
        assert (review.reviewer.username, review.category_id) == ("alice", categories[slug].pk)
        item = task.item
        item.refresh_from_db()
        assert (item.status, item.final_category_id) == (Item.Status.RESOLVED, categories[slug].pk)
        example = TrainingExample.objects.active().get(item=item)
        assert example.category_id == categories[slug].pk
    assert Review.objects.get(task=tasks[0]).agreed_with_model is True
    # The third task is the one on screen now: claimed by alice, not decided.
    third = ReviewTask.objects.get(pk=tasks[2].pk)
    assert third.completed_at is None and third.claimed_by.username == "alice"
