"""Decisions leave Triage through a real Celery worker on Redis: an item POSTed to the API
and an analyst's decision both reach a receiver, signed."""

import pytest

from tests.factories import make_user
from tests.test_end_to_end import celery_worker, post_items, wait_for  # noqa: F401 - fixture
from triage.actions.models import Delivery, Endpoint
from triage.routing.models import Rule


@pytest.mark.django_db(transaction=True)
def test_api_items_and_reviews_reach_the_receiver_through_a_worker(
    client,
    categories,
    auth_headers,
    webhook_settings,
    receiver,
    celery_worker,  # noqa: F811
):
    endpoint = Endpoint.objects.create(url=receiver.url)
    receiver.secret = endpoint.secret
    Rule.objects.create(
        name="refunds",
        condition=Rule.Condition.KEYWORDS,
        keywords=["refund"],
        action=Rule.Action.ROUTE,
        category=categories["billing"],
    )
    # No model yet: the rule routes the first item; the second waits for a person.
    post_items(
        client,
        auth_headers,
        [
            {"external_id": "e-1", "text": "please refund my card"},
            {"external_id": "e-2", "text": "the server is down"},
        ],
    )
    receiver.wait_for(1, timeout=30)
    routed = receiver.received[0]
    assert routed.verified
    assert routed.body["type"] == "item.routed"
    assert routed.body["data"]["item"]["external_id"] == "e-1"
    assert routed.body["data"]["decided_by"] == "rule:refunds"

    client.force_login(make_user("ann"))
    task = client.post("/reviews/claim", HTTP_HX_REQUEST="true").context["task"]
    assert task.item.external_id == "e-2"
    client.post(f"/reviews/tasks/{task.pk}/decide", {"category": "outage"}, HTTP_HX_REQUEST="true")
    receiver.wait_for(2, timeout=30)
    reviewed = receiver.received[1]
    assert reviewed.verified
    assert (reviewed.body["type"], reviewed.body["data"]["decided_by"]) == (
        "item.reviewed",
        "user:ann",
    )
    wait_for(lambda: not Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).exists())
