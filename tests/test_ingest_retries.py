"""Concurrent batches, deadlocks and transient database errors: retried, nothing lost."""

import json
import threading
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test.client import Client

from triage.api import ingest
from triage.api.intake import ItemIn
from triage.classify import service, tasks
from triage.models import Item

pytestmark = pytest.mark.django_db


class FakePsycopgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def transient(sqlstate: str = "40P01") -> OperationalError:
    """An OperationalError as Django raises it: the driver's error is its __cause__."""
    error = OperationalError("deadlock detected")
    error.__cause__ = FakePsycopgError(sqlstate)
    return error


@pytest.mark.needs_postgres("row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_overlapping_new_ids_all_succeed(categories, token):
    # Two integrations send the same new ids in opposite orders at the same moment, several
    # times over. Inserting in arbitrary order made them deadlock (a 500 for one of them).
    rounds, size = 10, 300
    statuses: list[int] = []
    lock = threading.Lock()

    def send(batch: list[dict[str, str]], barrier: threading.Barrier) -> None:
        client = Client(raise_request_exception=False)
        try:
            barrier.wait()
            response = client.post(
                "/api/items",
                data=json.dumps(batch),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    queued: list[int] = []

    def hand_off(item_ids: list[int]) -> None:
        with lock:
            queued.extend(item_ids)

    with mock.patch.object(tasks.classify_items, "delay", side_effect=hand_off):
        for r in range(rounds):
            batch = [{"external_id": f"r{r}-{i:03d}", "text": f"refund {i}"} for i in range(size)]
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=send, args=(b, barrier)) for b in [batch, batch[::-1]]
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    assert len(statuses) == 2 * rounds and set(statuses) <= {200, 201}, statuses
    # Every item stored once and handed to classification once: nothing lost, nothing twice.
    assert Item.objects.count() == rounds * size
    assert sorted(queued) == sorted(Item.objects.values_list("pk", flat=True))


def test_a_deadlocked_ingest_is_retried_and_stores_everything_once(categories):
    real_bulk_create = Item.objects.bulk_create
    calls = []

    def flaky(objs, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            list(objs)
            raise transient("40P01")
        return real_bulk_create(objs, *args, **kwargs)

    items = [ItemIn(external_id=f"d-{i}", text="refund") for i in range(3)]
    with mock.patch.object(Item.objects, "bulk_create", side_effect=flaky):
        result = ingest.ingest_items(items=items)
    assert len(calls) == 2
    assert [i.external_id for i in result.created] == ["d-0", "d-1", "d-2"]
    assert Item.objects.count() == 3


def test_a_serialization_failure_is_retried_too(categories):
    assert ingest.is_transient(transient("40001"))


def test_other_operational_errors_are_not_retried(categories):
    error = OperationalError("connection refused")
    with (
        mock.patch.object(Item.objects, "bulk_create", side_effect=error) as bulk_create,
        pytest.raises(OperationalError),
    ):
        ingest.ingest_items(items=[ItemIn(external_id="x", text="refund")])
    assert bulk_create.call_count == 1


def test_a_deadlock_on_every_attempt_gives_up_after_the_last(categories):
    with (
        mock.patch.object(Item.objects, "bulk_create", side_effect=transient()) as bulk_create,
        pytest.raises(OperationalError),
    ):
        ingest.ingest_items(items=[ItemIn(external_id="x", text="refund")])
    assert bulk_create.call_count == ingest.INGEST_ATTEMPTS
    assert not Item.objects.exists()


def test_classify_task_retries_a_transient_database_error():
    ids = [Item.objects.create(external_id=f"r-{i}", text="refund").pk for i in range(3)]
    with mock.patch.object(
        service, "classify_items", side_effect=[OperationalError("server closed"), 3]
    ) as classify:
        # throw=False: an eager run then retries in place, as a worker would (countdown aside).
        result = tasks.classify_items.apply(args=[ids], throw=False)
    assert result.get() == 3
    # The same batch, together: an exception is not a dead worker (triage.classify.redelivery).
    assert [c.kwargs["item_ids"] for c in classify.call_args_list] == [ids, ids]


def test_classify_task_has_a_bounded_backoff():
    task = tasks.classify_items
    assert task.autoretry_for == (OperationalError,)
    assert task.retry_backoff and task.retry_backoff_max == 60 and task.max_retries == 6
