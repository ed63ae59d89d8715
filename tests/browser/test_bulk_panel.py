"""The similar-items panel in a real browser: neighbours shown, a bulk decision taken."""

from collections.abc import Iterator

import numpy as np
import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from reviews.models import Review
from triage.models import Embedding, Item

from ..factories import make_item, make_keyword_categories, make_task, make_user
from .test_review_flow import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(5_000)
        yield page
        browser.close()
        connections.close_all()


def embedded(item: Item, vector: list[float]) -> Item:
    Embedding.objects.create(
        item=item, encoder="test-space", vector=np.asarray(vector, dtype=np.float32).tobytes()
    )
    return item


def test_an_analyst_decides_similar_tasks_in_bulk_from_the_panel(
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
    page.goto(f"{live_server.url}/accounts/login/?next=/reviews/tasks/{current.pk}/similar")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "s3cret-pw")
    page.press("input[name=password]", "Enter")
    panel = page.locator("#similar-panel")
    expect(panel).to_contain_text("refund my double charge")
    expect(panel).to_contain_text("Billing")
    expect(panel).to_contain_text("user:bob")
    page.get_by_label("charge refund please").check()
    page.select_option("select[name=category]", "billing")
    page.get_by_role("button", name="Apply to selected").click()
    page.wait_for_url(f"{live_server.url}/reviews/")
    reviews = Review.objects.filter(bulk=True)
    assert {r.task_id for r in reviews} == {current.pk, alike.pk}
    assert {r.category.slug for r in reviews} == {"billing"}
