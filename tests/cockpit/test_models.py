"""Model pages: truthful statuses, comparisons, and promote / roll back behind a confirmation."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from django.utils.html import escape

from triage import training
from triage.cockpit.versions import status_of
from triage.models import AuditLog, Category, ModelVersion
from triage.routing.evidence import load_evidence, store_evidence

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_versions(champion):
    # Equal data: the gate keeps the champion; an admin promotes the second by hand.
    second = training.retrain().version
    training.promote_version(version=second, actor="test")
    champion.refresh_from_db()
    second.refresh_from_db()
    return champion, second


def test_promote_shows_the_comparison_and_changes_nothing_until_confirmed(
    admin_client, two_versions
):
    first, second = two_versions
    assert second.status == ModelVersion.Status.CHAMPION
    response = admin_client.get(f"/cockpit/models/{first.pk}/promote")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"Promote v{first.pk} to champion?" in html
    assert 'id="comparison"' in html and 'id="per-category"' in html
    assert "Confusion between categories" in html
    assert f"Yes, promote v{first.pk}" in html and "csrfmiddlewaretoken" in html
    assert ModelVersion.objects.champion() == second

    response = admin_client.post(f"/cockpit/models/{first.pk}/promote")
    assert response.status_code == 302
    assert ModelVersion.objects.champion() == first
    entry = AuditLog.objects.filter(action="promote").latest("at")
    assert (entry.actor, entry.detail["version"]) == ("user:root", first.pk)


def test_promoting_a_version_whose_artifact_changed_is_refused_with_the_reason(
    admin_client, two_versions
):
    first, second = two_versions
    Path(first.artifact_path).write_bytes(b"not the trained head")
    page = admin_client.get(f"/cockpit/models/{first.pk}/promote").content.decode()
    assert "cannot be promoted" in page and "the file changed" in page
    assert "Yes, promote" not in page

    response = admin_client.post(f"/cockpit/models/{first.pk}/promote")
    assert response.status_code == 409
    assert "refused: the artifact" in response.content.decode()
    assert ModelVersion.objects.champion() == second


def test_roll_back_asks_first_then_brings_back_the_previous_champion(admin_client, two_versions):
    first, second = two_versions
    page = admin_client.get("/cockpit/models/rollback").content.decode()
    assert f"Roll back to v{first.pk}?" in page and 'id="comparison"' in page
    assert ModelVersion.objects.champion() == second

    assert admin_client.post("/cockpit/models/rollback").status_code == 302
    assert ModelVersion.objects.champion() == first
    second.refresh_from_db()
    # Stored as rejected, but it passed the gate and served: the page says so.
    assert second.status == ModelVersion.Status.REJECTED
    assert status_of(second).label == "rolled back"
    timeline = admin_client.get("/cockpit/models/").content.decode()
    row = timeline.split(f'data-version="{second.pk}"')[1].split("</tr>")[0]
    assert "rolled back" in row and "rejected" not in row


def test_roll_back_with_no_earlier_champion_is_refused(admin_client, champion):
    response = admin_client.post("/cockpit/models/rollback")
    assert response.status_code == 409
    assert "nothing to roll back to" in response.content.decode()


@pytest.mark.parametrize(
    ("status", "promoted", "label"),
    [
        ("champion", True, "champion"),
        ("retired", True, "retired"),
        ("rejected", True, "rolled back"),
        ("rejected", False, "rejected by the gate"),
        ("candidate", False, "passed the gate, not promoted"),
    ],
)
def test_statuses_tell_what_happened(champion, status, promoted, label):
    champion.status = status
    if not promoted:
        champion.promoted_at = None
    assert status_of(champion).label == label


def test_the_version_page_is_readable_not_a_json_dump(admin_client, champion):
    html = admin_client.get(f"/cockpit/models/{champion.pk}/").content.decode()
    assert champion.artifact_sha256 in html and champion.artifact_path in html
    assert "file matches its sha256" in html
    assert 'id="training-set"' in html
    names = dict(Category.objects.values_list("slug", "name"))
    for slug, n in champion.training_snapshot["per_category"].items():
        # Names, not slugs.
        assert f'<th scope="row">{names[slug]}</th><td class="n">{n}</td>' in html
    assert "The gate's verdict, " in html and 'id="gate-verdict"' in html
    assert "Reliability: accuracy against stated confidence" in html
    assert f"{champion.macro_f1:.3f}" in html
    assert not re.search(r"\b\d+\.\d{5,}\b", html)  # numbers rounded, never 16 decimals
    assert '"per_class"' not in html and "{&#x27;" not in html


def test_the_timeline_shows_metrics_automation_and_the_gates_verdict(admin_client, two_versions):
    first, second = two_versions
    html = admin_client.get("/cockpit/models/").content.decode()
    for v in (first, second):
        assert f'data-version="{v.pk}"' in html
        assert escape(v.gate_decision) in html
    assert html.count("%") >= 2  # automation at the current rules


def test_compare_any_two_versions(admin_client, two_versions):
    first, second = two_versions
    response = admin_client.get("/cockpit/models/compare", {"a": first.pk, "b": second.pk})
    html = response.content.decode()
    assert response.status_code == 200
    assert f"v{first.pk}" in html and f"v{second.pk}" in html
    assert html.count('class="data confusion"') == 2
    assert admin_client.get("/cockpit/models/compare", {"a": "x", "b": "1"}).status_code == 400


def test_the_confirmation_warns_when_the_incoming_version_automates_much_less(
    admin_client, two_versions
):
    from triage.models import RoutingPolicy

    first, second = two_versions
    # Make half of v1's evidence wrong: at the 70% target it then certifies nothing.
    evidence = load_evidence(first)
    k = len(evidence.labels)
    wrong = np.where(
        np.arange(len(evidence)) % 2 == 1, (evidence.predicted + 1) % k, evidence.predicted
    )
    store_evidence(
        first,
        dataclasses.replace(evidence, truth=wrong),
        path=Path(first.evidence_path).with_name("tampered.evidence.npz"),
    )
    RoutingPolicy.objects.filter(pk=1).update(target_precision=0.7)
    html = admin_client.get(f"/cockpit/models/{first.pk}/promote").content.decode()
    assert 'id="automation-drop"' in html
    assert "percentage points less of its evidence" in html
    page = admin_client.get(f"/cockpit/models/{second.pk}/promote").content.decode()
    assert 'id="automation-drop"' not in page


def test_the_comparison_has_changes_names_and_a_row_normalised_matrix(admin_client, two_versions):
    first, second = two_versions
    html = admin_client.get(f"/cockpit/models/compare?a={first.pk}&b={second.pk}").content.decode()
    assert '<td class="n delta">' in html and " pt</td>" in html
    assert "Billing" in html and 'class="n shade-' in html
    # Every row of the matrix adds up to 100% of that true category.
    rows = re.findall(r"<tr><th scope=\"row\">[^<]+</th>(.*?)</tr>", html.split("confusion")[-1])
    assert rows
    for row in rows:
        shares = [int(x) for x in re.findall(r">(\d+)% <span class=\"count\">", row)]
        assert shares and abs(sum(shares) - 100) <= len(shares)


def test_each_version_says_which_head_it_serves_and_whether_its_encoder_was_tuned(
    admin_client, champion
):
    from triage.cockpit.versions import model_description

    champion.metrics = champion.metrics | {"head": "ensemble"}
    champion.save(update_fields=["metrics"])
    assert model_description(champion) == "encoder head averaged with a TF-IDF head"
    listing = admin_client.get("/cockpit/models/").content.decode()
    page = admin_client.get(f"/cockpit/models/{champion.pk}/").content.decode()
    assert "Encoder head averaged with a TF-IDF head" in listing
    assert "<dt>Model</dt><dd>Encoder head averaged with a TF-IDF head</dd>" in page
    champion.metrics = champion.metrics | {"voters": 6000}
    champion.save(update_fields=["metrics"])
    assert model_description(champion) == (
        "encoder head averaged with a TF-IDF head, and a vote of the nearest of 6,000 "
        "labelled examples"
    )
    champion.metrics = {k: v for k, v in champion.metrics.items() if k != "voters"}
    champion.save(update_fields=["metrics"])

    champion.metrics = champion.metrics | {
        "head": "embedding",
        "fine_tune": {"kept": "fine-tuned", "max_length": 128},
    }
    assert model_description(champion) == "fine-tuned encoder (max length 128), encoder head"
    champion.metrics = {}
    assert model_description(champion) == "head (kind not recorded)"
