"""A token's last use is recorded at most once a minute: no write on every read request."""

from datetime import timedelta

import pytest

from triage.models import ApiToken, hash_token

from .factories import make_item

pytestmark = pytest.mark.django_db


def test_last_use_is_written_once_a_minute(client, token, auth_headers):
    make_item("refund", external_id="a")
    stored = ApiToken.objects.filter(token_hash=hash_token(token))
    client.get("/api/items/a", **auth_headers)
    first = stored.get().last_used_at
    assert first is not None
    client.get("/api/items/a", **auth_headers)
    assert stored.get().last_used_at == first  # within the minute: not written again
    stored.update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/items/a", **auth_headers)
    assert stored.get().last_used_at > first
