"""The queue's pages: claim on POST only, the card's content, errors, sessions, decisions."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from tests.factories import make_category, make_item, make_prediction, make_task, make_user
from triage.models import Category, Item, Review, ReviewTask
from triage.routing.models import Rule

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def card_for(client, user, task):
    client.force_login(user)
    response = client.post("/reviews/claim", **HTMX)
    assert response.context["task"] == task
    return response.content.decode()


# --- Claim on POST -----------------------------------------------------------------------


def test_opening_the_queue_claims_nothing_and_offers_a_start_button(client, analyst, categories):
    make_task()
    client.force_login(analyst)
    body = client.get("/reviews/").content.decode()
    assert "Start reviewing" in body and "1 task waiting for you" in body
    assert not ReviewTask.objects.filter(claimed_by__isnull=False).exists()


def test_start_claims_a_task_and_the_queue_then_shows_the_one_held(client, analyst, categories):
    task = make_task()
    client.force_login(analyst)
    response = client.post("/reviews/claim")
    assert response.status_code == 302 and response["Location"] == "/reviews/"
    task.refresh_from_db()
    assert task.claimed_by == analyst
    assert f'data-task-id="{task.pk}"' in client.get("/reviews/").content.decode()


def test_without_javascript_a_decision_goes_on_to_the_next_task_with_its_notice(
    client, analyst, categories
):
    first, second = make_task(make_item("refund please")), make_task(make_item("site down"))
    client.force_login(analyst)
    client.post("/reviews/claim")
    held = ReviewTask.objects.get(claimed_by=analyst)
    response = client.post(f"/reviews/tasks/{held.pk}/decide", {"category": "billing"})
    assert response.status_code == 302 and response["Location"] == "/reviews/"
    # The queue's GET never claims, so the decision claimed the next one before redirecting.
    following = client.get("/reviews/")
    assert following.context["task"] == (second if held == first else first)
    assert f"Decided {held.item.external_id}: Billing." in following.content.decode()
    # The notice is shown once.
    assert "Decided" not in client.get("/reviews/").content.decode()


def test_the_empty_state_explains_the_counts_and_polls(client, analyst, categories):
    make_task()
    claim_next_task(user=make_user())
    client.force_login(analyst)
    body = client.get("/reviews/").content.decode()
    assert "No task for you right now" in body
    assert "Of the 1 open:" in body and "1 held by others" in body
    assert 'hx-trigger="every 10s"' in body


# --- Sessions, leases, bad input ---------------------------------------------------------


def test_an_expired_session_sends_htmx_to_the_login_page_and_back_to_the_queue(client):
    response = client.post("/reviews/tasks/1/decide", {"category": "billing"}, **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/?next=/reviews/&unsaved=1"


def test_an_expired_session_without_htmx_returns_to_the_queue_not_a_post_url(client):
    response = client.post("/reviews/tasks/1/decide", {"category": "billing"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/reviews/&unsaved=1"


def test_the_heartbeat_renews_a_held_task(client, analyst, categories):
    task = make_task()
    claim_next_task(user=analyst, now=timezone.now() - timedelta(seconds=500))
    client.force_login(analyst)
    response = client.post(f"/reviews/tasks/{task.pk}/heartbeat", **HTMX)
    assert response.status_code == 204
    task.refresh_from_db()
    assert task.lease_expires_at > timezone.now() + timedelta(seconds=500)


def test_a_lost_lease_shows_a_clear_message_and_a_fresh_card(client, analyst, categories):
    lost, fresh = make_task(priority=10), make_task(priority=0)
    claim_next_task(user=analyst, now=timezone.now() - timedelta(hours=1))
    assert claim_next_task(user=make_user()) == lost
    client.force_login(analyst)
    for url, data in [
        (f"/reviews/tasks/{lost.pk}/heartbeat", {}),
        (f"/reviews/tasks/{lost.pk}/decide", {"category": "billing"}),
    ]:
        response = client.post(url, data, **HTMX)
        assert response.status_code == 409
        body = response.content.decode()
        assert f"task {lost.pk}" in body and "someone else has it now" in body
        assert "here is a fresh task" in body
        assert f'data-task-id="{fresh.pk}"' in body
    assert not Review.objects.exists()


def test_a_decision_on_a_task_already_decided_is_refused_on_the_card(client, analyst, categories):
    task = make_task()
    claim_next_task(user=analyst)
    submit_review(task_id=task.pk, user=analyst, category_slug="billing")
    client.force_login(analyst)
    response = client.post(f"/reviews/tasks/{task.pk}/decide", {"category": "outage"}, **HTMX)
    assert response.status_code == 409
    assert "already decided" in response.content.decode()
    assert Review.objects.get().category.slug == "billing"


def test_an_unknown_filter_is_a_clear_error_and_is_not_kept(client, analyst, categories):
    client.force_login(analyst)
    response = client.get("/reviews/?category=nope")
    assert response.status_code == 400
    assert "unknown category &#x27;nope&#x27; in the filter" in response.content.decode()
    assert "queue_filters" not in client.session


def test_filters_are_kept_and_apply_to_the_next_claim(client, analyst, categories):
    make_task(priority=10)
    ruled = make_task(reason=ReviewTask.Reason.RULE)
    client.force_login(analyst)
    assert client.get("/reviews/?reason=rule").status_code == 200
    assert client.post("/reviews/claim", **HTMX).context["task"] == ruled


# --- The card ----------------------------------------------------------------------------


def test_the_card_gives_the_threshold_of_a_low_confidence_task(client, analyst, categories):
    item = make_item("refund please", status=Item.Status.IN_REVIEW)
    make_prediction(
        item,
        categories["billing"],
        confidence=0.62,
        route="review",
        reason="below_threshold",
        threshold=0.9,
    )
    body = card_for(client, analyst, make_task(item))
    assert "Billing 62%: not sure enough to act alone (needs 90%)" in body
    assert "certified" not in body and "bound" not in body  # no admin words on the card


def test_the_card_says_when_a_category_can_never_auto_act(client, analyst, categories):
    item = make_item("refund please", status=Item.Status.IN_REVIEW)
    make_prediction(
        item, categories["billing"], confidence=0.99, route="review", reason="target_unreachable"
    )
    body = card_for(client, analyst, make_task(item))
    assert "Billing never acts alone" in body
    assert "not sure enough" not in body


def test_the_card_names_the_rule_that_sent_the_item(client, analyst, categories):
    Rule.objects.create(
        name="legal words",
        condition=Rule.Condition.KEYWORDS,
        keywords=["lawyer"],
        action=Rule.Action.REVIEW,
    )
    item = make_item("my lawyer will call", status=Item.Status.IN_REVIEW)
    body = card_for(client, analyst, make_task(item, reason=ReviewTask.Reason.RULE))
    assert "The rule “legal words” sends items like this to a person" in body


def test_the_card_shows_descriptions_in_full_and_the_metadata(client, analyst, categories):
    long = "Anything about money: " + "refunds, invoices, " * 20 + "and card charges."
    make_category("billing", description=long)
    item = make_item("hi", status=Item.Status.IN_REVIEW, metadata={"channel": "sms", "n": 3})
    body = card_for(client, analyst, make_task(item))
    assert f'<span class="description">{long}</span>' in body
    assert "<dt>Channel</dt><dd>sms</dd>" in body and "<dt>N</dt><dd>3</dd>" in body
    assert 'title="' + long not in body  # not only on hover


def test_an_escalated_task_shows_who_was_unsure_and_why(client, categories):
    from reviews.handoffs import escalate_task
    from triage.access import SENIORS

    task = make_task()
    ann = make_user("ann")
    claim_next_task(user=ann)
    escalate_task(task_id=task.pk, user=ann, note="maybe fraud")
    body = card_for(client, make_user(group=SENIORS), task)
    assert "Escalated by ann, who was not sure: “maybe fraud”" in body


def test_a_long_text_is_collapsed_on_the_card(client, analyst, categories):
    text = "word " * 5000
    body = card_for(client, analyst, make_task(make_item(text, status=Item.Status.IN_REVIEW)))
    assert "Show all (25,000 characters)" in body
    assert "the model reads up to about here" in body


# --- Hotkeys -----------------------------------------------------------------------------


def test_new_categories_get_the_first_free_key_and_keep_it(categories):
    assert [categories[s].hotkey for s in ("billing", "outage", "other")] == ["1", "2", "3"]
    Category.objects.filter(slug="outage").delete()
    fourth = make_category("spam")
    assert fourth.hotkey == "2"
    assert Category.objects.get(slug="other").hotkey == "3"


@pytest.mark.parametrize("key", ["s", "u", "e", "c", "?", "A", "!"])
def test_a_reserved_or_odd_hotkey_is_refused(categories, key):
    billing = categories["billing"]
    billing.hotkey = key
    with pytest.raises(ValidationError) as info:
        billing.full_clean()
    assert "hotkey" in info.value.message_dict


def test_a_hotkey_in_use_is_refused(categories):
    billing = categories["billing"]
    billing.hotkey = categories["outage"].hotkey
    with pytest.raises(ValidationError, match="another category already uses this hotkey"):
        billing.full_clean()


def test_buttons_follow_the_display_order(client, analyst, categories):
    Category.objects.filter(slug="other").update(display_order=0)
    Category.objects.filter(slug="billing").update(display_order=5)
    Category.objects.filter(slug="outage").update(display_order=9)
    body = card_for(client, analyst, make_task())
    positions = [body.index(f'value="{slug}"') for slug in ("other", "billing", "outage")]
    assert positions == sorted(positions)


# --- Undo and my decisions ---------------------------------------------------------------


def test_undo_brings_back_my_last_decision_to_change(client, analyst, categories):
    first = make_task(make_item("first", status=Item.Status.IN_REVIEW), priority=10)
    make_task(make_item("second", status=Item.Status.IN_REVIEW))
    claim_next_task(user=analyst)
    review = submit_review(task_id=first.pk, user=analyst, category_slug="outage")
    client.force_login(analyst)
    body = client.get("/reviews/undo", **HTMX).content.decode()
    assert 'data-mode="change"' in body and "you chose\n  <strong>Outage</strong>" in body
    response = client.post(
        f"/reviews/decisions/{review.pk}/change", {"category": "billing"}, **HTMX
    )
    assert response.status_code == 200
    assert "Changed" in response.content.decode()
    assert Review.objects.get(pk=review.pk).category.slug == "billing"


def test_undo_with_nothing_to_undo_says_so(client, analyst, categories):
    client.force_login(analyst)
    response = client.get("/reviews/undo", **HTMX)
    assert response.status_code == 409
    assert "nothing to undo: a decision can be changed for 10 minutes" in response.content.decode()


def test_my_decisions_lists_only_mine_with_a_change_link_while_the_window_is_open(
    client, analyst, categories
):
    other = make_user()

    def decide(user, slug):
        task = make_task()
        assert claim_next_task(user=user) == task
        return submit_review(task_id=task.pk, user=user, category_slug=slug)

    recent = decide(analyst, "billing")
    decide(other, "other")
    old = decide(analyst, "outage")
    Review.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    client.force_login(analyst)
    body = client.get("/reviews/decisions/").content.decode()
    assert body.count("<tr data-review=") == 2
    assert f'href="/reviews/decisions/{recent.pk}/"' in body
    assert f'href="/reviews/decisions/{old.pk}/"' not in body
    filtered = client.get("/reviews/decisions/?category=outage").content.decode()
    assert filtered.count("<tr data-review=") == 1 and f'data-review="{old.pk}"' in filtered
    changeable = client.get("/reviews/decisions/?changeable=1").content.decode()
    assert changeable.count("<tr data-review=") == 1


def test_a_change_after_the_window_shows_the_error_on_the_decision_page(
    client, analyst, categories
):
    task = make_task()
    claim_next_task(user=analyst)
    review = submit_review(task_id=task.pk, user=analyst, category_slug="outage")
    Review.objects.filter(pk=review.pk).update(created_at=timezone.now() - timedelta(hours=1))
    client.force_login(analyst)
    response = client.post(f"/reviews/decisions/{review.pk}/change", {"category": "billing"})
    assert response.status_code == 409
    assert "can no longer be changed" in response.content.decode()
    assert Review.objects.get(pk=review.pk).category.slug == "outage"


def test_someone_elses_decision_page_is_a_404(client, analyst, categories):
    task = make_task()
    other = make_user()
    claim_next_task(user=other)
    review = submit_review(task_id=task.pk, user=other, category_slug="outage")
    client.force_login(analyst)
    assert client.get(f"/reviews/decisions/{review.pk}/").status_code == 404


def test_the_card_masks_the_whole_text_before_collapsing_it_and_the_metadata(
    client, analyst, categories
):
    # An address that straddles the 2,000th character, where the text is cut.
    text = "x " * 995 + "write to ana.lima@example.org " + "y " * 2000
    item = make_item(text, status=Item.Status.IN_REVIEW, metadata={"from": "bob@example.org"})
    body = card_for(client, analyst, make_task(item))
    assert "Show all" in body
    assert "ana.l" not in body and "example.org" not in body
    assert "[email]" in body and "<dt>From</dt><dd>[email]</dd>" in body


def test_the_queue_tells_model_unsure_from_category_never_automatic(client, analyst, categories):
    unsure = make_item("maybe billing", status=Item.Status.IN_REVIEW)
    make_prediction(unsure, categories["billing"], confidence=0.6, route="review", threshold=0.9)
    never = make_item("outage for sure", status=Item.Status.IN_REVIEW)
    make_prediction(
        never, categories["outage"], confidence=0.99, route="review", reason="target_unreachable"
    )
    unsure_task, never_task = make_task(unsure), make_task(never)
    client.force_login(analyst)
    body = client.get("/reviews/").content.decode()
    assert "<td>Model unsure</td><td>1</td>" in body
    assert "<td>Category never automatic</td><td>1</td>" in body
    assert ">Category never automatic (1)</option>" in body and ">Model unsure (1)</option>" in body
    client.get("/reviews/?reason=never_automatic")
    assert client.post("/reviews/claim", **HTMX).context["task"] == never_task
    client.post(f"/reviews/tasks/{never_task.pk}/skip", **HTMX)
    client.get("/reviews/?reason=low_confidence")
    assert client.post("/reviews/claim", **HTMX).context["task"] == unsure_task


def test_the_time_spent_is_the_servers_not_the_clients(client, categories):
    """A posted shown_at of 0 recorded 3,600 s; the server counts from when it showed the card."""
    from tests.factories import make_task, make_user
    from triage.models import Review

    task = make_task()
    client.force_login(make_user())
    client.post("/reviews/claim", HTTP_HX_REQUEST="true")
    client.post(f"/reviews/tasks/{task.pk}/decide", {"category": "billing", "shown_at": "0"})
    seconds = Review.objects.get(task=task).seconds_spent
    assert seconds is not None and seconds < 600


def test_a_decision_on_a_card_the_server_never_showed_records_no_time(client, categories):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import make_task, make_user
    from triage.models import Review

    user = make_user()
    task = make_task(claimed_by=user, lease_expires_at=timezone.now() + timedelta(minutes=5))
    client.force_login(user)
    client.post(f"/reviews/tasks/{task.pk}/decide", {"category": "billing", "shown_at": "0"})
    assert Review.objects.get(task=task).seconds_spent is None
