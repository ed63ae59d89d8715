"""Input the database cannot store, ids that look alike, text that shows nothing, big metadata."""

import json
import unicodedata

import pytest
from django.test import override_settings
from django.test.client import Client

from triage.access import ADMINS
from triage.models import Category, Item
from triage.models.text import is_blank, normalize_external_id

from .factories import make_task, make_user

pytestmark = pytest.mark.django_db


def post_items(client, payload, headers):
    return client.post(
        "/api/items", data=json.dumps(payload), content_type="application/json", **headers
    )


# --- NUL anywhere in a request is a 400 ---------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", group=ADMINS))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/triage/item/?status=%00",  # an admin list filter
        "/admin/triage/item/?final_category__id__exact=1%00",
        "/admin/triage/item/?q=refund%00",  # the admin search
        "/admin/triage/item/?%00=1",  # a NUL in the parameter's name
        "/admin/triage/item/12%00/change/",  # the path
        "/admin/auth/user/?username=%00",
        "/reviews/%00",
    ],
)
def test_a_nul_in_a_url_is_a_400_naming_where_it_was(admin_client, categories, url):
    response = admin_client.get(url)
    assert response.status_code == 400
    body = response.content.decode()
    assert "must not contain NUL characters" in body
    assert ("query parameter" in body) or ("URL path" in body)


def test_a_nul_in_an_api_url_is_a_json_400(client, auth_headers, categories):
    response = client.get("/api/items/ticket%00-1", **auth_headers)
    assert response.status_code == 400
    assert response.json()["error"] == "bad request: the URL path must not contain NUL characters"
    response = client.post("/api/items?x=%00", data="{}", content_type="application/json")
    assert response.status_code == 400
    assert "query parameter 'x'" in response.json()["error"]


def test_a_nul_in_the_login_form_is_a_400(client, analyst):
    response = client.post("/accounts/login/", {"username": "alice\x00", "password": "pw"})
    assert response.status_code == 400
    assert "form field 'username' must not contain NUL" in response.content.decode()


def test_a_nul_in_an_admin_form_is_a_400_and_nothing_is_stored(admin_client, categories):
    response = admin_client.post(
        "/admin/triage/category/add/",
        {"slug": "spam", "name": "Spam\x00", "description": "", "is_active": "on"},
    )
    assert response.status_code == 400
    assert "form field 'name'" in response.content.decode()
    assert not Category.objects.filter(slug="spam").exists()


def test_a_nul_in_a_review_decision_is_a_400(client, analyst, categories):
    task = make_task()
    client.force_login(analyst)
    response = client.post(f"/reviews/tasks/{task.pk}/decide", {"category": "billing\x00"})
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_nul_in_a_multipart_form_is_a_400(admin_client):
    response = admin_client.post(
        "/admin/triage/category/add/", {"slug": "x", "name": "a\x00b"}, format="multipart"
    )
    assert response.status_code == 400


def test_a_nul_in_a_cookie_is_a_400():
    client = Client()
    client.cookies["sessionid"] = "abc\x00def"
    response = client.get("/reviews/")
    assert response.status_code == 400
    assert "cookie 'sessionid'" in response.content.decode()


def test_a_nul_in_a_header_is_a_400(analyst):
    # django-axes stores the User-Agent of a failed login: on PostgreSQL this was a 500.
    response = Client().post(
        "/accounts/login/", {"username": "alice", "password": "wrong"}, HTTP_USER_AGENT="ua\x00"
    )
    assert response.status_code == 400
    assert "header 'User-Agent' must not contain NUL" in response.content.decode()


@pytest.mark.needs_postgres("SQLite stores NUL")
def test_without_the_middleware_an_admin_filter_with_nul_is_a_server_error(settings, categories):
    # The failure the middleware exists for, so this file's 400s cannot pass by accident.
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "triage.web.middleware.RejectUnstorableInput"
    ]
    client = Client(raise_request_exception=False)
    client.force_login(make_user("root", group=ADMINS))
    assert client.get("/admin/triage/item/?status=%00").status_code == 500


def test_ordinary_requests_pass_the_middleware(admin_client, categories):
    assert admin_client.get("/admin/triage/item/?q=refund&status=routed").status_code == 200


# --- external_id: NFC-normalised and stripped before its length is checked -------------


def test_nfc_and_nfd_forms_of_one_external_id_are_one_item(client, auth_headers, categories):
    nfc = unicodedata.normalize("NFC", "café-42")
    nfd = unicodedata.normalize("NFD", "café-42")
    assert nfc != nfd
    first = post_items(client, {"external_id": nfd, "text": "refund my card"}, auth_headers)
    second = post_items(client, {"external_id": nfc, "text": "refund my card"}, auth_headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert list(Item.objects.values_list("external_id", flat=True)) == [nfc]
    # Looked up in either form.
    from urllib.parse import quote

    response = client.get(f"/api/items/{quote(nfd)}", **auth_headers)
    assert response.status_code == 200 and response.json()["external_id"] == nfc


def test_external_id_is_stripped_before_its_length_is_checked(client, auth_headers, categories):
    padded = "  " + "x" * 255 + "  "
    response = post_items(client, {"external_id": padded, "text": "refund"}, auth_headers)
    assert response.status_code == 201, response.json()
    assert Item.objects.get().external_id == "x" * 255


def test_external_id_length_is_checked_after_nfc(client, auth_headers, categories):
    decomposed = unicodedata.normalize("NFD", "é" * 200)  # 400 code points, 200 once composed
    assert len(decomposed) == 400
    response = post_items(client, {"external_id": decomposed, "text": "refund"}, auth_headers)
    assert response.status_code == 201, response.json()
    too_long = post_items(client, {"external_id": "y" * 256, "text": "refund"}, auth_headers)
    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["field"] == "external_id"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [(" a ", "a"), ("e\u0301", "\u00e9"), ("\u212b", "\u00c5"), ("x\u200by", "x\u200by")],
)
def test_normalize_external_id(raw, stored):
    assert normalize_external_id(raw) == stored


# --- text made only of invisible characters is empty -----------------------------------


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        ("", True),
        (" \t\n", True),
        ("\u200b\u200b", True),  # zero-width spaces
        ("\u200c\u200d\u2060\ufeff", True),  # joiners, word joiner, BOM
        ("\u00ad", True),  # soft hyphen
        ("\u2800\u3164", True),  # blank Braille pattern, Hangul filler
        ("\u202e\u200e", True),  # bidi controls
        ("\ufe0f\u034f", True),  # a variation selector, combining grapheme joiner
        ("\u3000\u00a0", True),  # ideographic and no-break spaces
        ("a\u200b", False),
        (".", False),
        ("\u0301", False),  # a combining accent is drawn (on a dotted circle)
        ("😀", False),
        ("\u4e2d", False),
    ],
)
def test_is_blank(value, blank):
    assert is_blank(value) is blank


@pytest.mark.parametrize("text", ["\u200b", "\u200b \u200b\n", "\ufeff\u2060", "\u2800"])
def test_text_of_only_invisible_characters_is_rejected_as_empty(
    client, auth_headers, categories, text
):
    response = post_items(client, {"external_id": "a", "text": text}, auth_headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "text" and error["message"].startswith("must not be empty")
    assert not Item.objects.exists()


def test_an_external_id_of_only_invisible_characters_is_missing(client, auth_headers):
    response = post_items(client, {"external_id": "\u200b", "text": "hi"}, auth_headers)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 0, "field": "external_id", "message": "is required"}
    ]


# --- metadata size limit -----------------------------------------------------------------


@override_settings(TRIAGE_MAX_METADATA_BYTES=100)
def test_metadata_over_the_limit_is_rejected_naming_field_and_limit(client, auth_headers):
    metadata = {"note": "x" * 100}
    response = post_items(
        client, {"external_id": "a", "text": "hi", "metadata": metadata}, auth_headers
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "metadata"
    assert error["message"] == (
        "is 111 bytes as JSON; the limit is 100 (TRIAGE_MAX_METADATA_BYTES)"
    )
    assert not Item.objects.exists()


@override_settings(TRIAGE_MAX_METADATA_BYTES=100)
def test_metadata_at_the_limit_is_accepted(client, auth_headers, categories):
    # Compact UTF-8 JSON: {"note":"…"} is 11 bytes plus the value; "é" is two bytes.
    metadata = {"note": "x" * 87 + "é"}
    assert len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()) == 100
    response = post_items(
        client, {"external_id": "a", "text": "hi", "metadata": metadata}, auth_headers
    )
    assert response.status_code == 201, response.json()


def test_the_default_metadata_limit_is_16_kib(settings):
    assert settings.TRIAGE_MAX_METADATA_BYTES == 16_384


# --- bodies over the size limit ------------------------------------------------------------


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1_000)
def test_an_oversized_api_body_gets_a_json_413_naming_the_limit(client, auth_headers):
    batch = [{"external_id": f"big-{i}", "text": "x" * 100} for i in range(20)]
    response = post_items(client, batch, auth_headers)
    assert response.status_code == 413
    body = response.json()
    assert body["limit_bytes"] == 1_000
    assert "over the limit of 1,000 bytes" in body["error"]
    assert not Item.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1_000)
def test_a_body_under_the_limit_is_not_affected(client, auth_headers, categories):
    response = post_items(client, {"external_id": "small", "text": "refund"}, auth_headers)
    assert response.status_code == 201


def test_the_default_body_limit_is_djangos_2_5_mb(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440
