"""Standards in a real browser: axe finds no serious or moderate violation on the
analysts' and admins' main pages, no cockpit page scrolls sideways at 390 px, and
/api/docs renders Swagger UI from this site under the Content-Security-Policy."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from triage.access import ADMINS
from triage.models import Category, ModelVersion

from ..factories import make_item, make_keyword_categories, make_task, make_user
from .conftest import login
from .test_cockpit import set_up_two_models, waiting

pytestmark = pytest.mark.browser

# axe-core from npm (`npm pack axe-core`), vendored: never fetched from a CDN.
AXE = (Path(__file__).parent / "assets" / "axe.min.js").read_text()
SERIOUS = {"serious", "moderate", "critical"}


@pytest.fixture
def page(page: Page) -> Page:
    page.set_default_timeout(10_000)
    return page


def axe_violations(page: Page) -> list[str]:
    """axe's violations of serious, moderate or critical impact on the page as it is."""
    # Evaluated through the DevTools protocol, which the page's CSP does not govern.
    page.evaluate(AXE)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact,"
        " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return [
        f"{page.url}: {v['id']} ({v['impact']}) at {v['targets']}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def cockpit_pages(champion: ModelVersion, first: ModelVersion) -> list[str]:
    slug = Category.objects.order_by("display_order", "pk").first().slug
    return [
        "/cockpit/",
        f"/cockpit/categories/{slug}/",
        "/cockpit/models/",
        f"/cockpit/models/{champion.pk}/",
        f"/cockpit/models/{first.pk}/",
        "/cockpit/audit/",
    ]


def test_axe_finds_nothing_serious_or_moderate_on_the_main_pages(
    transactional_db, live_server, page: Page
):
    first, champion = set_up_two_models()
    waiting(champion, "billing", 0.62)
    boss = make_user("boss", group=ADMINS, password="s3cret-pw")
    found: list[str] = []

    # The check can fail: a field with no label is a serious violation.
    login(page, live_server, boss, "s3cret-pw", next="/reviews/")
    page.evaluate("document.querySelector('main').append(document.createElement('select'))")
    assert any("select-name" in v for v in axe_violations(page))

    # The analysts' pages: the card, My decisions, a decision's page.
    page.goto(f"{live_server.url}/reviews/")
    found += axe_violations(page)  # the start panel
    page.keyboard.press("Enter")
    expect(page.locator("#task-card[data-mode=decide]")).to_be_visible()
    expect(page.locator("#similar-panel")).to_have_count(1)
    found += axe_violations(page)
    page.keyboard.press("1")
    expect(page.locator("#task-card .notice")).to_be_visible()
    page.goto(f"{live_server.url}/reviews/decisions/")
    found += axe_violations(page)
    page.locator("#decisions a", has_text="Change").first.click()
    expect(page.locator("h1")).to_have_count(1)
    found += axe_violations(page)

    for path in cockpit_pages(champion, first):
        page.goto(f"{live_server.url}{path}")
        if "/categories/" in path:  # the what-if states its consequences in items a day
            expect(page.locator('[data-figure="per-day"]')).to_contain_text("items")
            expect(page.locator('[data-figure="wrong-per-day"]')).to_contain_text("≈")
        found += axe_violations(page)
    assert found == []


def test_no_cockpit_page_scrolls_sideways_at_390_px(transactional_db, live_server, page: Page):
    first, champion = set_up_two_models()
    waiting(champion, "billing", 0.62)
    make_user("boss", group=ADMINS, password="s3cret-pw")
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, "boss", "s3cret-pw", next="/cockpit/")
    wide = []
    for path in [*cockpit_pages(champion, first), "/reviews/", "/reviews/decisions/"]:
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            culprits = page.evaluate(
                "[...document.querySelectorAll('body *')]"
                ".filter(e => e.getBoundingClientRect().right > 392).slice(0, 4)"
                ".map(e => e.tagName + '.' + e.className + '#' + e.id)"
            )
            wide.append(f"{path}: {width} px {culprits}")
    assert wide == []


def test_api_docs_render_under_the_csp_without_leaving_the_site(
    transactional_db, live_server, page: Page
):
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('Content Security Policy: '"
        " + e.violatedDirective + ' ' + e.blockedURI))"
    )
    response = page.goto(f"{live_server.url}/api/docs")
    assert response is not None and "content-security-policy" in response.headers
    expect(page.locator("#swagger-ui .info .title")).to_contain_text("Triage API")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    outside = [
        url
        for url in requests
        if not url.startswith(live_server.url) and not url.startswith("data:")
    ]
    assert outside == []
    assert problems == []


def test_a_decision_page_has_one_h1_and_no_axe_finding(transactional_db, live_server, page: Page):
    categories = make_keyword_categories()
    ann = make_user("ann", password="s3cret-pw")
    task = make_task(make_item("refund", status="in_review"))
    assert claim_next_task(user=ann) == task
    review = submit_review(task_id=task.pk, user=ann, category_slug=categories["billing"].slug)
    login(page, live_server, ann, "s3cret-pw")
    page.goto(f"{live_server.url}/reviews/decisions/{review.pk}/")
    expect(page.locator("h1")).to_have_count(1)
    assert axe_violations(page) == []
