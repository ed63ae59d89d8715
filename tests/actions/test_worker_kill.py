"""A real Celery worker on Redis is SIGKILLed in the middle of a batch of deliveries and
restarted: every event still arrives, with the same id."""

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
def test_a_worker_killed_mid_batch_loses_nothing(broker, webhook_settings, receiver):
    endpoint = Endpoint.objects.create(url=receiver.url)
    receiver.secret = endpoint.secret
    receiver.script = ["hang"]  # the first request hangs: the worker is killed inside it
    receiver.hang_seconds = 15
    workers = [start_worker(broker)]
    try:
        with transaction.atomic():
            events = [
                emit("item.routed", item=make_item(f"server down {i}"), data={"n": i})
                for i in range(5)
            ]
        receiver.wait_for(1, timeout=60)
        deliveries = Delivery.objects.filter(endpoint=endpoint)
        # The whole batch was leased before the first request went out.
        assert {(d.state, d.attempts) for d in deliveries} == {(Delivery.State.PENDING, 1)}

        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        # Nothing is acknowledged, nothing recorded: the rows still hold their lease.
        assert {(d.state, d.attempts) for d in deliveries} == {(Delivery.State.PENDING, 1)}
        assert all(d.leased_until > timezone.now() for d in deliveries)
        assert delivery_service.due_endpoint_ids() == []

        workers.append(start_worker(broker))
        # Time passes: the lease and the sweep's grace run out (moved back, not waited).
        past = timezone.now() - timedelta(
            seconds=webhook_settings.TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS + 1
        )
        deliveries.update(next_attempt_at=past, leased_until=past)
        assert delivery_service.due_endpoint_ids() == [endpoint.pk]
        delivery_service.queue_endpoints(delivery_service.due_endpoint_ids())
        wait_until(
            lambda: not deliveries.exclude(state=Delivery.State.SUCCEEDED).exists(),
            timeout=60,
            what="the redelivery",
        )
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
    ids = [e.event_id for e in events]
    # The one in flight when the worker died arrives twice, the others once, all signed.
    assert receiver.event_ids() == [ids[0], *ids]
    assert all(r.verified for r in receiver.received)
    assert {(d.attempts, d.last_status_code) for d in deliveries} == {(2, 200)}
