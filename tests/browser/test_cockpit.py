"""An admin in the cockpit, in a real browser: figures, preview, save and re-route, promote."""

import pytest
from playwright.sync_api import Page, expect

from triage import training
from triage.access import ADMINS
from triage.models import (
    AuditLog,
    Category,
    Item,
    ModelVersion,
    Prediction,
    ReviewTask,
    RoutingPolicy,
)

from ..factories import (
    make_item,
    make_keyword_categories,
    make_labelled_history,
    make_task,
    make_user,
)
from .conftest import login

pytestmark = pytest.mark.browser


@pytest.fixture
def page(page: Page) -> Page:
    # The cockpit's pages draw charts from trained models: give them longer.
    page.set_default_timeout(8_000)
    return page


def set_up_two_models() -> tuple[ModelVersion, ModelVersion]:
    categories = make_keyword_categories()
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0, "audit_floor": 0},
    )
    first = training.retrain().version
    second = training.retrain().version
    training.promote_version(version=second, actor="test")
    first.refresh_from_db()
    return first, second


def waiting(champion: ModelVersion, slug: str, confidence: float) -> ReviewTask:
    item = make_item(f"waiting {confidence}", status=Item.Status.IN_REVIEW)
    Prediction.objects.create(
        item=item,
        model_version=champion,
        label=Category.objects.get(slug=slug),
        confidence=confidence,
        scores=[{"label": slug, "confidence": confidence}],
        route=Prediction.Route.REVIEW,
        reason="below_threshold",
    )
    return make_task(item)


def watch_for_errors(page: Page) -> list[str]:
    """Script errors and Content-Security-Policy violations, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('Content Security Policy: '"
        " + e.violatedDirective + ' ' + e.blockedURI))"
    )
    return errors


def log_in(page: Page, live_server) -> None:
    make_user("boss", group=ADMINS, password="s3cret-pw")
    login(page, live_server, "boss", "s3cret-pw", next="/cockpit/")
    page.wait_for_url(f"{live_server.url}/cockpit/")


def test_admin_previews_saves_and_reroutes_a_category(transactional_db, live_server, page):
    first, champion = set_up_two_models()
    for confidence in (0.9, 0.75, 0.62, 0.3):
        waiting(champion, "billing", confidence)
    js_errors = watch_for_errors(page)
    log_in(page, live_server)

    # The overview, with its figures.
    row = page.locator('#categories tr[data-category="billing"]')
    expect(row).to_contain_text("target 70.0%")
    expect(page.locator("#kpi-queue")).to_contain_text("4")
    expect(page.locator("figure.chart")).to_have_count(4)

    # Moving the target updates the preview in place; nothing is saved.
    row.get_by_role("link").click()
    page.wait_for_url(f"{live_server.url}/cockpit/categories/billing/")
    page.evaluate("window.__marker = 1")
    preview = page.locator("#preview")
    threshold = preview.locator('[data-figure="threshold"]')
    before = threshold.inner_text()
    page.get_by_label("Target precision (0–1, e.g. 0.95)").fill("0.9999")
    expect(threshold).to_have_text("—")
    expect(preview.locator('[data-figure="reason"]')).to_have_class("error")
    expect(preview.locator('[data-figure="needs"]')).to_be_visible()
    page.get_by_label("Target precision (0–1, e.g. 0.95)").fill("0.7")
    expect(threshold).to_have_text(before)
    assert page.evaluate("window.__marker") == 1  # swapped by htmx, not reloaded
    billing = Category.objects.get(slug="billing")
    assert (billing.target_precision, billing.threshold) == (None, None)
    assert not AuditLog.objects.filter(action="category").exists()

    # A raw threshold out of range is a form error naming the field.
    page.get_by_label("Raw threshold", exact=True).check()
    page.get_by_label("Raw threshold (0–1)").fill("1.5")
    expect(preview).to_contain_text("Raw threshold must be between 0 and 1")

    # Save a raw threshold of 0.6: three waiting tasks now pass, and the page says so first.
    page.get_by_label("Raw threshold (0–1)").fill("0.6")
    expect(preview.locator('[data-figure="threshold"]')).to_have_text("0.600")
    page.get_by_role("button", name="Save this rule").click()
    offer = page.locator("#reroute-offer")
    expect(offer).to_contain_text("3 waiting review tasks of this category now pass")
    entry = AuditLog.objects.get(action="category")
    assert entry.detail["before"] == {"target_precision": None, "threshold": None}
    assert entry.detail["after"] == {"target_precision": None, "threshold": 0.6}
    assert ReviewTask.objects.open().count() == 4

    offer.get_by_role("button", name="Re-route 3 items").click()
    expect(page.locator(".messages")).to_contain_text("3 re-routed: 3 acted on, 0 acted on")
    assert ReviewTask.objects.open().count() == 1
    assert Item.objects.filter(status=Item.Status.ROUTED, final_category=billing).count() == 3

    # The audit log shows the change with its values before and after.
    page.get_by_role("link", name="Audit log").click()
    changed = page.locator('#audit-entries tr[data-action="category"]')
    expect(changed).to_contain_text("category:billing")
    expect(changed.locator("tr.changed td.after")).to_have_text("0.6")
    assert js_errors == []


def test_promote_asks_for_confirmation_and_shows_the_comparison(
    transactional_db, live_server, page
):
    first, champion = set_up_two_models()
    js_errors = watch_for_errors(page)
    log_in(page, live_server)
    page.get_by_role("link", name="Models").click()
    page.locator(f'#versions tr[data-version="{first.pk}"]').get_by_role(
        "link", name="Promote…"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Promote v{first.pk} to champion?")
    expect(page.locator("#comparison")).to_contain_text("Macro-F1")
    expect(page.locator("#per-category")).to_contain_text("Billing")  # names, not slugs
    assert ModelVersion.objects.champion() == champion  # nothing yet

    page.get_by_role("button", name=f"Yes, promote v{first.pk}").click()
    expect(page.locator(".messages")).to_contain_text(f"v{first.pk} is now the champion")
    assert ModelVersion.objects.champion() == first
    row = page.locator(f'#versions tr[data-version="{first.pk}"]')
    expect(row).to_contain_text("champion")
    page.get_by_role("link", name=f"v{first.pk}", exact=True).click()
    expect(page.locator("figure.chart")).to_contain_text("Reliability")
    assert js_errors == []


def test_a_suspended_category_shows_its_alert_and_resumes_with_a_reason(
    transactional_db, live_server, page
):
    from django.utils import timezone

    from triage.monitoring.models import CategoryWatch

    set_up_two_models()
    billing = Category.objects.get(slug="billing")
    CategoryWatch.objects.update_or_create(
        category=billing,
        defaults={
            "suspended_at": timezone.now(),
            "suspension": {"reason": "live precision below the 70.0% target: 7 wrong of 20"},
        },
    )
    js_errors = watch_for_errors(page)
    log_in(page, live_server)
    alert = page.locator('[data-suspended="billing"]')
    expect(alert).to_contain_text("Billing is suspended")
    expect(alert).to_contain_text("7 wrong of 20")
    expect(page.locator('#categories tr[data-category="billing"]')).to_contain_text("suspended")

    alert.get_by_role("link", name="Review and resume…").click()
    suspension = page.locator("#suspension")
    expect(suspension).to_contain_text("Suspended since")
    suspension.get_by_role("button", name="Resume automatic actions").click()
    # The reason is required (checked on the server; the form sets no `required`).
    expect(page.locator("#suspension .errorlist")).to_contain_text("required")
    assert CategoryWatch.objects.get(category=billing).suspended_at is not None

    page.get_by_label("Reason for resuming (it goes in the audit log)").fill("upstream fixed")
    page.get_by_role("button", name="Resume automatic actions").click()
    expect(page.locator(".messages")).to_contain_text("Billing resumed")
    expect(page.locator("#suspension")).to_have_count(0)
    assert CategoryWatch.objects.get(category=billing).suspended_at is None
    assert AuditLog.objects.get(action="resume").detail["reason"] == "upstream fixed"
    assert js_errors == []
