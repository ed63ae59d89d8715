"""The browser tests' shared pieces: Debian's Chromium under Playwright, and logging in."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Page, sync_playwright

# Debian's Chromium, never a browser Playwright would download.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    # Playwright's sync API keeps an asyncio loop running in this thread, which
    # would make Django refuse the test's own (synchronous) ORM calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(5_000)
        yield page
        browser.close()
        # The ORM calls made while Playwright ran got their own connection (Django keys
        # connections by context, and Playwright switches contexts). Close it here, or it
        # outlives the test and blocks dropping the PostgreSQL test database.
        connections.close_all()


def login(page: Page, live_server: Any, user: Any, password: str, *, next: str = "") -> None:
    """Log `user` (a User or a username) in through the login form; lands on `next`
    (or the default page)."""
    page.goto(f"{live_server.url}/accounts/login/" + (f"?next={next}" if next else ""))
    page.get_by_label("Username").fill(user if isinstance(user, str) else user.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
