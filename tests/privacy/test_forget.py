"""`manage.py forget`: no copy of the text or metadata left in any table, a tombstone kept."""

import io
import json

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection

from reviews.claims import ReviewError, claim_next_task
from reviews.decisions import submit_review
from reviews.handoffs import skip_task
from tests.factories import make_item, make_task, make_user
from triage.actions.models import Delivery, Endpoint, Event
from triage.classify import service
from triage.models import AuditLog, Embedding, Item, Prediction, ReviewTask
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db

TEXT = "Wilhelmina Quarrington-Okafor asks for a refund of the double charge on her card"
METADATA = {"customer": "zebra-quokka-7781", "channel": "sms"}
NEEDLES = ["Quarrington-Okafor", "zebra-quokka-7781"]


def tables_holding(needle: str) -> list[str]:
    """Every table.column of the database whose value, read as text, contains the needle."""
    quote = connection.ops.quote_name
    hits = []
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        models = {m._meta.db_table for m in apps.get_models(include_auto_created=True)}
        assert models <= set(tables), "every model's table is searched"
        for table in tables:
            for column in connection.introspection.get_table_description(cursor, table):
                cursor.execute(
                    f"SELECT COUNT(*) FROM {quote(table)} "  # noqa: S608 (names from introspection)
                    f"WHERE CAST({quote(column.name)} AS TEXT) LIKE %s",
                    [f"%{needle}%"],
                )
                if cursor.fetchone()[0]:
                    hits.append(f"{table}.{column.name}")
    return hits


def post_item(client, auth_headers):
    return client.post(
        "/api/items",
        json.dumps({"external_id": "ticket-4711", "text": TEXT, "metadata": METADATA}),
        content_type="application/json",
        **auth_headers,
    )


def test_forget_leaves_no_copy_of_the_text_or_metadata_in_any_table(
    client, auth_headers, analyst, categories
):
    Endpoint.objects.create(url="https://hooks.example.org/triage")
    assert post_item(client, auth_headers).status_code == 201
    item = Item.objects.get(external_id="ticket-4711")
    service.classify_items(item_ids=[item.pk])  # cold start: embedded, sent to review
    task = claim_next_task(user=analyst)
    assert task is not None and task.item_id == item.pk
    # Analysts quote the customer in free text: a skip's note, a decision's comment.
    skip_task(task_id=task.pk, user=analyst, note="Quarrington-Okafor again, someone else?")
    task = claim_next_task(user=make_user())
    assert task is not None and task.item_id == item.pk
    submit_review(
        task_id=task.pk,
        user=task.claimed_by,
        category_slug="billing",
        comment="Quarrington-Okafor was charged twice",
    )
    # A receiver that echoes the body back, into the delivery's answer excerpt.
    Delivery.objects.update(last_response=f"received: {TEXT}")

    before = tables_holding(NEEDLES[0])
    assert {
        "triage_item.text",
        "reviews_trainingexample.text",
        "actions_event.payload",
        "actions_delivery.last_response",
        "reviews_review.comment",
        "reviews_handoff.note",
    } <= set(before)
    assert {"triage_item.metadata", "actions_event.payload"} <= set(tables_holding(NEEDLES[1]))
    assert Embedding.objects.filter(item=item).exists()

    out = io.StringIO()
    call_command("forget", "ticket-4711", stdout=out)

    for needle in NEEDLES:
        assert tables_holding(needle) == []
    assert not Embedding.objects.filter(item=item).exists()
    assert not TrainingExample.objects.filter(item=item).exists()
    item.refresh_from_db()
    assert (item.text, item.metadata, item.status) == ("", {}, "resolved")
    assert item.forgotten_at is not None
    assert item.final_category is not None and item.final_category.slug == "billing"
    assert Prediction.objects.filter(item=item).exists()  # a label and a confidence, no text
    payload = Event.objects.get(item=item, type="item.reviewed").payload
    assert payload["data"]["item"] == {
        "external_id": "ticket-4711",
        "text": "",
        "metadata": {},
        "received_at": payload["data"]["item"]["received_at"],
        "text_removed": "forgotten",
    }
    entry = AuditLog.objects.get(action="forget")
    assert entry.actor.startswith("command")
    assert entry.detail["external_id"] == "ticket-4711"
    assert entry.detail["removed"]["training_examples"] == 1
    assert entry.detail["removed"]["analyst_notes"] == 2
    assert "forgot 'ticket-4711'" in out.getvalue()

    # Ingest stays idempotent: the id is known, nothing is stored again.
    response = post_item(client, auth_headers)
    assert response.status_code == 200, response.content
    assert Item.objects.count() == 1
    for needle in NEEDLES:
        assert tables_holding(needle) == []


def test_an_item_waiting_in_review_leaves_the_queue(analyst, categories):
    task = make_task(make_item(TEXT, external_id="waiting", status=Item.Status.IN_REVIEW))
    assert claim_next_task(user=analyst) == task
    call_command("forget", "waiting", stdout=io.StringIO())
    item = Item.objects.get(external_id="waiting")
    assert (item.status, item.decided_by, item.final_category) == ("resolved", "forgotten", None)
    assert not ReviewTask.objects.filter(item=item).exists()
    with pytest.raises(ReviewError, match="does not exist"):
        submit_review(task_id=task.pk, user=analyst, category_slug="billing")


def test_unknown_ids_are_an_error_and_nothing_is_forgotten(categories):
    make_item(TEXT, external_id="known", status=Item.Status.ROUTED)
    with pytest.raises(CommandError, match="unknown external id\\(s\\): 'nope'"):
        call_command("forget", "known", "nope")
    assert Item.objects.get(external_id="known").text == TEXT
    assert not AuditLog.objects.filter(action="forget").exists()


def test_an_item_still_being_classified_is_refused(categories):
    make_item(TEXT, external_id="fresh")  # received
    with pytest.raises(CommandError, match="still being classified: 'fresh'"):
        call_command("forget", "fresh")
    assert Item.objects.get(external_id="fresh").text == TEXT


def test_ids_are_matched_as_ingest_stores_them(categories):
    make_item(TEXT, external_id="café-1", status=Item.Status.ROUTED)
    # NFD and surrounding spaces, as someone may paste it.
    call_command("forget", " cafe\u0301-1 ", stdout=io.StringIO())
    assert Item.objects.get(external_id="café-1").forgotten_at is not None


def test_an_empty_id_is_an_error(categories):
    with pytest.raises(CommandError, match="non-empty external id"):
        call_command("forget", "  ")


@pytest.mark.parametrize(
    ("raw", "message"), [("a\x00b", "must not contain NUL"), ("a\udcffb", "lone surrogates")]
)
def test_an_id_no_database_can_hold_is_an_error(categories, raw, message):
    with pytest.raises(CommandError, match=message):
        call_command("forget", raw)
