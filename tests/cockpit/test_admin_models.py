"""The Django admin's model versions: one write path (its actions lead to the cockpit's
confirmations), rounded figures, and the cockpit's words for each state."""

import pytest

from triage import training
from triage.models import ModelVersion

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/triage/modelversion/"


@pytest.fixture
def two_versions(champion):
    second = training.retrain().version
    training.promote_version(version=second, actor="test")
    champion.refresh_from_db()
    return champion, second


def test_the_admins_promote_leads_to_the_cockpits_confirmation_and_changes_nothing(
    admin_client, two_versions
):
    first, second = two_versions
    response = admin_client.post(CHANGELIST, {"action": "promote", "_selected_action": [first.pk]})
    assert response.status_code == 302
    assert response["Location"] == f"/cockpit/models/{first.pk}/promote"
    assert ModelVersion.objects.champion() == second


def test_the_admins_roll_back_leads_to_the_cockpits_confirmation(admin_client, two_versions):
    first, second = two_versions
    response = admin_client.post(
        CHANGELIST, {"action": "roll_back", "_selected_action": [second.pk]}
    )
    assert response.status_code == 302
    assert response["Location"] == "/cockpit/models/rollback"
    assert ModelVersion.objects.champion() == second


def test_the_list_rounds_macro_f1_and_says_what_happened_to_each_version(
    admin_client, two_versions
):
    first, second = two_versions
    second.metrics = {**second.metrics, "macro_f1": 0.812345678901234}
    second.save(update_fields=["metrics"])
    html = admin_client.get(CHANGELIST).content.decode()
    assert "0.812" in html and "0.8123456" not in html
    assert "champion" in html and "retired" in html
