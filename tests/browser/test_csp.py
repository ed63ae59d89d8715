"""The Content-Security-Policy blocks nothing the pages need: queue, admin, cockpit."""

import pytest
from playwright.sync_api import Page, expect

from triage.access import ADMINS
from triage.models import ApiToken

from ..factories import make_item, make_keyword_categories, make_task, make_user

pytestmark = pytest.mark.browser


def test_admin_and_queue_pages_run_under_the_csp_without_violations(
    transactional_db,
    live_server,
    page: Page,
) -> None:
    categories = make_keyword_categories()
    make_user("root", password="s3cret-pw", group=ADMINS)
    make_task(make_item("please refund the double charge on my card", status="in_review"))
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            violations.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: violations.append(str(exc)))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('Content Security Policy: '"
        " + e.violatedDirective + ' ' + e.blockedURI))"
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("s3cret-pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/reviews/")
    page.get_by_role("button", name="Start reviewing").click()
    expect(page.locator("#task-card .item-text")).to_contain_text("refund")
    # The policy is enforced and the listener sees it: an injected inline script is refused.
    page.evaluate(
        "const s = document.createElement('script');"
        " s.textContent = 'window.__ran = 1'; document.body.appendChild(s)"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in violations), violations
    violations.clear()
    page.keyboard.press("1")  # an htmx swap under the policy
    expect(page.locator("#task-card .empty")).to_be_visible()

    for path in [
        "/admin/",
        "/admin/triage/item/?q=refund",
        f"/admin/triage/category/{categories['billing'].pk}/change/",
        "/admin/triage/category/add/",
        "/admin/triage/auditlog/",
        "/cockpit/",
        "/cockpit/categories/billing/",
        "/cockpit/models/",
        "/cockpit/audit/",
    ]:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path

    # The admin's own scripts run: the slug is filled in from the name as it is typed.
    page.goto(f"{live_server.url}/admin/triage/category/add/")
    page.locator("#id_name").press_sequentially("Fraud Desk")
    expect(page.locator("#id_slug")).to_have_value("fraud-desk")

    # A new token is shown on its page.
    page.goto(f"{live_server.url}/admin/triage/apitoken/add/")
    page.locator("#id_name").fill("zendesk")
    page.locator("input[name=_save]").click()
    shown = page.locator("#issued-token").input_value()
    assert ApiToken.authenticate(shown) is not None

    assert violations == []
