"""A real Celery worker on Redis is SIGKILLed in the middle of a delivery and restarted:
the event still arrives, with the same id."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.factories import make_item
from tests.services import REDIS_URL, needs_postgres, needs_redis
from tests.test_end_to_end import drop_broker_connections
from triage.actions import delivery as delivery_service
from triage.actions.events import emit
from triage.actions.models import Delivery, Endpoint
from triage.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker(queue: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS_URL,
        "TRIAGE_WEBHOOK_ALLOW_PRIVATE": "1",
        "TRIAGE_WEBHOOK_TIMEOUT_SECONDS": "20",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "triage",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def broker():
    needs_postgres("a worker in another process shares the test database")
    needs_redis()
    queue = f"triage-kill-{uuid.uuid4().hex[:12]}"
    saved = {
        k: celery_app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")
    }
    celery_app.conf.update(broker_url=REDIS_URL, task_always_eager=False, task_default_queue=queue)
    drop_broker_connections()
    yield queue
    celery_app.conf.update(saved)
    drop_broker_connections()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing(broker, webhook_settings, receiver):
    endpoint = Endpoint.objects.create(url=receiver.url)
    receiver.secret = endpoint.secret
    receiver.script = ["hang"]  # the first request hangs: the worker is killed inside it
    receiver.hang_seconds = 15
    workers = [start_worker(broker)]
    try:
        with transaction.atomic():
            event = emit("item.routed", item=make_item("server down"), data={"n": 1})
        receiver.wait_for(1, timeout=60)
        delivery = Delivery.objects.get(event=event)
        assert (delivery.state, delivery.attempts) == (Delivery.State.PENDING, 1)

        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        # Nothing is acknowledged, nothing recorded: the row still holds its lease.
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts) == (Delivery.State.PENDING, 1)
        assert delivery.next_attempt_at > timezone.now()

        workers.append(start_worker(broker))
        # Time passes: the lease and the sweep's grace run out (moved back, not waited).
        Delivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now()
            - timedelta(seconds=webhook_settings.TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS + 1)
        )
        assert delivery_service.due_delivery_ids() == [delivery.pk]
        delivery_service.queue_deliveries(delivery_service.due_delivery_ids())
        wait_until(
            lambda: Delivery.objects.get(pk=delivery.pk).state == Delivery.State.SUCCEEDED,
            timeout=60,
            what="the redelivery",
        )
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
    assert receiver.event_ids() == [event.event_id, event.event_id]
    assert all(r.verified for r in receiver.received)
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)
