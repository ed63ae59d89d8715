"""The API under hostile input: never a 5xx, and rows change only for accepted requests."""

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from triage.actions.models import Event
from triage.models import AuditLog, Item, Prediction, ReviewTask
from triage.training.models import TrainingExample

from ..factories import make_token
from .strategies import FUZZ, JSON, SCALARS, TEXT, encode, json_bytes

pytestmark = pytest.mark.django_db

TABLES = [Item, Prediction, ReviewTask, Event, TrainingExample, AuditLog]


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in TABLES}


# An item as a client might get it wrong: each field missing, of a wrong type or odd.
ITEM = st.fixed_dictionaries(
    {},
    optional={
        "external_id": st.one_of(TEXT, SCALARS, JSON),
        "text": st.one_of(TEXT, SCALARS, JSON),
        "metadata": st.one_of(JSON, st.dictionaries(TEXT, JSON, max_size=5)),
        "label": TEXT,
    },
)
# Mostly well-formed items (so some requests are accepted), sometimes anything at all.
PLAUSIBLE_ITEM = st.fixed_dictionaries(
    {"external_id": st.text(min_size=1, max_size=20), "text": st.text(min_size=1, max_size=50)},
    optional={"metadata": st.dictionaries(st.text(max_size=10), JSON, max_size=3)},
)
PAYLOAD = st.one_of(
    PLAUSIBLE_ITEM,
    st.lists(PLAUSIBLE_ITEM, min_size=1, max_size=3),
    ITEM,
    st.lists(st.one_of(PLAUSIBLE_ITEM, ITEM), max_size=5),
    JSON,
)
BODY = st.one_of(
    st.builds(json_bytes, PAYLOAD, ascii_only=st.booleans()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[1,", b'{"text": NaN}', b"[" * 5000, b"\xff\xfe{}"]),
)
CONTENT_TYPE = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=nope",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)
# Mostly a valid token and JSON, so most requests reach the parsing they are meant to test.
AUTHORIZATION = st.one_of(
    st.just("valid"),
    st.sampled_from(["", "Bearer", "Bearer ", "Basic abc", "bearer valid", "Bearer trg_x"]),
    st.builds(lambda t: f"Bearer {t}", TEXT),
)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(
        ["HTTP_X_REQUEST_ID", "HTTP_ACCEPT", "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR"]
    ),
    TEXT,
    max_size=3,
)


def headers_for(authorization: str, token: str, extra: dict[str, str]) -> dict[str, Any]:
    value = f"Bearer {token}" if authorization == "valid" else authorization
    if authorization == "bearer valid":
        value = f"bearer {token}"
    return {"HTTP_AUTHORIZATION": value, **extra}


@pytest.fixture
def api_token(categories, settings):
    settings.TRIAGE_API_RATE_LIMIT = None  # hundreds of requests from one token
    return make_token()


def post_items(client, body, content_type, headers):
    before = row_counts()
    response = client.generic("POST", "/api/items", data=body, content_type=content_type, **headers)
    after = row_counts()
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows the mix
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == 201:
        assert after["Item"] > before["Item"]
    else:
        # 200 (all items already stored) and every refusal leave the tables as they were.
        assert after == before, (response.status_code, response.content[:300])


@FUZZ
@given(body=BODY)
def test_ingest_of_any_body_is_never_a_5xx_and_writes_only_when_accepted(client, api_token, body):
    post_items(client, body, "application/json", headers_for("valid", api_token, {}))


@FUZZ
@given(
    body=st.builds(json_bytes, PLAUSIBLE_ITEM, ascii_only=st.just(True)),
    content_type=CONTENT_TYPE,
    authorization=AUTHORIZATION,
    extra=EXTRA_HEADERS,
)
def test_ingest_with_any_headers_is_never_a_5xx_and_writes_only_when_accepted(
    client, api_token, body, content_type, authorization, extra
):
    post_items(client, body, content_type, headers_for(authorization, api_token, extra))


PATH_PIECE = st.one_of(TEXT, st.sampled_from(["..", "%00", "%ff", "a/b", "%2F", "?x=1", "#"]))
QUERY = st.lists(
    st.tuples(st.sampled_from(["after", "limit", "type", "x", ""]), st.one_of(TEXT, SCALARS)),
    max_size=4,
)


def query_string(pairs: list[tuple[str, Any]]) -> str:
    return urlencode([(encode(k), encode(str(v))) for k, v in pairs])


@FUZZ
@given(piece=PATH_PIECE, query=QUERY, authorization=AUTHORIZATION)
def test_reading_items_and_events_never_fails_with_a_5xx_nor_writes(
    client, api_token, piece, query, authorization
):
    before = row_counts()
    headers = headers_for(authorization, api_token, {})
    item_path = "/api/items/" + encode(piece).decode("latin-1")
    for url in [item_path, f"/api/events?{query_string(query)}", "/api/metrics"]:
        response = client.get(url, **headers)
        assert response.status_code < 500, (url, response.content[:500])
    assert row_counts() == before
