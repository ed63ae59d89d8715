"""GET /metrics: the Prometheus exposition, who may scrape it, and what it says."""

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from triage.actions.models import Delivery, Endpoint, Event
from triage.classify import service

from ..factories import make_champion, make_item, make_token

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
BILLING_TEXT = "refund the double charge on my card invoice payment"


def scrape(client, **extra):
    token = make_token(scopes=["metrics"])
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)
    assert response.status_code == 200, response.content
    return response


def samples(response) -> dict[tuple[str, frozenset], float]:
    """Every sample as {(name, labels): value}, through Prometheus's own text parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def value(figures, name, **labels):
    return figures[(name, frozenset(labels.items()))]


# --- Who may scrape ----------------------------------------------------------


def test_without_a_token_or_an_allowed_network_the_answer_is_401(client, categories):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert "bearer token" in response.json()["error"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_token_without_the_metrics_scope_gets_403_naming_it(client, categories):
    token = make_token(scopes=["ingest", "read", "events", "export"])
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
    assert response.json()["missing_scope"] == "metrics"


def test_a_token_with_the_metrics_scope_gets_the_text_format(client, categories):
    response = scrape(client)
    assert response["Content-Type"].startswith("text/plain; version=")
    assert ("triage_champion_version", frozenset()) in samples(response)


@override_settings(TRIAGE_METRICS_ALLOW=[ipaddress.ip_network("10.0.5.0/24")])
def test_an_allowed_network_scrapes_without_a_token_and_others_do_not(client, categories):
    assert client.get("/metrics", REMOTE_ADDR="10.0.5.17").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.6.17").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


def test_only_get_is_answered(client, categories):
    token = make_token(scopes=["metrics"])
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


@pytest.mark.parametrize("value", ["10.0.5.0/33", "localhost", "10.0.0.0/8,nope"])
def test_a_malformed_allowed_network_is_a_clear_configuration_error(value):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "TRIAGE_METRICS_ALLOW": value,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "TRIAGE_METRICS_ALLOW" in result.stderr and "CIDR" in result.stderr


# --- What it says ------------------------------------------------------------


@pytest.fixture
def champion(categories):
    # A target the fake model certifies, and every auto-action audited.
    return make_champion(categories)


def test_the_figures_are_the_databases(client, champion, analyst):
    items = [make_item(f"{BILLING_TEXT} {i}") for i in range(3)]
    service.classify_items(item_ids=[i.pk for i in items])
    # One audit: the analyst says the first auto-routed billing item was an outage.
    task = claim_next_task(user=analyst)
    submit_review(task_id=task.pk, user=analyst, category_slug="outage")
    endpoint = Endpoint.objects.create(url="https://hooks.example.org/triage")
    for state in [Delivery.State.FAILED, Delivery.State.SUCCEEDED]:
        event = Event.objects.create(type="item.routed", payload={})
        Delivery.objects.create(event=event, endpoint=endpoint, state=state)

    figures = samples(scrape(client))

    history = 3 * 5 * 16  # make_labelled_history: resolved items, source api by default
    assert value(figures, "triage_items_ingested_total", source="api") == history + 3
    assert value(figures, "triage_predictions_total", category="billing", route="auto") == 3
    assert value(figures, "triage_items_decided", category="billing", decided_by="model") == 2
    assert value(figures, "triage_items_decided", category="outage", decided_by="user") == 1
    assert value(figures, "triage_reviews_total", category="outage", agreed_with_model="no") == 1
    assert value(figures, "triage_review_queue_depth", reason="audit_sample") == 2
    assert value(figures, "triage_review_queue_depth", reason="low_confidence") == 0
    assert value(figures, "triage_review_queue_oldest_age_seconds") > 0
    assert value(figures, "triage_webhook_deliveries", state="failed") == 1
    assert value(figures, "triage_webhook_deliveries", state="pending") == 0
    assert value(figures, "triage_champion_version") == champion.pk
    assert value(figures, "triage_champion_info", version=str(champion.pk), kind="head") == 1
    assert value(figures, "triage_live_audited", category="billing", span="since_change") == 1
    assert value(figures, "triage_live_precision", category="billing", span="since_change") == 0
    assert value(figures, "triage_live_precision_upper", category="billing", span="window") < 1
    assert value(figures, "triage_live_audited", category="(all)", span="since_change") == 1
    assert value(figures, "triage_target_precision", category="billing") == 0.75
    assert value(figures, "triage_category_suspended", category="billing") == 0
    # Nothing audited: no precision figure rather than a made-up one.
    assert ("triage_live_precision", frozenset({"category": "other", "span": "window"})) not in (
        figures
    )


def test_each_classify_call_is_timed(client, categories):
    before = samples(scrape(client))
    items = [make_item(f"{BILLING_TEXT} {i}") for i in range(4)]
    service.classify_items(item_ids=[i.pk for i in items])
    after = samples(scrape(client))
    count = ("triage_classify_seconds_count", frozenset())
    assert after[count] == before.get(count, 0) + 1
    items_total = ("triage_classified_items_total", frozenset())
    assert after[items_total] == before.get(items_total, 0) + 4
    assert after[("triage_classify_seconds_sum", frozenset())] > before.get(
        ("triage_classify_seconds_sum", frozenset()), 0
    )


def test_in_multiprocess_mode_the_scrape_adds_up_every_process(tmp_path):
    """Two worker processes time a classify each; a third (the web process) sees both."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    worker = (
        "from triage.monitoring.instruments import observe_classify\n"
        "observe_classify(seconds=0.2, items=10)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], cwd=ROOT, env=env, check=True, timeout=120)
    web = (
        "import django; django.setup()\n"
        "from prometheus_client import generate_latest\n"
        "from triage.monitoring import prometheus\n"
        "prometheus.DomainCollector.collect = lambda self: iter(())  # no database here\n"
        "print(generate_latest(prometheus.scrape_registry()).decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", web], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    figures = {
        s.name: s.value
        for family in text_string_to_metric_families(result.stdout)
        for s in family.samples
        if not s.labels or set(s.labels) == {"le"} and s.labels["le"] == "+Inf"
    }
    assert figures["triage_classify_seconds_count"] == 2
    assert figures["triage_classified_items_total"] == 20
