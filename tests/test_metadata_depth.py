"""Metadata nesting is limited: an item nested thousands of levels deep could not be stored
(an HTML 500) or, a little less deep, was stored and then could not be decided."""

import json

import pytest

from triage.models import Item

pytestmark = pytest.mark.django_db


def nested(depth: int) -> dict:
    """A metadata object `depth` levels deep (the object itself is level 1)."""
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def post(client, headers, metadata, external_id="deep"):
    body = json.dumps({"external_id": external_id, "text": "hi", "metadata": metadata})
    return client.post("/api/items", data=body, content_type="application/json", **headers)


def deep_body(depth: int, external_id: str = "deep") -> str:
    """The JSON text of an item whose metadata is `depth` levels deep (written out: the
    encoder itself gives up long before the deepest of these)."""
    metadata = '{"a":' * (depth - 1) + '{"leaf":"x\\"}"}' + "}" * (depth - 1)
    return f'{{"external_id":"{external_id}","text":"hi","metadata":{metadata}}}'


@pytest.mark.parametrize("depth", [33, 905, 950, 5000, 50_000])
def test_metadata_nested_too_deeply_is_a_400_naming_the_field(
    client, auth_headers, categories, depth
):
    body = deep_body(depth)
    assert json.loads(deep_body(3))["metadata"]["a"]["a"] == {"leaf": 'x"}'}
    response = client.post("/api/items", body, content_type="application/json", **auth_headers)
    assert response.status_code == 400, response.content[:200]
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (0, "metadata")
    assert error["message"] == "is nested more than 32 levels deep (TRIAGE_MAX_METADATA_DEPTH)"
    assert not Item.objects.exists()


def test_in_a_batch_the_error_names_the_item(client, auth_headers, categories):
    body = f"[{deep_body(2, 'fine')}, {deep_body(3, 'also-fine')}, {deep_body(5000)}]"
    response = client.post("/api/items", body, content_type="application/json", **auth_headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (2, "metadata")
    assert not Item.objects.exists()


def test_lists_count_as_levels_too(client, auth_headers, categories):
    value: object = [1]
    for _ in range(40):
        value = [value]
    assert post(client, auth_headers, {"list": value}).status_code == 400


def test_metadata_at_the_limit_is_stored_and_can_be_decided(
    client, auth_headers, categories, analyst
):
    response = post(client, auth_headers, nested(32))
    assert response.status_code == 201, response.json()
    assert Item.objects.filter(external_id="deep").exists()
    client.force_login(analyst)
    card = client.post("/reviews/claim", HTTP_HX_REQUEST="true")
    assert card.status_code == 200


def test_the_limit_is_a_setting(client, auth_headers, categories, settings):
    settings.TRIAGE_MAX_METADATA_DEPTH = 3
    assert post(client, auth_headers, nested(3), "three").status_code == 201
    assert post(client, auth_headers, nested(4), "four").status_code == 400
