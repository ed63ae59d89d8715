"""The API on django-ninja: OpenAPI served, and a batch answered in a bounded number of queries."""

import pytest

from triage.classify import service
from triage.models import Item, Prediction

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_served_and_describes_the_api(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert set(paths) >= {"/api/items", "/api/items/{external_id}", "/api/events"}
    ingest = paths["/api/items"]["post"]
    body = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 1000
    assert set(body["oneOf"][0]["required"]) == {"external_id", "text"}
    assert {"200", "201", "400", "401"} <= set(ingest["responses"])
    events = paths["/api/events"]["get"]
    assert {p["name"] for p in events["parameters"]} == {"after", "limit", "type"}
    assert "EventsPage" in schema["components"]["schemas"]


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content


# SQLite caps a statement at 999 parameters, so its inserts and lookups come in chunks;
# the bound is measured on PostgreSQL, as production runs.
@pytest.mark.needs_postgres("the query bound is measured on PostgreSQL")
def test_a_1000_item_batch_is_answered_in_at_most_10_queries(
    client, auth_headers, categories, django_assert_max_num_queries
):
    items = [{"external_id": f"q-{i}", "text": f"refund number {i}"} for i in range(1000)]
    with django_assert_max_num_queries(10):
        response = client.post("/api/items", items, content_type="application/json", **auth_headers)
    assert response.status_code == 201
    assert response.json()["created"] == 1000
    # Classified (cold start: every item gets a prediction), then re-sent: still bounded.
    service.classify_items(item_ids=list(Item.objects.values_list("pk", flat=True)))
    assert Prediction.objects.count() == 1000
    with django_assert_max_num_queries(10):
        again = client.post("/api/items", items, content_type="application/json", **auth_headers)
    assert again.status_code == 200
    assert len(again.json()["items"]) == 1000
    assert all(i["prediction"] and i["decision"] for i in again.json()["items"])


def test_metrics_are_served_on_the_api_with_a_token(client, auth_headers, categories):
    assert client.get("/api/metrics").status_code == 401
    response = client.get("/api/metrics", **auth_headers)
    assert response.status_code == 200
    assert isinstance(response.json(), dict)
