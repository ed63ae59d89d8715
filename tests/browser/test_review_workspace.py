"""The analysts' workspace in a real browser, from the keyboard: keys and type-ahead, skip,
undo, escalate, my decisions, an expired lease, an expired session, the empty queue's refresh."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone
from playwright.sync_api import Page, expect

from reviews.claims import claim_next_task
from triage.actions.models import Event
from triage.models import HandOff, Item, Review, ReviewTask

from ..factories import make_category, make_item, make_prediction, make_task, make_user
from .conftest import login

pytestmark = pytest.mark.browser

# More categories than the type-ahead threshold, each with its own key.
SLUGS = ["billing", "outage", "other", "fraud", "legal", "press", "spam"]


@pytest.fixture
def desks(transactional_db):
    return {slug: make_category(slug) for slug in SLUGS}


def waiting(text, desks, *, suggest=None, priority=0):
    item = make_item(text, status=Item.Status.IN_REVIEW)
    if suggest:
        make_prediction(item, desks[suggest], confidence=0.6, route="review", threshold=0.9)
    return make_task(item, priority=priority)


def start(page: Page, live_server, user) -> None:
    login(page, live_server, user, "s3cret-pw")
    page.wait_for_url(f"{live_server.url}/reviews/")
    page.keyboard.press("Enter")  # the start button has the focus
    expect(page.locator("#task-card[data-mode=decide]")).to_be_visible()


def errors_of(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_keys_enter_and_type_ahead_decide_and_focus_follows_the_card(
    live_server, page: Page, desks
):
    ann = make_user("ann", password="s3cret-pw")
    tasks = [
        waiting("please refund my card", desks, suggest="billing", priority=3),
        waiting("a journalist is asking", desks, priority=2),
        waiting("win a prize now", desks, priority=1),
    ]
    js_errors = errors_of(page)
    start(page, live_server, ann)
    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(tasks[0].pk))
    expect(card.locator(".reason")).to_contain_text(
        "Billing 60%: not sure enough to act alone (needs 90%)"
    )
    expect(page.locator("#announce")).to_contain_text("suggested Billing, press Enter")

    # Enter accepts the top suggestion; the next card gets the focus.
    page.keyboard.press("Enter")
    expect(card).to_have_attribute("data-task-id", str(tasks[1].pk))
    expect(card).to_be_focused()
    expect(page.locator("#announce")).to_contain_text(f"Task {tasks[1].pk}")

    # A category's own key: press is the 6th category, key "6".
    assert desks["press"].hotkey == "6"
    page.keyboard.press("6")
    expect(card).to_have_attribute("data-task-id", str(tasks[2].pk))

    # Type-ahead: "/" then a few letters, Enter picks the only match.
    page.keyboard.press("/")
    page.keyboard.type("spa")
    expect(card.locator("button.choice:visible")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(card.locator(".empty")).to_contain_text("No task for you right now")

    # "?" lists every shortcut.
    page.keyboard.press("?")
    expect(page.locator("dialog#shortcuts")).to_be_visible()
    expect(page.locator("dialog#shortcuts")).to_contain_text("Skip")
    page.keyboard.press("Escape")
    expect(page.locator("dialog#shortcuts")).to_be_hidden()

    decided = {r.task_id: r.category.slug for r in Review.objects.select_related("category")}
    assert decided == {tasks[0].pk: "billing", tasks[1].pk: "press", tasks[2].pk: "spam"}
    assert js_errors == []


def test_skip_and_escalate_from_the_keyboard(live_server, page: Page, desks):
    ann = make_user("ann", password="s3cret-pw")
    first = waiting("which desk is this", desks, priority=2)
    second = waiting("is this fraud or billing", desks, priority=1)
    start(page, live_server, ann)
    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(first.pk))

    page.keyboard.press("s")
    page.keyboard.type("need the attachment")
    page.keyboard.press("Enter")
    expect(card).to_have_attribute("data-task-id", str(second.pk))
    expect(card.locator(".notice")).to_contain_text("Skipped")

    page.keyboard.press("e")
    page.keyboard.type("could be fraud")
    page.keyboard.press("Enter")
    expect(card.locator(".notice")).to_contain_text("Sent to the senior queue")
    expect(card.locator(".empty")).to_contain_text("1 you skipped")

    skipped = HandOff.objects.get(task=first)
    assert (skipped.kind, skipped.note) == ("skip", "need the attachment")
    second.refresh_from_db()
    assert (second.reason, second.senior_only, second.claimed_by) == ("escalated", True, None)
    assert not Review.objects.exists()


def test_undo_changes_my_last_decision_and_records_the_correction(live_server, page: Page, desks):
    ann = make_user("ann", password="s3cret-pw")
    task = waiting("refund my card please", desks, priority=2)
    later = waiting("site is down", desks, priority=1)
    start(page, live_server, ann)
    card = page.locator("#task-card")
    page.keyboard.press(desks["outage"].hotkey)  # a slip: this was billing
    expect(card).to_have_attribute("data-task-id", str(later.pk))

    page.keyboard.press("u")
    expect(card).to_have_attribute("data-mode", "change")
    expect(card.locator(".reason")).to_contain_text("you chose Outage")
    page.keyboard.press("c")
    page.keyboard.type("misread it")
    page.keyboard.press("Escape")
    page.keyboard.press(desks["billing"].hotkey)
    expect(card.locator(".notice")).to_contain_text("to Billing")
    # Back on the task I hold.
    expect(card).to_have_attribute("data-task-id", str(later.pk))

    review = Review.objects.get(task=task)
    assert (review.category.slug, review.comment) == ("billing", "misread it")
    corrected = Event.objects.get(item=task.item, type="item.corrected").payload["data"]
    assert (corrected["previous_category"], corrected["category"]) == ("outage", "billing")


def test_my_decisions_page_filters_and_edits_within_the_window(live_server, page: Page, desks):
    ann = make_user("ann", password="s3cret-pw")
    from reviews.decisions import submit_review

    reviews = []
    for text, slug in [("refund", "billing"), ("down", "outage")]:
        task = waiting(text, desks)
        claim_next_task(user=ann)
        reviews.append(submit_review(task_id=task.pk, user=ann, category_slug=slug))
    Review.objects.filter(pk=reviews[0].pk).update(created_at=timezone.now() - timedelta(hours=1))

    login(page, live_server, ann, "s3cret-pw", next="/reviews/decisions/")
    rows = page.locator("#decisions tbody tr[data-review]")
    expect(rows).to_have_count(2)
    page.get_by_label("Category").select_option("outage")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    # The old decision has no Change link; the recent one does.
    page.goto(f"{live_server.url}/reviews/decisions/")
    expect(page.locator(f'tr[data-review="{reviews[0].pk}"] a')).to_have_count(0)
    page.locator(f'tr[data-review="{reviews[1].pk}"]').get_by_role("link", name="Change").click()
    page.wait_for_url(f"{live_server.url}/reviews/decisions/{reviews[1].pk}/")
    page.keyboard.press(desks["fraud"].hotkey)
    page.wait_for_url(f"{live_server.url}/reviews/decisions/")
    expect(page.locator(".messages")).to_contain_text("to Fraud")
    assert Review.objects.get(pk=reviews[1].pk).category.slug == "fraud"


def test_an_expired_lease_shows_a_message_and_a_fresh_card(live_server, page: Page, desks):
    ann, bob = make_user("ann", password="s3cret-pw"), make_user("bob")
    lost = waiting("first", desks, priority=2)
    fresh = waiting("second", desks, priority=1)
    start(page, live_server, ann)
    card = page.locator("#task-card")
    expect(card).to_have_attribute("data-task-id", str(lost.pk))
    # Ann's lease runs out and Bob takes the task.
    ReviewTask.objects.filter(pk=lost.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert claim_next_task(user=bob) == ReviewTask.objects.get(pk=lost.pk)

    page.keyboard.press(desks["billing"].hotkey)
    expect(card.locator(".error")).to_contain_text("someone else has it now")
    expect(card).to_have_attribute("data-task-id", str(fresh.pk))
    # The fresh card works at once: no reload needed.
    page.keyboard.press(desks["billing"].hotkey)
    expect(card.locator(".empty")).to_be_visible()
    assert Review.objects.get().task_id == fresh.pk


def test_an_expired_session_goes_to_the_login_page_and_back_to_the_queue(
    live_server, page: Page, desks
):
    ann = make_user("ann", password="s3cret-pw")
    task = waiting("refund", desks)
    start(page, live_server, ann)
    Session.objects.all().delete()  # the session expires on the server
    page.keyboard.press(desks["billing"].hotkey)
    page.wait_for_url(f"{live_server.url}/accounts/login/?next=/reviews/&unsaved=1")
    expect(page.locator("#task-card")).to_have_count(0)  # not a login form in a card
    expect(page.locator("#unsaved")).to_contain_text("your last key was not saved")
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill("s3cret-pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/reviews/")
    # The task Ann held is still hers, shown again; nothing was decided.
    expect(page.locator("#task-card")).to_have_attribute("data-task-id", str(task.pk))
    assert not Review.objects.exists()


def test_the_empty_queue_refreshes_itself(live_server, page: Page, desks, settings):
    settings.TRIAGE_QUEUE_POLL_SECONDS = 1
    ann = make_user("ann", password="s3cret-pw")
    login(page, live_server, ann, "s3cret-pw")
    card = page.locator("#task-card")
    expect(card.locator(".empty")).to_contain_text("No task for you right now")
    waiting("new work", desks)
    expect(card.get_by_role("button", name="Start reviewing")).to_be_visible()
    expect(card.locator("#queue-counts")).to_contain_text("1 open task")
    assert not ReviewTask.objects.filter(claimed_by__isnull=False).exists()


def test_touch_screens_show_no_key_hints(live_server, page: Page, desks):
    ann = make_user("ann", password="s3cret-pw")
    waiting("refund", desks)
    assert page.context.browser is not None
    touch = page.context.browser.new_context(
        has_touch=True, is_mobile=True, viewport={"width": 390, "height": 844}
    )
    try:
        phone = touch.new_page()
        phone.set_default_timeout(5_000)
        login(phone, live_server, ann, "s3cret-pw")
        phone.get_by_role("button", name="Start reviewing").tap()
        card = phone.locator("#task-card[data-mode=decide]")
        expect(card.locator("button.choice").first).to_be_visible()
        expect(card.locator(".key-hint").first).to_be_hidden()
        expect(card.locator(".key-hint:visible")).to_have_count(0)
    finally:
        touch.close()
    # The same card on a desktop shows them.
    start(page, live_server, ann)
    expect(page.locator("#task-card .key-hint:visible").first).to_be_visible()
