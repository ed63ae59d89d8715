"""The whole loop on real parts: API ingest, a real Celery worker on Redis,
routing, a review through the view, retrain, and a new champion that routes
differently. Only the encoder is the small fake."""

import time
import uuid

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from django.test import override_settings

from triage.celery import app as celery_app
from triage.models import Item, ModelVersion, Prediction, ReviewTask, RoutingPolicy
from triage.training.models import TrainingExample

from .factories import KEYWORD_TEXTS
from .services import REDIS_URL, needs_redis


def drop_broker_connections() -> None:
    """Forget pooled connections, so a changed broker_url takes effect.

    An eager task that failed earlier in the run may have opened the pool on the
    default broker; without this, our tasks would be published there.
    """
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    # A fresh AMQP helper: the old one cached its producer pool and, worse, the default
    # queue and routes of the first worker test, so a later test's tasks would go there.
    celery_app.__dict__.pop("amqp", None)
    # kombu also keeps connection and producer pools per broker URL, process-wide: a
    # second worker test on the same URL would otherwise get the closed ones back.
    kombu.pools.reset()


@pytest.fixture
def celery_worker():
    needs_redis()
    saved = {
        k: celery_app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")
    }
    # A queue of our own, so another test run on the same Redis cannot take our tasks.
    queue = f"triage-test-{uuid.uuid4().hex[:12]}"
    celery_app.conf.update(broker_url=REDIS_URL, task_always_eager=False, task_default_queue=queue)
    drop_broker_connections()
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        celery_app.conf.update(saved)
        drop_broker_connections()


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the worker")


def post_items(client, headers, items):
    response = client.post("/api/items", items, content_type="application/json", **headers)
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db(transaction=True)
@override_settings(TRIAGE_MIN_EXAMPLES_PER_CATEGORY=2)
def test_the_whole_loop(client, categories, analyst, auth_headers, celery_worker):
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.5, "audit_rate": 0}
    )

    # 1-3. Ingest; a real worker classifies; with no model yet everything goes to review.
    labelled = [
        (f"e2e-{slug}-{i}", text, slug)
        for slug, texts in KEYWORD_TEXTS.items()
        for i, text in enumerate(texts)
    ]
    post_items(client, auth_headers, [{"external_id": e, "text": t} for e, t, _ in labelled])
    wait_for(lambda: not Item.objects.filter(status=Item.Status.RECEIVED).exists())
    assert set(Item.objects.values_list("status", flat=True)) == {"in_review"}
    assert set(Prediction.objects.values_list("reason", flat=True)) == {"cold_start"}

    # 4. An analyst works the queue through the view.
    client.force_login(analyst)
    truth = {e: slug for e, _, slug in labelled}
    for _ in labelled:
        page = client.post("/reviews/claim", HTTP_HX_REQUEST="true")
        task = page.context["task"]
        response = client.post(
            f"/reviews/tasks/{task.pk}/decide",
            {"category": truth[task.item.external_id]},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
    assert not ReviewTask.objects.open().exists()

    # 5. Every decision became a training example, in a fixed split.
    examples = TrainingExample.objects.active()
    assert examples.count() == len(labelled)
    assert {e.split for e in examples} == {"train", "holdout"}

    # 6. Retrain promotes the first model.
    call_command("retrain")
    champion = ModelVersion.objects.champion()
    assert champion is not None

    # 7. The new champion routes a fresh item automatically instead of to review.
    body = post_items(
        client, auth_headers, {"external_id": "new-1", "text": "refund the charge on my invoice"}
    )
    assert body["external_id"] == "new-1"
    wait_for(lambda: Item.objects.get(external_id="new-1").status != Item.Status.RECEIVED)
    detail = client.get("/api/items/new-1", **auth_headers).json()
    assert detail["status"] == "routed"
    assert detail["decision"]["route"] == "auto"
    assert detail["prediction"]["model_version"] == champion.pk
    assert detail["final_category"] == "billing"
