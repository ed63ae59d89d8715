import json
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.factories import make_item, make_token
from triage.models import ApiToken, Item, ReviewTask, hash_token

pytestmark = pytest.mark.django_db

URL = "/api/items"


def post_json(client, payload, headers, *, content_type="application/json"):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(URL, data=body, content_type=content_type, **headers)


# --- Authentication ---------------------------------------------------------


def test_request_without_authorization_header_is_unauthorized(client):
    response = post_json(client, {"external_id": "a", "text": "hi"}, {})
    assert response.status_code == 401
    assert response.json()["error"].startswith("missing bearer token")
    assert response["WWW-Authenticate"] == "Bearer"
    assert not Item.objects.exists()


def test_request_with_a_non_bearer_scheme_is_unauthorized(client, token):
    headers = {"HTTP_AUTHORIZATION": f"Basic {token}"}
    response = post_json(client, {"external_id": "a", "text": "hi"}, headers)
    assert response.status_code == 401
    assert response.json()["error"].startswith("missing bearer token")


def test_bearer_scheme_without_a_token_is_unauthorized(client):
    response = post_json(
        client, {"external_id": "a", "text": "hi"}, {"HTTP_AUTHORIZATION": "Bearer "}
    )
    assert response.status_code == 401
    assert response.json()["error"].startswith("missing bearer token")


def test_unknown_token_is_unauthorized(client, token):
    headers = {"HTTP_AUTHORIZATION": "Bearer trg_not-a-real-token"}
    response = post_json(client, {"external_id": "a", "text": "hi"}, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid or revoked API token"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert not Item.objects.exists()


def test_revoked_token_is_unauthorized(client, token, auth_headers):
    ApiToken.objects.filter(token_hash=hash_token(token)).update(revoked_at=timezone.now())
    response = post_json(client, {"external_id": "a", "text": "hi"}, auth_headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid or revoked API token"
    assert not Item.objects.exists()


def test_get_requires_a_token_too(client, categories):
    make_item(external_id="secret")
    response = client.get(f"{URL}/secret")
    assert response.status_code == 401
    assert "external_id" not in response.json()


def test_bearer_scheme_is_case_insensitive(client, token, categories):
    response = client.get(f"{URL}/nothing", HTTP_AUTHORIZATION=f"bearer {token}")
    assert response.status_code == 404


def test_a_used_token_records_when_it_was_last_used(client, token, auth_headers, categories):
    client.get(f"{URL}/nothing", **auth_headers)
    assert ApiToken.objects.get(token_hash=hash_token(token)).last_used_at is not None


def test_only_the_sha256_of_a_token_is_stored(db):
    api_token, plain = ApiToken.issue("integration")
    api_token.refresh_from_db()
    assert api_token.token_hash != plain
    assert api_token.token_hash == hash_token(plain)
    assert len(api_token.token_hash) == 64
    stored = ApiToken.objects.values_list("name", "token_hash", "prefix").get()
    assert all(plain not in str(value) for value in stored)


# --- Validation ---------------------------------------------------------------


def test_non_json_content_type_is_unsupported(client, auth_headers):
    response = client.post(URL, data={"external_id": "a", "text": "hi"}, **auth_headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert not Item.objects.exists()


def test_json_content_type_with_a_charset_is_accepted(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            client,
            {"external_id": "a", "text": "hi"},
            auth_headers,
            content_type="application/json; charset=utf-8",
        )
    assert response.status_code == 201


def test_malformed_json_is_rejected(client, auth_headers):
    response = post_json(client, '{"external_id": "a", "text": ', auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    assert not Item.objects.exists()


def test_json_with_nan_is_rejected_as_malformed(client, auth_headers):
    body = '{"external_id": "a", "text": "hi", "metadata": {"score": NaN}}'
    response = post_json(client, body, auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    assert not Item.objects.exists()


def test_absurdly_nested_json_is_rejected_not_a_server_error(client, auth_headers):
    response = post_json(client, "[" * 100_000 + "]" * 100_000, auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")


def assert_single_field_error(response, field, message_part, index=0):
    assert response.status_code == 400
    body = response.json()
    assert body["error"].startswith("invalid item(s); nothing was stored")
    assert body["errors"] == [{"index": index, "field": field, "message": mock.ANY}]
    assert message_part in body["errors"][0]["message"]
    assert field in body["error"]
    assert not Item.objects.exists()


def test_missing_text_is_rejected(client, auth_headers):
    response = post_json(client, {"external_id": "a"}, auth_headers)
    assert_single_field_error(response, "text", "is required")


def test_missing_external_id_is_rejected(client, auth_headers):
    response = post_json(client, {"text": "hello"}, auth_headers)
    assert_single_field_error(response, "external_id", "is required")


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_or_whitespace_text_is_rejected(client, auth_headers, text):
    response = post_json(client, {"external_id": "a", "text": text}, auth_headers)
    assert_single_field_error(response, "text", "must not be empty")


@override_settings(TRIAGE_MAX_TEXT_CHARS=10)
def test_text_over_the_limit_is_rejected(client, auth_headers):
    response = post_json(client, {"external_id": "a", "text": "x" * 11}, auth_headers)
    assert_single_field_error(response, "text", "the limit is 10")


@override_settings(TRIAGE_MAX_TEXT_CHARS=10)
def test_text_exactly_at_the_limit_is_accepted(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, {"external_id": "a", "text": "x" * 10}, auth_headers)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"external_id": "a", "text": 42}, "text", "must be a string"),
        ({"external_id": "a", "text": ["hi"]}, "text", "must be a string"),
        ({"external_id": True, "text": "hi"}, "external_id", "must be a string"),
        ({"external_id": {"id": 1}, "text": "hi"}, "external_id", "must be a string"),
        ({"external_id": "a", "text": "hi", "metadata": ["x"]}, "metadata", "JSON object"),
        ({"external_id": "a", "text": "hi", "metadata": "x"}, "metadata", "JSON object"),
    ],
)
def test_wrong_types_are_rejected(client, auth_headers, item, field, message):
    response = post_json(client, item, auth_headers)
    assert_single_field_error(response, field, message)


def test_a_non_object_item_is_rejected(client, auth_headers):
    response = post_json(client, ["just a string"], auth_headers)
    assert_single_field_error(response, "(item)", "must be a JSON object")


def test_unknown_fields_are_rejected(client, auth_headers):
    response = post_json(client, {"external_id": "a", "text": "hi", "priority": 1}, auth_headers)
    assert_single_field_error(response, "priority", "unknown field")


def test_label_is_not_accepted_through_the_api(client, auth_headers):
    response = post_json(client, {"external_id": "a", "text": "hi", "label": "x"}, auth_headers)
    assert_single_field_error(response, "label", "unknown field")


def test_external_id_over_255_characters_is_rejected(client, auth_headers):
    response = post_json(client, {"external_id": "a" * 256, "text": "hi"}, auth_headers)
    assert_single_field_error(response, "external_id", "longer than 255")


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"external_id": "a", "text": "nul \x00 inside"}, "text"),
        ({"external_id": "a\x00b", "text": "hi"}, "external_id"),
        ({"external_id": "a", "text": "hi", "metadata": {"k": "v\x00"}}, "metadata"),
        ({"external_id": "a", "text": "hi", "metadata": {"k\x00": "v"}}, "metadata"),
    ],
)
def test_nul_characters_are_rejected_not_a_server_error(client, auth_headers, item, field):
    # PostgreSQL cannot store NUL in text or jsonb: it must be a 400, not a 500.
    response = post_json(client, item, auth_headers)
    assert_single_field_error(response, field, "NUL")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"external_id": "a", "text": "lone \\ud800 surrogate"}', "text"),
        ('{"external_id": "\\udfff", "text": "hi"}', "external_id"),
        ('{"external_id": "a", "text": "hi", "metadata": {"k": "\\ud800"}}', "metadata"),
    ],
)
def test_lone_surrogates_are_rejected_not_a_server_error(client, auth_headers, body, field):
    # Valid JSON, but not encodable as UTF-8, so no database can store it.
    response = post_json(client, body, auth_headers)
    assert_single_field_error(response, field, "surrogate")


def test_empty_list_is_rejected(client, auth_headers):
    response = post_json(client, [], auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("empty list")


def test_batch_over_the_limit_is_rejected(client, auth_headers):
    batch = [{"external_id": f"id-{n}", "text": "hi"} for n in range(1001)]
    response = post_json(client, batch, auth_headers)
    assert response.status_code == 400
    assert response.json()["error"] == "batch of 1,001 items; the limit is 1,000"
    assert not Item.objects.exists()


def test_batch_with_one_bad_item_is_rejected_whole(client, auth_headers, categories):
    batch = [
        {"external_id": "ok-1", "text": "fine"},
        {"external_id": "ok-2", "text": "fine too"},
        {"external_id": "bad", "text": "   "},
        {"external_id": "ok-3", "text": "also fine"},
    ]
    response = post_json(client, batch, auth_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [{"index": 2, "field": "text", "message": "must not be empty"}]
    assert "item 2: text: must not be empty" in body["error"]
    assert not Item.objects.exists()


def test_every_bad_field_in_a_batch_is_reported(client, auth_headers):
    batch = [{"text": "no id"}, {"external_id": "b", "text": "fine"}, {"external_id": "c"}]
    response = post_json(client, batch, auth_headers)
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (0, "external_id"),
        (2, "text"),
    ]


def test_get_is_not_allowed_on_the_collection(client, auth_headers):
    assert client.get(URL, **auth_headers).status_code == 405


# --- Ingest -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_single_item_is_created_and_classified(client, categories):
    # A real commit (no test transaction around the request), so the item is
    # classified before the view answers, as in production's in-process mode.
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_token()}"}
    payload = {
        "external_id": "t-1",
        "text": "please refund the double charge on my card",
        "metadata": {"customer": "acme"},
    }
    response = post_json(client, payload, headers)
    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "t-1"
    # No trained model yet: cold start sends everything to review.
    assert body["status"] == Item.Status.IN_REVIEW
    assert body["prediction"]["label"] in categories
    assert 0 <= body["prediction"]["confidence"] <= 1
    assert body["prediction"]["model_version"] is None
    assert body["decision"]["route"] == "review"
    assert body["decision"]["reason"] == "cold_start"
    assert body["final_category"] is None

    item = Item.objects.get()
    assert item.text == payload["text"]
    assert item.metadata == {"customer": "acme"}
    assert item.source == Item.Source.API
    assert item.status == Item.Status.IN_REVIEW
    assert ReviewTask.objects.filter(item=item, reason=ReviewTask.Reason.COLD_START).exists()

    # GET answers with the same fields.
    fetched = client.get(f"{URL}/t-1", **headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_get_shows_the_prediction_and_decision_once_classified(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post_json(client, {"external_id": "t-1", "text": "server down"}, auth_headers)
    assert created.status_code == 201
    # Inside the test's transaction the commit comes after the response.
    assert created.json()["status"] == Item.Status.RECEIVED
    assert created.json()["prediction"] is None

    response = client.get(f"{URL}/t-1", **auth_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] == "t-1"
    assert body["status"] == Item.Status.IN_REVIEW
    assert set(body["prediction"]) >= {"label", "confidence", "model_version"}
    assert (body["decision"]["route"], body["decision"]["reason"]) == ("review", "cold_start")
    assert body["final_category"] is None


def test_get_finds_an_external_id_containing_a_slash(client, auth_headers, categories):
    make_item(external_id="zendesk/123")
    response = client.get(f"{URL}/zendesk/123", **auth_headers)
    assert response.status_code == 200
    assert response.json()["external_id"] == "zendesk/123"
    assert response.json()["prediction"] is None
    assert response.json()["status"] == Item.Status.RECEIVED


def test_get_of_an_unknown_id_is_not_found(client, auth_headers):
    response = client.get(f"{URL}/nope", **auth_headers)
    assert response.status_code == 404
    assert "'nope'" in response.json()["error"]


def test_a_batch_of_three_is_created(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    batch = [{"external_id": f"b-{n}", "text": f"server down number {n}"} for n in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, batch, auth_headers)
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 3
    assert body["existing"] == 0
    assert [i["external_id"] for i in body["items"]] == ["b-0", "b-1", "b-2"]
    assert Item.objects.count() == 3
    assert set(Item.objects.values_list("status", flat=True)) == {Item.Status.IN_REVIEW}


def test_a_batch_of_one_is_answered_as_a_batch(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, [{"external_id": "b", "text": "hi"}], auth_headers)
    assert response.status_code == 201
    assert response.json()["created"] == 1
    assert len(response.json()["items"]) == 1


def test_an_integer_external_id_is_stored_as_a_string(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, {"external_id": 123, "text": "hi"}, auth_headers)
    assert response.status_code == 201
    assert response.json()["external_id"] == "123"
    assert Item.objects.get().external_id == "123"


# --- Idempotency ----------------------------------------------------------------


def test_resending_the_same_item_returns_the_existing_one(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    payload = {"external_id": "t-1", "text": "server down"}
    with django_capture_on_commit_callbacks(execute=True):
        first = post_json(client, payload, auth_headers)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = post_json(client, payload, auth_headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == client.get(f"{URL}/t-1", **auth_headers).json()
    assert again.json()["status"] == Item.Status.IN_REVIEW
    assert Item.objects.count() == 1
    # Nothing new to classify, so nothing is queued.
    assert callbacks == []


def test_same_id_with_different_text_is_a_conflict(client, auth_headers, categories):
    make_item(external_id="t-1", text="original text")
    response = post_json(client, {"external_id": "t-1", "text": "changed text"}, auth_headers)
    assert response.status_code == 409
    body = response.json()
    assert "'t-1'" in body["error"]
    assert "nothing was stored" in body["error"]
    assert body["conflicts"] == [{"index": 0, "external_id": "t-1"}]
    assert Item.objects.get().text == "original text"


def test_a_conflict_in_a_batch_stores_none_of_it(client, auth_headers, categories):
    make_item(external_id="t-1", text="original text")
    batch = [
        {"external_id": "new-1", "text": "fine"},
        {"external_id": "t-1", "text": "changed text"},
    ]
    response = post_json(client, batch, auth_headers)
    assert response.status_code == 409
    assert response.json()["conflicts"] == [{"index": 1, "external_id": "t-1"}]
    assert list(Item.objects.values_list("external_id", flat=True)) == ["t-1"]


def test_same_id_twice_in_one_batch_with_different_text_is_a_conflict(
    client, auth_headers, categories
):
    batch = [
        {"external_id": "dup", "text": "first"},
        {"external_id": "other", "text": "fine"},
        {"external_id": "dup", "text": "second"},
    ]
    response = post_json(client, batch, auth_headers)
    assert response.status_code == 409
    assert "'dup'" in response.json()["error"]
    assert response.json()["conflicts"] == [{"index": 2, "external_id": "dup"}]
    assert not Item.objects.exists()


def test_same_item_twice_in_one_batch_is_stored_once(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    batch = [{"external_id": "dup", "text": "same"}, {"external_id": "dup", "text": "same"}]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, batch, auth_headers)
    assert response.status_code == 201
    assert response.json()["created"] == 1
    assert [i["external_id"] for i in response.json()["items"]] == ["dup"]
    assert Item.objects.count() == 1


def test_a_batch_mixing_new_and_existing_items_reports_both(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    make_item(external_id="old", text="already here")
    batch = [{"external_id": "old", "text": "already here"}, {"external_id": "new", "text": "hi"}]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, batch, auth_headers)
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["existing"]) == (1, 1)
    assert [i["external_id"] for i in body["items"]] == ["old", "new"]
    assert Item.objects.count() == 2


# --- Store first, classify on commit -------------------------------------------


def test_classification_is_queued_only_after_the_items_are_committed(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    batch = [{"external_id": f"q-{n}", "text": "hi"} for n in range(3)]
    with mock.patch("triage.classify.tasks.classify_items.delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post_json(client, batch, auth_headers)
        # The rows are written, but the task waits for the commit.
        assert response.status_code == 201
        assert Item.objects.count() == 3
        delay.assert_not_called()
        assert len(callbacks) == 1
        callbacks[0]()  # what the commit does
    ids = sorted(Item.objects.values_list("pk", flat=True))
    delay.assert_called_once_with(ids)
    assert all(i["status"] == Item.Status.RECEIVED for i in response.json()["items"])


def test_a_rejected_batch_queues_nothing(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    make_item(external_id="t-1", text="original text")
    with (
        mock.patch("triage.classify.tasks.classify_items.delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        post_json(client, {"external_id": "t-1", "text": "changed"}, auth_headers)
    assert callbacks == []
    delay.assert_not_called()


@override_settings(TRIAGE_CLASSIFY_CHUNK=2)
def test_a_large_batch_is_queued_in_chunks(
    client, auth_headers, categories, django_capture_on_commit_callbacks
):
    batch = [{"external_id": f"q-{n}", "text": "hi"} for n in range(5)]
    with (
        mock.patch("triage.classify.tasks.classify_items.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        post_json(client, batch, auth_headers)
    ids = sorted(Item.objects.values_list("pk", flat=True))
    assert [c.args[0] for c in delay.call_args_list] == [ids[0:2], ids[2:4], ids[4:5]]
