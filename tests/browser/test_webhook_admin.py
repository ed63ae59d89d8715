"""An admin adds a webhook endpoint and a rule in a real browser, and sees a delivery."""

import re

import pytest
from playwright.sync_api import Page, expect

from triage.access import ADMINS
from triage.actions.models import Delivery, Endpoint
from triage.api import ingest
from triage.api.intake import ItemIn
from triage.routing.models import Rule

from ..actions.receiver import Receiver
from ..factories import make_keyword_categories, make_user

pytestmark = pytest.mark.browser


def test_admin_adds_an_endpoint_and_a_rule_and_sees_a_delivery(
    transactional_db, live_server, page: Page, settings
) -> None:
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True
    settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS = 2
    receiver = Receiver().start()
    try:
        make_keyword_categories()
        make_user("root", group=ADMINS, password="s3cret-pw")
        page.goto(f"{live_server.url}/admin/login/")
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill("s3cret-pw")
        page.get_by_role("button", name="Log in").click()

        # A private address is refused first, with the reason on the URL field.
        page.goto(f"{live_server.url}/admin/actions/endpoint/add/")
        settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = False
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".errorlist")).to_contain_text("private, loopback or link-local")
        settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#issued-secret")).to_have_value(re.compile(r"^whsec_"))
        endpoint = Endpoint.objects.get()
        receiver.secret = endpoint.secret

        # A rule whose pattern does not compile is refused; then a keyword rule is saved.
        page.goto(f"{live_server.url}/admin/triage/rule/add/")
        page.get_by_label("Name").fill("refunds")
        page.get_by_label("Condition").select_option("regex")
        page.get_by_label("Pattern").fill("(refund")
        page.get_by_label("Action").select_option("route")
        page.get_by_label("Category").select_option(label="billing")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".errorlist")).to_contain_text("does not compile")
        page.get_by_label("Condition").select_option("keywords")
        page.get_by_label("Pattern").fill("")
        page.get_by_label("Keywords").fill("refund\nchargeback")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".messagelist")).to_contain_text("was added successfully")
        assert Rule.objects.get().keywords == ["refund", "chargeback"]

        # An item arrives; the rule routes it (no model yet) and the webhook goes out.
        ingest.ingest_items(items=[ItemIn(external_id="t-1", text="please refund me")])
        receiver.wait_for(1)
        assert receiver.received[0].verified

        page.goto(f"{live_server.url}/admin/actions/delivery/")
        row = page.locator("#result_list tbody tr").first
        expect(row).to_contain_text("item.routed")
        expect(row).to_contain_text("Succeeded")
        expect(row).to_contain_text("200")
        page.goto(f"{live_server.url}/admin/actions/endpoint/")
        expect(
            page.locator("#result_list tbody tr").first.locator("td.field-delivered")
        ).to_have_text("1")
        page.goto(f"{live_server.url}/admin/triage/rule/")
        expect(page.locator("td.field-hits")).to_have_text("1")
        assert Delivery.objects.get().state == Delivery.State.SUCCEEDED
    finally:
        receiver.stop()
