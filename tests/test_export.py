import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reviews.decisions import record_training_example
from reviews.trust.models import HeldLabel, Quarantine
from tests.factories import make_item, make_labelled_history, make_user
from tests.reviews.trust_helpers import confident_task, decide
from triage import training
from triage.models import Item
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db


def export(**options) -> str:
    out = io.StringIO()
    call_command("export", stdout=out, **options)
    return out.getvalue()


def test_items_export_as_csv_with_metadata_as_json(categories):
    make_item('a "quoted", multi\nline text', metadata={"channel": "sms", "n": 1})
    rows = list(csv.DictReader(io.StringIO(export(dataset="items", format="csv"))))
    assert len(rows) == 1
    assert rows[0]["text"] == 'a "quoted", multi\nline text'
    assert json.loads(rows[0]["metadata"]) == {"channel": "sms", "n": 1}
    assert rows[0]["status"] == "received" and rows[0]["final_category"] == ""


def test_reviews_export_as_json_lines(categories):
    reviewer = make_user("ann")
    decide(confident_task(categories["billing"], confidence=0.7), reviewer, "outage")
    lines = export(dataset="reviews", format="jsonl").splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 1
    assert record["reviewer"] == "ann" and record["category"] == "outage"
    assert record["agreed_with_model"] is False and record["bulk"] is False
    assert record["model_confidence"] == pytest.approx(0.7)


def test_the_training_export_leaves_out_held_and_superseded_labels(categories):
    kept = make_item("refund please", status=Item.Status.RESOLVED)
    record_training_example(item=kept, category=categories["billing"], source="import")
    relabelled = make_item("server down", status=Item.Status.RESOLVED)
    record_training_example(item=relabelled, category=categories["billing"], source="import")
    record_training_example(item=relabelled, category=categories["outage"], source="review")
    analyst = make_user()
    Quarantine.objects.create(analyst=analyst, rule=Quarantine.Rule.OVERTURNS)
    decide(confident_task(categories["billing"], text="held"), analyst, "other")
    rows = [json.loads(line) for line in export(dataset="training", format="jsonl").splitlines()]
    assert [(r["text"], r["category"]) for r in rows] == [
        ("refund please", "billing"),
        ("server down", "outage"),
    ]


def test_a_model_versions_exact_training_set_is_exported_from_its_snapshot(categories):
    make_labelled_history(categories, copies=8)
    version = training.retrain().version
    trained = set(TrainingExample.objects.active().values_list("pk", flat=True))
    assert version.training_snapshot["size"] == len(trained)
    # Later: a relabel supersedes one example, a new one arrives, a quarantine holds one.
    first = TrainingExample.objects.active().order_by("pk").first()
    record_training_example(item=first.item, category=categories["other"], source="review")
    record_training_example(
        item=make_item("new", status=Item.Status.RESOLVED),
        category=categories["billing"],
        source="review",
    )
    rows = list(
        csv.DictReader(
            io.StringIO(export(dataset="training", format="csv", model_version=version.pk))
        )
    )
    assert {int(r["example_id"]) for r in rows} == trained
    current = list(csv.DictReader(io.StringIO(export(dataset="training", format="csv"))))
    assert {int(r["example_id"]) for r in current} != trained


def test_a_snapshot_that_no_longer_matches_is_refused(categories):
    make_labelled_history(categories, copies=8)
    version = training.retrain().version
    TrainingExample.objects.order_by("pk").first().delete()
    with pytest.raises(CommandError, match="cannot be rebuilt exactly"):
        export(dataset="training", format="csv", model_version=version.pk)


def test_a_label_held_when_the_snapshot_was_taken_stays_out_of_its_export(categories):
    make_labelled_history(categories, copies=8)
    analyst = make_user()
    quarantine = Quarantine.objects.create(analyst=analyst, rule=Quarantine.Rule.OVERTURNS)
    decide(confident_task(categories["billing"], text="refund charge"), analyst, "billing")
    held = HeldLabel.objects.get()
    version = training.retrain().version
    # Released afterwards: in later snapshots, but this version never saw it.
    HeldLabel.objects.filter(pk=held.pk).update(state="released", resolved_at=timezone.now())
    ids = {
        json.loads(line)["example_id"]
        for line in export(
            dataset="training", format="jsonl", model_version=version.pk
        ).splitlines()
    }
    assert held.example_id not in ids
    assert len(ids) == version.training_snapshot["size"]
    assert quarantine.labels.count() == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dataset": "users", "format": "csv"}, "--dataset: unknown dataset 'users'"),
        ({"dataset": "items", "format": "xml"}, "--format: unknown format 'xml'"),
        ({"dataset": "items", "format": "csv", "model_version": 1}, "training dataset only"),
        ({"dataset": "training", "format": "csv", "model_version": 999}, "no model version 999"),
    ],
)
def test_bad_export_options_are_a_one_line_command_error(categories, options, message):
    with pytest.raises(CommandError, match=message):
        export(**options)


def test_export_to_a_file(categories, tmp_path):
    make_item("hello")
    target = tmp_path / "items.jsonl"
    call_command("export", dataset="items", format="jsonl", output=str(target))
    assert json.loads(target.read_text())["text"] == "hello"
    assert not (tmp_path / "items.jsonl.partial").exists()


def test_the_api_streams_an_export(client, categories, auth_headers):
    make_item("hello", metadata={"k": "v"})
    response = client.get("/api/export?dataset=items&format=jsonl", **auth_headers)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert 'filename="items.jsonl"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert json.loads(body)["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("query", "field"),
    [("dataset=secrets&format=csv", "dataset"), ("dataset=items&format=xlsx", "format")],
)
def test_the_api_refuses_an_unknown_dataset_or_format_with_a_400(
    client, categories, auth_headers, query, field
):
    response = client.get(f"/api/export?{query}", **auth_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == field and "unknown" in body["error"]


def test_the_api_export_needs_a_token(client, categories):
    assert client.get("/api/export?dataset=items&format=csv").status_code == 401
