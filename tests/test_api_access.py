"""Token scopes and the per-token rate limit of the HTTP API."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from tests.factories import make_token, make_user
from tests.services import REDIS_URL
from triage.access import ADMINS
from triage.models import ApiToken, AuditLog, Item

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
ITEM = {"external_id": "scope-1", "text": "the server is down"}


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post_item(client, token, item=ITEM, **extra):
    return client.post(
        "/api/items",
        data=json.dumps(item),
        content_type="application/json",
        **bearer(token),
        **extra,
    )


# --- Scopes ------------------------------------------------------------------


def test_a_token_without_the_ingest_scope_gets_403_naming_it_and_nothing_is_stored(
    client, categories
):
    token = make_token(scopes=["read", "events"])
    response = post_item(client, token)
    assert response.status_code == 403
    assert response.json()["missing_scope"] == "ingest"
    assert "lacks the 'ingest' scope" in response.json()["error"]
    assert not Item.objects.exists()


def test_a_token_with_the_ingest_scope_stores_items(client, categories):
    response = post_item(client, make_token(scopes=["ingest"]))
    assert response.status_code == 201
    assert Item.objects.filter(external_id="scope-1").exists()


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("/api/items/anything", "read"),
        ("/api/events", "events"),
        ("/api/metrics", "metrics"),
    ],
)
def test_each_read_endpoint_needs_its_own_scope(client, categories, url, scope):
    others = [s for s in ApiToken.Scope.values if s != scope]
    refused = client.get(url, **bearer(make_token(scopes=others)))
    assert refused.status_code == 403
    assert refused.json()["missing_scope"] == scope
    allowed = client.get(url, **bearer(make_token(scopes=[scope])))
    assert allowed.status_code in {200, 404}  # 404: the item does not exist; not refused


def test_an_endpoint_that_declares_no_scope_refuses_every_token():
    from triage.api.auth import ScopeMissing, scoped

    token, plain = ApiToken.issue("all", scopes=ApiToken.Scope.values)

    class Request:
        headers = {"Authorization": f"Bearer {plain}"}
        META = {"REMOTE_ADDR": "127.0.0.1"}

    with pytest.raises(ScopeMissing, match="accepts no token scope"):
        scoped(None)(Request())  # type: ignore[arg-type]


def test_new_tokens_get_the_integration_scopes_by_default():
    token, _ = ApiToken.issue("bridge")
    assert token.scopes == ["ingest", "read", "events"]


def test_an_unknown_scope_is_refused_naming_it():
    with pytest.raises(Exception, match="'admin'"):
        ApiToken.issue("bridge", scopes=["ingest", "admin"])
    assert not ApiToken.objects.exists()


def test_create_api_token_takes_scopes_repeated_or_comma_separated(capsys):
    call_command("create_api_token", "scraper", "--scope", "metrics")
    call_command("create_api_token", "bridge", "--scope", "ingest,export", "--scope", "read")
    assert ApiToken.objects.get(name="scraper").scopes == ["metrics"]
    assert ApiToken.objects.get(name="bridge").scopes == ["ingest", "read", "export"]
    entry = AuditLog.objects.filter(action="token").latest("id")
    assert entry.detail["after"]["scopes"] == ["ingest", "read", "export"]
    assert "scopes ingest, read, export" in capsys.readouterr().err


@pytest.mark.parametrize("scope", ["admin", "", " , "])
def test_create_api_token_refuses_a_bad_scope_and_stores_nothing(scope):
    with pytest.raises(CommandError, match="--scope"):
        call_command("create_api_token", "bridge", "--scope", scope)
    assert not ApiToken.objects.exists()
    assert not AuditLog.objects.exists()


def test_changing_a_tokens_scopes_in_the_admin_is_logged_before_and_after(client):
    client.force_login(make_user("root", group=ADMINS))
    token, _ = ApiToken.issue("bridge", scopes=["ingest"])
    response = client.post(
        f"/admin/triage/apitoken/{token.pk}/change/",
        {"name": "bridge", "scopes": ["ingest", "export"], "revoked_at_0": "", "revoked_at_1": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    token.refresh_from_db()
    assert token.scopes == ["ingest", "export"]
    entry = AuditLog.objects.get(action="token")
    assert entry.detail["before"]["scopes"] == ["ingest"]
    assert entry.detail["after"]["scopes"] == ["ingest", "export"]
    assert entry.detail["changed"] == ["scopes"]


def test_a_token_needs_at_least_one_scope_in_the_admin(client):
    client.force_login(make_user("root", group=ADMINS))
    response = client.post("/admin/triage/apitoken/add/", {"name": "bridge"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiToken.objects.exists()


@pytest.mark.needs_postgres(
    "migrating back and forth inside the test's transaction needs transactional DDL"
)
def test_the_migration_gives_existing_tokens_what_they_could_do_before():
    executor = MigrationExecutor(connection)
    executor.migrate([("triage", "0010_privacy")])
    old_apps = executor.loader.project_state([("triage", "0010_privacy")]).apps
    old_apps.get_model("triage", "ApiToken").objects.create(
        name="old", token_hash="0" * 64, prefix="trg_old"
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    # Ingest, read items, the events feed and /api/metrics: all a token could call; no export.
    assert ApiToken.objects.get(name="old").scopes == ["ingest", "read", "events", "metrics"]


# --- Rate limit ----------------------------------------------------------------


@override_settings(TRIAGE_API_RATE_LIMIT="3/min")
def test_past_the_limit_a_token_gets_429_with_retry_after(client, categories):
    token = make_token()
    for _ in range(3):
        assert client.get("/api/items/nothing", **bearer(token)).status_code == 404
    response = client.get("/api/items/nothing", **bearer(token))
    assert response.status_code == 429
    assert "too many requests" in response.json()["error"]
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(TRIAGE_API_RATE_LIMIT="2/min")
def test_a_refused_request_stores_nothing(client, categories):
    token = make_token()
    for n in range(2):
        post_item(client, token, {"external_id": f"ok-{n}", "text": "server down"})
    response = post_item(client, token, {"external_id": "late", "text": "server down"})
    assert response.status_code == 429
    assert not Item.objects.filter(external_id="late").exists()


@override_settings(TRIAGE_API_RATE_LIMIT="2/min")
def test_each_token_has_its_own_bucket(client, categories):
    busy, quiet = make_token(), make_token()
    for _ in range(2):
        client.get("/api/items/nothing", **bearer(busy))
    assert client.get("/api/items/nothing", **bearer(busy)).status_code == 429
    assert client.get("/api/items/nothing", **bearer(quiet)).status_code == 404


@override_settings(TRIAGE_API_RATE_LIMIT="2/min")
def test_one_token_shares_its_bucket_across_addresses(client, categories):
    # Keyed by the token, not the caller's address: spreading calls over hosts does not help.
    token = make_token()
    client.get("/api/items/nothing", REMOTE_ADDR="10.0.0.1", **bearer(token))
    client.get("/api/items/nothing", REMOTE_ADDR="10.0.0.2", **bearer(token))
    response = client.get("/api/items/nothing", REMOTE_ADDR="10.0.0.3", **bearer(token))
    assert response.status_code == 429


@override_settings(TRIAGE_API_RATE_LIMIT=None)
def test_the_limit_can_be_turned_off(client, categories):
    token = make_token()
    assert all(
        client.get("/api/items/nothing", **bearer(token)).status_code == 404 for _ in range(30)
    )


def _settings_in_a_subprocess(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.needs_redis
def test_with_redis_another_process_sees_the_same_bucket(client, categories):
    """A second process (a fresh interpreter, as another gunicorn worker would be) must
    refuse the token that this one used up: counts shared, not per process. A day's window:
    the windows are fixed, and a minute's could end while the second process starts."""
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "triage",
        }
    }
    token = make_token()
    pk = ApiToken.objects.get(prefix=token[:8]).pk
    with override_settings(CACHES=redis_cache, TRIAGE_API_RATE_LIMIT="2/day"):
        from django.core.cache import cache

        cache.clear()
        try:
            for _ in range(2):
                assert client.get("/api/items/nothing", **bearer(token)).status_code == 404
            other_process = _settings_in_a_subprocess(
                "import django; django.setup()\n"
                "from types import SimpleNamespace\n"
                "from triage.api.auth import TokenRateThrottle\n"
                f"request = SimpleNamespace(auth=SimpleNamespace(pk={pk}), META={{}})\n"
                "print(TokenRateThrottle().allow_request(request))\n",
                TRIAGE_CACHE_URL=REDIS_URL,
                TRIAGE_API_RATE_LIMIT="2/day",
            )
        finally:
            cache.clear()
    assert other_process.returncode == 0, other_process.stderr
    assert other_process.stdout.strip() == "False"


def test_the_cache_is_redis_when_a_url_is_given_and_per_process_otherwise():
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "print(settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1])\n"
    )
    assert _settings_in_a_subprocess(code).stdout.strip() == "LocMemCache"
    with_url = _settings_in_a_subprocess(code, TRIAGE_CACHE_URL="redis://cache.internal:6379/1")
    assert with_url.stdout.strip() == "RedisCache"


@pytest.mark.parametrize("value", ["fast", "10", "10/fortnight", "0/min", "-1/s"])
def test_a_malformed_rate_limit_setting_is_a_clear_configuration_error(value):
    result = _settings_in_a_subprocess("import django; django.setup()", TRIAGE_API_RATE_LIMIT=value)
    assert result.returncode != 0
    assert f"TRIAGE_API_RATE_LIMIT={value!r}" in result.stderr


# --- Counted atomically; failed authentication limited by address -----------------


def _concurrent_allowed(requests: int, token_pk: int) -> int:
    """How many of `requests` simultaneous calls the throttle lets through."""
    from types import SimpleNamespace

    from triage.api.auth import TokenRateThrottle

    throttle = TokenRateThrottle()
    start = threading.Barrier(requests)
    allowed = []

    def call() -> None:
        start.wait()
        allowed.append(throttle.allow_request(SimpleNamespace(auth=SimpleNamespace(pk=token_pk))))

    threads = [threading.Thread(target=call) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(allowed)


@pytest.mark.parametrize("backend", ["locmem", "redis"])
def test_concurrent_requests_pass_exactly_the_limit(backend):
    """700 of 700 concurrent requests passed a limit of 600 when the count was read and
    written back; an atomic increment lets exactly the limit through."""
    caches = {
        "redis": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "triage-test-throttle",
        },
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    if backend == "redis":
        from tests.services import needs_redis

        needs_redis()
    with override_settings(CACHES={"default": caches[backend]}, TRIAGE_API_RATE_LIMIT="50/h"):
        from django.core.cache import cache

        cache.clear()
        try:
            assert _concurrent_allowed(120, token_pk=987654) == 50
        finally:
            cache.clear()


@override_settings(TRIAGE_API_AUTH_FAILURE_LIMIT="3/min")
def test_failed_authentication_is_limited_by_address(client, categories):
    good = make_token()
    for _ in range(2):
        assert (
            client.get("/api/items/x", REMOTE_ADDR="10.0.0.9", **bearer("trg_wrong")).status_code
            == 401
        )
    assert client.get("/api/items/x", REMOTE_ADDR="10.0.0.9").status_code == 401  # no token
    refused = client.get("/api/items/x", REMOTE_ADDR="10.0.0.9", **bearer("trg_wrong"))
    assert refused.status_code == 429
    assert "invalid token from this address" in refused.json()["error"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Not even a valid token is looked at from that address until the period ends...
    assert client.get("/api/items/x", REMOTE_ADDR="10.0.0.9", **bearer(good)).status_code == 429
    # ...while other addresses, and valid tokens elsewhere, are unaffected.
    assert client.get("/api/items/x", REMOTE_ADDR="10.0.0.10", **bearer(good)).status_code == 404
    assert (
        client.get("/api/items/x", REMOTE_ADDR="10.0.0.10", **bearer("trg_wrong")).status_code
        == 401
    )


@override_settings(TRIAGE_API_AUTH_FAILURE_LIMIT=None)
def test_the_failure_limit_can_be_turned_off(client, categories):
    assert all(
        client.get("/api/items/x", **bearer("trg_wrong")).status_code == 401 for _ in range(20)
    )
