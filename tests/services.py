"""The outside services some tests need: PostgreSQL (as the test database) and Redis.

Without them such a test skips, so a laptop on SQLite still runs the rest. With
TRIAGE_TEST_REQUIRE_SERVICES=1 (which `.ci/run` sets) it fails instead: a CI whose
PostgreSQL or Redis went missing must not go green having silently run less.

Tests say what they need with `@pytest.mark.needs_postgres("why")` or
`@pytest.mark.needs_redis` (tests/conftest.py checks them before any fixture), and
fixtures call `needs_postgres`, `needs_redis` or `needs_redis_server` directly.
"""

import os
import shutil

import pytest
import redis
from django.db import connection

REQUIRE_SERVICES = "TRIAGE_TEST_REQUIRE_SERVICES"
REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES, "") == "1"


def unavailable(message: str) -> None:
    """Skip, or fail when this run was told the services are there."""
    if services_required():
        pytest.fail(f"{message}, and {REQUIRE_SERVICES}=1 requires it", pytrace=False)
    pytest.skip(message)


def missing_postgres(why: str = "") -> str | None:
    if connection.vendor == "postgresql":
        return None
    because = f" ({why})" if why else ""
    return f"needs PostgreSQL as the test database{because}; DATABASE_URL gives {connection.vendor}"


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def missing_redis() -> str | None:
    if redis_up():
        return None
    return f"needs Redis, which is not reachable at {REDIS_URL} (TRIAGE_TEST_REDIS_URL)"


def needs_postgres(why: str = "") -> None:
    if message := missing_postgres(why):
        unavailable(message)


def needs_redis() -> None:
    if message := missing_redis():
        unavailable(message)


def needs_redis_server() -> None:
    """The fault tests start redis-servers of their own."""
    if shutil.which("redis-server") is None:
        unavailable("needs the redis-server program, which is not installed")
