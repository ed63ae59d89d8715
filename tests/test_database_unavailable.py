"""A database that goes away mid-request is a 503 with Retry-After, never a 500, and a
scoring step that loses the database is retried rather than blamed on the model."""

import importlib
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from triage.api import ingest as ingestion
from triage.classify import service
from triage.models import Item
from triage.monitoring.models import Alert

from .factories import make_item, make_user

# The module, not the view function of the same name that reviews.views exports.
review_views = importlib.import_module("reviews.views.queue")

pytestmark = pytest.mark.django_db


def test_the_api_answers_503_json_with_retry_after(categories, auth_headers):
    gone = OperationalError("terminating connection due to administrator command")
    with mock.patch.object(ingestion, "ingest_items", side_effect=gone):
        response = Client(raise_request_exception=False).post(
            "/api/items",
            {"external_id": "a", "text": "refund"},
            content_type="application/json",
            **auth_headers,
        )
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database is unavailable" in response.json()["error"]
    assert response.json()["retry_after_seconds"] == 5


def test_a_page_answers_503_with_retry_after(client):
    client.force_login(make_user())
    closed = InterfaceError("connection already closed")
    with mock.patch.object(review_views, "claim_next_task", side_effect=closed):
        response = client.post("/reviews/claim")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "retry in 5 seconds" in response.content.decode()


def test_a_middleware_that_loses_the_database_gives_503_too(client):
    client.force_login(make_user())
    gone = OperationalError("server closed the connection unexpectedly")
    client.raise_request_exception = False
    with mock.patch("django.contrib.sessions.backends.db.SessionStore.load", side_effect=gone):
        response = client.get("/reviews/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_other_errors_stay_500(client):
    client.force_login(make_user())
    client.raise_request_exception = False
    with mock.patch.object(review_views, "claim_next_task", side_effect=RuntimeError("bug")):
        assert client.post("/reviews/claim").status_code == 500


def test_a_database_error_while_scoring_is_raised_not_sent_to_review(categories, monkeypatch):
    def gone(items):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(service, "zero_shot_scores", gone)
    item = make_item("refund my card")
    with pytest.raises(OperationalError):
        service.classify_items(item_ids=[item.pk])
    # Still waiting: the task's retry (or the sweep) classifies it once the database is back.
    assert Item.objects.get(pk=item.pk).status == Item.Status.RECEIVED
    assert not Alert.objects.exists()
