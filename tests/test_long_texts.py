"""Long texts at ingest: 200,000 characters by default, and a batch answers per item."""

import json

import pytest
from django.test import override_settings

from reviews.views.card import COLLAPSE_AFTER_CHARS, text_segments
from triage.models import Item

URL = "/api/items"


def post(client, payload, auth_headers):
    return client.post(
        URL, data=json.dumps(payload), content_type="application/json", **auth_headers
    )


def test_the_default_limit_is_200000_characters(settings):
    assert settings.TRIAGE_MAX_TEXT_CHARS == 200_000


@pytest.mark.django_db
def test_a_text_of_200000_characters_is_stored_whole(client, auth_headers, categories):
    text = ("word " * 40_000).strip() + " end"
    text = text[-200_000:]
    response = post(client, {"external_id": "long", "text": text}, auth_headers)
    assert response.status_code == 201, response.content
    assert Item.objects.get(external_id="long").text == text


@pytest.mark.django_db
@override_settings(TRIAGE_MAX_TEXT_CHARS=10)
def test_an_oversized_item_is_refused_alone_and_the_rest_of_its_batch_is_stored(
    client, auth_headers, categories
):
    response = post(
        client,
        [
            {"external_id": "ok-1", "text": "refund"},
            {"external_id": "too-long", "text": "x" * 11},
            {"external_id": "ok-2", "text": "outage"},
        ],
        auth_headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 2, body
    assert [i["external_id"] for i in body["items"]] == ["ok-1", "ok-2"]
    assert body["refused"] == [
        {
            "index": 1,
            "external_id": "too-long",
            "field": "text",
            "message": "is 11 characters; the limit is 10 (TRIAGE_MAX_TEXT_CHARS)",
        }
    ]
    assert set(Item.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}


@pytest.mark.django_db
@override_settings(TRIAGE_MAX_TEXT_CHARS=10)
def test_a_malformed_item_still_rejects_the_whole_batch(client, auth_headers, categories):
    response = post(
        client,
        [
            {"external_id": "ok", "text": "refund"},
            {"external_id": "too-long", "text": "x" * 11},
            {"external_id": "no-text"},
        ],
        auth_headers,
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "text"), (2, "text")]
    assert not Item.objects.exists()


@pytest.mark.django_db
@override_settings(TRIAGE_MAX_TEXT_CHARS=10)
def test_a_batch_of_only_oversized_items_is_a_400(client, auth_headers, categories):
    response = post(client, [{"external_id": "a", "text": "x" * 11}], auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid item(s); nothing was stored")
    assert not Item.objects.exists()


def test_a_long_text_is_collapsed_with_the_model_mark_in_the_part_shown(settings):
    settings.TRIAGE_MAX_LENGTH = 64  # the model reads about (64 - 2) * 4 = 248 characters
    text = " ".join(f"w{i:04d}" for i in range(4000))  # 24,000 characters
    segments = text_segments(text)
    assert segments.collapsed and segments.mark_shown and not segments.mark_hidden
    shown = segments.shown_read + segments.shown_unread
    assert len(shown) <= COLLAPSE_AFTER_CHARS
    assert 200 <= len(segments.shown_read) <= 248
    # Nothing is lost or repeated, and no word is cut.
    assert shown + segments.hidden_read + segments.hidden_unread == text
    assert segments.shown_read.endswith(" ") and not segments.shown_unread.startswith(" ")


def test_a_mark_beyond_the_visible_part_is_drawn_once_expanded(settings):
    settings.TRIAGE_MAX_LENGTH = 1024  # about 4,088 characters read
    text = "x " * 6000
    segments = text_segments(text)
    assert segments.collapsed and segments.mark_hidden and not segments.mark_shown
    assert len(segments.shown_read) + len(segments.hidden_read) == segments.model_stops_at


def test_a_short_text_is_neither_collapsed_nor_marked(settings):
    segments = text_segments("please refund the double charge")
    assert not segments.collapsed and segments.model_stops_at is None
    assert segments.shown_read == "please refund the double charge"
