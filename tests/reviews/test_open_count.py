"""The queue page counts open tasks up to a cap, so a huge backlog costs nothing per card."""

import pytest

from reviews import views
from tests.factories import make_task, make_user

pytestmark = pytest.mark.django_db


def test_the_open_count_is_exact_below_the_cap(client):
    for _ in range(3):
        make_task()
    client.force_login(make_user())
    assert "3 open tasks" in client.get("/reviews/").content.decode()


def test_past_the_cap_the_count_says_more(client, monkeypatch):
    monkeypatch.setattr(views, "OPEN_COUNT_CAP", 2)
    for _ in range(4):
        make_task()
    client.force_login(make_user())
    assert "2+ open tasks" in client.get("/reviews/").content.decode()
