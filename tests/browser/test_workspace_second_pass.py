"""The workspace's second pass in a real browser: the bulk panel (collapsed, above its
floor, undo all N), the decision bar in view on a 20,000-character item, a lapsed but
uncontested lease whose decision is recorded, and My decisions' pager keeping filters."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from triage.models import Embedding, Item, Review, ReviewTask

from ..factories import make_category, make_item, make_prediction, make_task, make_user
from .conftest import login

pytestmark = pytest.mark.browser

SLUGS = ["billing", "outage", "other", "fraud", "legal", "press", "spam"]


@pytest.fixture
def desks(transactional_db):
    return {slug: make_category(slug) for slug in SLUGS}


def waiting(text, desks, *, suggest=None, vector=None, priority=0):
    item = make_item(text, status=Item.Status.IN_REVIEW)
    if suggest:
        make_prediction(item, desks[suggest], confidence=0.6, route="review", threshold=0.9)
    if vector is not None:
        Embedding.objects.create(
            item=item, encoder="test-space", vector=np.asarray(vector, dtype=np.float32).tobytes()
        )
    return make_task(item, priority=priority)


def start(page: Page, live_server, user) -> None:
    login(page, live_server, user, "s3cret-pw")
    page.wait_for_url(f"{live_server.url}/reviews/")
    page.keyboard.press("Enter")
    expect(page.locator("#task-card[data-mode=decide]")).to_be_visible()


def in_view(page: Page, selector: str) -> bool:
    """Whether the element's box lies wholly inside the viewport as scrolled now."""
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
           return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }""",
        selector,
    )


def test_bulk_is_collapsed_respects_the_floor_and_undo_changes_all_n(
    live_server, page: Page, desks, settings
):
    settings.TRIAGE_BULK_SIMILARITY_FLOOR = 0.8
    ann = make_user("ann", password="s3cret-pw")
    current = waiting("fault at the Cap-Haitien port", desks, vector=[1, 0, 0], priority=9)
    near = waiting(
        "Cap-Haitien port fault, ships waiting", desks, vector=[1, 0.1, 0], suggest="outage"
    )
    nearer = waiting("the fault of the Cap-Haitien port", desks, vector=[1, 0.02, 0])
    unrelated = waiting("How's the education in Haiti?", desks, vector=[1, 1, 0])  # cosine 0.71
    start(page, live_server, ann)
    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(current.pk))

    bulk = page.locator("details#bulk")
    expect(bulk.locator("summary")).to_have_text("Decide 2 similar open tasks too…")
    expect(bulk.locator("form")).to_be_hidden()  # collapsed by default
    expect(page.locator("#similar-panel")).not_to_contain_text("education in Haiti")
    bulk.locator("summary").click()
    rows = bulk.locator("label.bulk-row")
    expect(rows).to_have_count(2)
    # Most similar first; each row's checkbox, similarity and suggestion on one line.
    expect(rows.nth(0)).to_contain_text("the fault of the Cap-Haitien port")
    expect(rows.nth(1)).to_contain_text("Outage 60%")
    box = rows.nth(1).locator("input").bounding_box()
    text = rows.nth(1).locator(".similar-text").bounding_box()
    assert box and text and abs(box["y"] - text["y"]) < box["height"] + 8
    # "Select all above X%" ticks the rows at least that similar.
    bulk.get_by_role("button", name="Select all above 95% (2)").click()
    expect(bulk.locator("input[type=checkbox]:checked")).to_have_count(2)
    bulk.get_by_label("Category for this task and the ticked ones").select_option(
        label="2 · Outage"
    )
    bulk.get_by_role("button", name="Apply to this task and the ticked ones").click()

    notice = card.locator(".notice")
    expect(notice).to_have_text("Decided 3 as Outage. Press u to undo all 3.")
    # The live announcement joins the notice and the summary with one full stop, not two.
    expect(page.locator("#announce")).to_contain_text(f"undo all 3. Task {unrelated.pk}")
    expect(card).to_have_attribute("data-task-id", str(unrelated.pk))
    decided = {r.task_id for r in Review.objects.filter(bulk=True)}
    assert decided == {current.pk, near.pk, nearer.pk}

    # u brings back the whole batch; one key changes all three.
    page.keyboard.press("u")
    expect(card).to_have_attribute("data-mode", "change")
    expect(card.locator(".reason")).to_contain_text("You decided 3 items at once as Outage")
    page.keyboard.press(desks["fraud"].hotkey)
    expect(card.locator(".notice")).to_have_text("Changed all 3 to Fraud.")
    assert {r.category.slug for r in Review.objects.filter(bulk=True)} == {"fraud"}
    assert Item.objects.get(pk=unrelated.item_id).status == Item.Status.IN_REVIEW


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)])
def test_the_decision_bar_stays_in_view_on_a_20000_character_item(
    live_server, page: Page, desks, size
):
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    ann = make_user("ann", password="s3cret-pw")
    words = "The river rose overnight and the bridge to the clinic is closed. "
    waiting((words * 400)[:20_000], desks, suggest="billing")
    start(page, live_server, ann)
    suggested = "#task-card button.choice[data-suggested]"
    page.evaluate("window.scrollTo(0, 0)")
    assert in_view(page, suggested)
    page.get_by_text("Show all (20,000 characters)").click()
    page.evaluate("window.scrollTo(0, 0)")
    assert in_view(page, suggested)
    assert in_view(page, "#task-card .reason")
    # The text scrolls inside its box, and the page itself does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("#task-card").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#task-card .notice")).to_contain_text("Billing")


def test_a_lapsed_uncontested_lease_still_records_the_decision(live_server, page: Page, desks):
    ann = make_user("ann", password="s3cret-pw")
    task = waiting("the road to the north is cut", desks)
    waiting("another one", desks)
    start(page, live_server, ann)
    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(task.pk))
    # Ann's lease runs out while she reads; nobody else takes the task.
    ReviewTask.objects.filter(pk=task.pk).update(
        lease_expires_at=timezone.now() - timedelta(minutes=1)
    )
    page.keyboard.press(desks["outage"].hotkey)
    expect(card.locator(".notice")).to_contain_text("Outage")
    expect(card.locator(".error")).to_have_count(0)
    review = Review.objects.get()
    assert (review.task_id, review.category.slug, review.reviewer) == (task.pk, "outage", ann)


def test_my_decisions_pager_keeps_the_filters(live_server, page: Page, desks, monkeypatch):
    monkeypatch.setattr("reviews.views.decisions.PAGE_SIZE", 2)
    ann = make_user("ann", password="s3cret-pw")
    for n in range(5):
        task = waiting(f"item {n}", desks, suggest="billing")
        assert claim_next_task(user=ann) == task
        submit_review(task_id=task.pk, user=ann, category_slug="billing" if n % 2 else "outage")
    login(page, live_server, ann, "s3cret-pw")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My decisions").click()
    page.get_by_label("Category").select_option("outage")
    page.get_by_label("Agreed with the model").select_option("no")
    page.get_by_label("Still changeable").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#decisions tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Older").click()
    expect(page.locator("#decisions tbody tr")).to_have_count(1)
    assert "category=outage" in page.url and "agreed=no" in page.url and "changeable=1" in page.url
    expect(page.get_by_label("Agreed with the model")).to_have_value("no")
    expect(page.locator("#decisions")).to_contain_text("Billing 60%")
