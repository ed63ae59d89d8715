"""The similar-items panel on the card, in a real browser: neighbours shown, a bulk
decision taken for this task and a similar one."""

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from triage.models import Embedding, Item, Review

from ..factories import make_item, make_keyword_categories, make_task, make_user
from .conftest import login

pytestmark = pytest.mark.browser


def embedded(item: Item, vector: list[float]) -> Item:
    Embedding.objects.create(
        item=item, encoder="test-space", vector=np.asarray(vector, dtype=np.float32).tobytes()
    )
    return item


def test_an_analyst_decides_similar_tasks_in_bulk_from_the_card(
    transactional_db, live_server, page: Page
) -> None:
    categories = make_keyword_categories()
    make_user("alice", password="s3cret-pw")
    embedded(
        make_item(
            "refund my double charge",
            status=Item.Status.RESOLVED,
            final_category=categories["billing"],
            decided_by="user:bob",
            decided_at=timezone.now(),
        ),
        [1, 0, 0],
    )
    current = make_task(embedded(make_item("refund the charge", status="in_review"), [1, 0.1, 0]))
    alike = make_task(embedded(make_item("charge refund please", status="in_review"), [1, 0.2, 0]))
    login(page, live_server, "alice", "s3cret-pw")
    page.wait_for_url(f"{live_server.url}/reviews/")
    page.keyboard.press("Enter")  # claim
    expect(page.locator("#task-card")).to_have_attribute("data-task-id", str(current.pk))
    panel = page.locator("#similar-panel")
    expect(panel).to_contain_text("refund my double charge")
    expect(panel).to_contain_text("Billing")
    expect(panel).to_contain_text("user:bob")
    panel.locator("details#bulk summary").click()
    panel.get_by_label("charge refund please").check()
    panel.locator("select[name=category]").select_option("billing")
    panel.get_by_role("button", name="Apply to this task and the ticked ones").click()
    expect(page.locator("#task-card")).not_to_have_attribute("data-task-id", str(current.pk))
    reviews = Review.objects.filter(bulk=True)
    assert {r.task_id for r in reviews} == {current.pk, alike.pk}
    assert {r.category.slug for r in reviews} == {"billing"}
