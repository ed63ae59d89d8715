"""Ingest by COPY (triage.api.ingest_copy): big batches on PostgreSQL give the ORM path's
answers, store nothing from a refused batch, and queue each new item once."""

from unittest import mock

import pytest
from django.utils import timezone

from triage.api import ingest
from triage.classify import tasks
from triage.models import Item

pytestmark = [pytest.mark.needs_postgres("COPY is PostgreSQL's"), pytest.mark.django_db]

URL = "/api/items"


def post(client, body, headers):
    return client.post(URL, body, content_type="application/json", **headers)


@pytest.fixture(params=["orm", "copy"])
def path(request, settings):
    """Each scenario on both paths: the ORM's answers are the reference."""
    settings.TRIAGE_INGEST_COPY_MIN = 2 if request.param == "copy" else 0
    return request.param


def answer(response):
    """The body without the receipt time, which differs between runs."""
    body = response.json()
    for item in body.get("items", []):
        item.pop("received_at")
    return response.status_code, body


def test_a_big_batch_uses_copy_only_on_postgresql_above_the_threshold(db, settings):
    settings.TRIAGE_INGEST_COPY_MIN = 3
    assert not ingest.uses_copy(2)
    assert ingest.uses_copy(3)
    settings.TRIAGE_INGEST_COPY_MIN = 0
    assert not ingest.uses_copy(1000)


def test_new_existing_and_repeated_items_get_the_orm_answers(
    client, auth_headers, categories, path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        post(client, [{"external_id": "old-1", "text": "refund"}] * 2, auth_headers)
        forgotten = Item.objects.create(external_id="old-2", text="")
        Item.objects.filter(pk=forgotten.pk).update(forgotten_at=timezone.now())
        batch = [
            {"external_id": "new-2", "text": "server down", "metadata": {"ü": [1, {"a": None}]}},
            {"external_id": "old-1", "text": "refund"},
            {"external_id": "new-1", "text": "card declined"},
            {"external_id": "new-2", "text": "server down", "metadata": {"ü": [1, {"a": None}]}},
            {"external_id": "old-2", "text": "a forgotten item's id: its tombstone answers"},
        ]
        status, body = answer(post(client, batch, auth_headers))
    assert status == 201
    assert body["created"] == 2 and body["existing"] == 2
    assert [(i["external_id"], i["status"]) for i in body["items"]] == [
        ("new-2", "received"),
        ("old-1", "received"),
        ("new-1", "received"),
        ("old-2", "received"),
    ]
    stored = Item.objects.get(external_id="new-2")
    assert stored.metadata == {"ü": [1, {"a": None}]} and stored.source == "api"
    assert stored.status == Item.Status.RECEIVED and stored.classify_attempts == 0
    again_status, again = answer(post(client, batch, auth_headers))
    assert again_status == 200 and again["created"] == 0 and again["existing"] == 4


@pytest.mark.parametrize(
    "conflict",
    [
        [{"external_id": "old-1", "text": "other text"}],  # stored with other text
        [{"external_id": "dup", "text": "one"}, {"external_id": "dup", "text": "two"}],
    ],
    ids=["stored", "repeated"],
)
def test_a_conflict_refuses_the_whole_batch_and_stores_nothing(
    client, auth_headers, categories, path, conflict
):
    post(client, [{"external_id": "old-1", "text": "refund"}] * 2, auth_headers)
    batch = [{"external_id": f"fresh-{i}", "text": f"text {i}"} for i in range(5)] + conflict
    response = post(client, batch, auth_headers)
    assert response.status_code == 409
    body = response.json()
    assert body["conflicts"] == [
        {"index": len(batch) - 1, "external_id": conflict[-1]["external_id"]}
    ]
    assert "nothing was stored" in body["error"]
    assert not Item.objects.filter(external_id__startswith="fresh-").exists()
    assert not Item.objects.filter(external_id="dup").exists()


def test_one_invalid_row_gets_the_same_per_item_answer_and_stores_nothing(
    client, auth_headers, categories, path
):
    batch = [{"external_id": f"v-{i}", "text": f"text {i}"} for i in range(5)]
    batch[3]["text"] = 42
    response = post(client, batch, auth_headers)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 3, "field": "text", "message": "must be a string"}
    ]
    assert not Item.objects.exists()


def test_a_text_over_the_limit_is_refused_alone_and_the_rest_stored(
    client, auth_headers, categories, path, settings
):
    settings.TRIAGE_MAX_TEXT_CHARS = 10
    batch = [{"external_id": f"v-{i}", "text": f"text {i}"} for i in range(4)]
    batch[1]["text"] = "x" * 11
    status, body = answer(post(client, batch, auth_headers))
    assert status == 201 and body["created"] == 3
    assert [r["index"] for r in body["refused"]] == [1]
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["v-0", "v-2", "v-3"]


def test_every_new_item_is_queued_for_classification_once(
    client, auth_headers, categories, path, settings, django_capture_on_commit_callbacks
):
    settings.TRIAGE_CLASSIFY_CHUNK = 4
    post(client, [{"external_id": "old-1", "text": "refund"}] * 2, auth_headers)
    batch = [{"external_id": f"q-{i:02d}", "text": f"text {i}"} for i in range(10)]
    batch += [{"external_id": "old-1", "text": "refund"}, {"external_id": "q-03", "text": "text 3"}]
    with (
        mock.patch.object(tasks.classify_items, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert post(client, batch, auth_headers).status_code == 201
    queued = [pk for call in delay.call_args_list for pk in call.args[0]]
    new = Item.objects.filter(external_id__startswith="q-")
    assert sorted(queued) == sorted(new.values_list("pk", flat=True))
    assert [len(call.args[0]) for call in delay.call_args_list] == [4, 4, 2]


@pytest.mark.django_db(transaction=True)
def test_an_id_a_concurrent_batch_stores_meanwhile_is_answered_as_stored(categories, settings):
    """The other batch's row is committed while this one waits on it in ON CONFLICT: not
    inserted here, not in the statement's snapshot either; the retry reads it as stored."""
    import threading

    from django.db import connection, transaction

    from triage.api.intake import ItemIn

    settings.TRIAGE_INGEST_COPY_MIN = 1
    inserted, release = threading.Event(), threading.Event()

    def other_batch() -> None:
        try:
            with transaction.atomic():
                Item.objects.create(external_id="r-1", text="same")
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=other_batch)
    other.start()
    assert inserted.wait(10)
    threading.Timer(0.5, release.set).start()
    with mock.patch.object(tasks.classify_items, "delay"):
        result = ingest.ingest_items(
            items=[ItemIn(external_id="r-1", text="same"), ItemIn(external_id="r-2", text="b")]
        )
    other.join()
    assert [i.external_id for i in result.created] == ["r-2"]
    assert [i.external_id for i in result.existing] == ["r-1"]
    assert Item.objects.filter(external_id__in=["r-1", "r-2"]).count() == 2


def test_with_a_worker_the_new_items_are_answered_as_stored_without_reading_them_back(
    client, auth_headers, categories, settings, django_capture_on_commit_callbacks
):
    """The answer a re-read would give (nothing classified them yet), built from the rows
    this request wrote."""
    from triage.api.answers import items_json

    settings.TRIAGE_INGEST_COPY_MIN = 2
    settings.CELERY_TASK_ALWAYS_EAGER = False
    post(client, [{"external_id": "old-1", "text": "refund"}] * 2, auth_headers)
    batch = [{"external_id": f"w-{i}", "text": f"text {i}"} for i in range(3)]
    batch.append({"external_id": "old-1", "text": "refund"})
    with mock.patch.object(tasks.classify_items, "delay"):
        response = post(client, batch, auth_headers)
    assert response.status_code == 201
    stored = list(Item.objects.filter(external_id__in=[b["external_id"] for b in batch]))
    read_back = items_json([i.pk for i in stored])
    assert response.json()["items"] == [read_back[b["external_id"]] for b in batch]
