"""The what-if preview: its figures are the service's, and it saves nothing."""

import re

import pytest

from triage.cockpit.preview import Setting, preview
from triage.cockpit.services import save_category_setting
from triage.models import AuditLog, Category, RoutingPolicy
from triage.routing.derive import routing_policy, rule_reports
from triage.routing.evidence import load_evidence
from triage.stats import clopper_pearson_lower

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', html))


@pytest.mark.parametrize(
    "setting",
    [
        Setting(0.6, None),
        Setting(0.8, None),
        Setting(0.95, None),
        Setting(0.9999, None),  # cannot be certified on this little evidence
        Setting(None, 0.5),
        Setting(None, 0.97),
        Setting(None, None, inherit=True),
    ],
)
@pytest.mark.parametrize("certification", ["fallback", "per_category", "all_categories", "pooled"])
def test_the_preview_equals_what_routing_uses_once_saved(champion, setting, certification):
    RoutingPolicy.objects.filter(pk=1).update(certification=certification)
    billing = Category.objects.get(slug="billing")
    # Another category with a rule of its own, so pooling and a split delta matter.
    save_category_setting(
        category=Category.objects.get(slug="outage"), setting=Setting(0.8, None), actor="test"
    )
    tried = preview(billing, setting, champion=champion, policy=RoutingPolicy.current())

    save_category_setting(category=billing, setting=setting, actor="test")
    rule = routing_policy(champion).rule_for("billing")
    (report,) = [r for r in rule_reports(champion) if r.slug == "billing"]
    assert tried.report == report
    assert tried.threshold == rule.threshold
    assert (tried.coverage, tried.expected_precision) == (report.coverage, report.precision)
    if tried.target is not None:
        assert tried.certified_bound == rule.lower_bound
        assert tried.reason == rule.note


def test_a_raw_thresholds_bound_is_the_services_bound_on_the_same_evidence(champion):
    billing = Category.objects.get(slug="billing")
    policy = RoutingPolicy.current()
    tried = preview(billing, Setting(None, 0.6), champion=champion, policy=policy)
    confidences, correct = load_evidence(champion).for_category("billing")
    chosen = confidences >= 0.6
    assert tried.support == int(chosen.sum()) > 0
    assert tried.evidence == len(confidences)
    assert tried.coverage == pytest.approx(chosen.mean())
    assert tried.certified_bound == clopper_pearson_lower(
        int(correct[chosen].sum()), int(chosen.sum()), policy.delta
    )
    assert "promises no precision" in tried.reason


def test_moving_the_target_changes_the_preview_and_saves_nothing(admin_client, champion):
    billing = Category.objects.get(slug="billing")
    logged = AuditLog.objects.count()
    url = "/cockpit/categories/billing/preview"
    shown = {}
    for target in ("0.6", "0.9999"):
        response = admin_client.get(url, {"mode": "target", "target": target}, **HTMX)
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="preview"' in html and "<html" not in html  # the partial alone
        shown[target] = figures(html)
        expected = preview(
            billing,
            Setting(float(target), None),
            champion=champion,
            policy=RoutingPolicy.current(),
        )
        assert shown[target]["threshold"] == (
            "—" if expected.threshold is None else f"{expected.threshold:.3f}"
        )
        assert shown[target]["coverage"] == f"{expected.coverage * 100:.1f}%"
    assert shown["0.6"] != shown["0.9999"]
    assert shown["0.9999"]["threshold"] == "—"
    billing.refresh_from_db()
    assert (billing.target_precision, billing.threshold) == (None, None)
    assert AuditLog.objects.count() == logged


def test_an_uncertifiable_target_says_what_evidence_would_certify_it(admin_client, champion):
    RoutingPolicy.objects.filter(pk=1).update(min_support=10_000)
    response = admin_client.get(
        "/cockpit/categories/billing/preview", {"mode": "target", "target": "0.9"}, **HTMX
    )
    html = response.content.decode()
    assert "needs about 10000 correct predictions above the threshold" in html
    assert "What would certify it: about 10000 correct predictions of this category" in html


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"mode": "target", "target": "0"}, "target", "Target precision must be above 0"),
        ({"mode": "target", "target": "1.5"}, "target", "Target precision must be above 0"),
        ({"mode": "target", "target": "-0.2"}, "target", "Target precision must be above 0"),
        ({"mode": "target", "target": ""}, "target", "Target precision is required"),
        ({"mode": "target", "target": "lots"}, "target", "Enter a number"),
        ({"mode": "threshold", "threshold": "1.2"}, "threshold", "Raw threshold must be between"),
        ({"mode": "threshold", "threshold": "-0.1"}, "threshold", "Raw threshold must be between"),
        ({"mode": "sideways"}, "mode", "Select a valid choice"),
    ],
)
def test_bad_input_is_a_form_error_naming_the_field(admin_client, champion, data, field, message):
    logged = AuditLog.objects.count()
    for url, send in [
        ("/cockpit/categories/billing/preview", admin_client.get),
        ("/cockpit/categories/billing/save", admin_client.post),
    ]:
        response = send(url, data)
        assert response.status_code == 422, url
        assert message in response.content.decode(), url
        assert field in response.context["form"].errors
    billing = Category.objects.get(slug="billing")
    assert (billing.target_precision, billing.threshold) == (None, None)
    assert AuditLog.objects.count() == logged
