"""Who may call the API: bearer tokens, their scopes, and a rate limit per token.

Each endpoint declares the scope it needs (`auth=scoped(ApiToken.Scope.INGEST)`); a
valid token without it gets a 403 naming the missing scope. An endpoint that declares
none refuses every token (the API's default), so a new endpoint is never open to all
tokens by accident.

The rate limit is keyed by the token's id, so every token has its own bucket whatever
its name or the address it calls from; failed authentications (no token, or a wrong
one) are limited per address (TRIAGE_API_AUTH_FAILURE_LIMIT, the address as the login
throttle reads it). The counts live in Django's cache: shared by all processes only when
the cache is (Redis, with TRIAGE_CACHE_URL); the default local-memory cache counts per
process.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from ninja.throttling import BaseThrottle

from triage.models import ApiToken


class TokenRejected(Exception):
    """No usable token: 401 with a WWW-Authenticate challenge."""

    def __init__(self, message: str, challenge: str) -> None:
        self.challenge = challenge
        super().__init__(message)


class ScopeMissing(Exception):
    """A valid token without the endpoint's scope: 403 naming the scope."""

    def __init__(self, scope: str | None, token: ApiToken) -> None:
        self.scope = scope
        self.token = token
        if scope is None:
            message = "this endpoint accepts no token scope"
        else:
            message = (
                f"this token lacks the {scope!r} scope (it has: "
                f"{', '.join(token.scopes) or 'none'}); an admin can add it in /admin/"
            )
        super().__init__(message)


def bearer_token(request: HttpRequest) -> ApiToken:
    """The active token of `Authorization: Bearer <token>`, or TokenRejected."""
    refuse_if_failing(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        count_failure(request)
        raise TokenRejected(
            "missing bearer token: send 'Authorization: Bearer <token>'", challenge="Bearer"
        )
    api_token = ApiToken.authenticate(token.strip())
    if api_token is None:
        count_failure(request)
        raise TokenRejected(
            "invalid or revoked API token", challenge='Bearer error="invalid_token"'
        )
    # At most once a minute: a write (and its commit) on every read request was a fifth of
    # an item lookup's time under load (benchmarks/scale.py).
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token


LAST_USED_RESOLUTION = timedelta(minutes=1)


def scoped(scope: str | None) -> Callable[[HttpRequest], ApiToken]:
    """Ninja auth for an endpoint that needs `scope` (None: no token may call it)."""
    scope = None if scope is None else str(scope)  # the plain value, also in messages

    def authenticate(request: HttpRequest) -> ApiToken:
        token = bearer_token(request)
        if scope is None or not token.has_scope(scope):
            raise ScopeMissing(scope, token)
        return token

    authenticate.__name__ = f"token_with_{scope or 'no'}_scope"
    return authenticate


def count_hit(key: str, *, window_seconds: int) -> int:
    """Add one to the count under `key` and return it; the count expires with its window.

    Atomic: Redis `SET NX EX` then `INCR` (Django's RedisCache add and incr); the
    local-memory cache does each under its lock, so within one process no two requests
    read the same count. A key that expires between the two steps starts afresh.
    """
    cache.add(key, 0, timeout=window_seconds)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired in between
        cache.add(key, 0, timeout=window_seconds)
        return int(cache.incr(key))


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60); '100/10s' -> (100, 10). The setting's parser has checked it."""
    count, period = rate.split("/")
    digits = "".join(c for c in period if c.isdigit())
    unit = period[len(digits) :]
    seconds = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}.get(unit, 86400)
    return int(count), (int(digits) if digits else 1) * seconds


@dataclass(frozen=True)
class Window:
    """A fixed window of `seconds` (aligned to the epoch) and how long until it ends."""

    index: int
    remaining: float

    @classmethod
    def now(cls, seconds: int) -> "Window":
        clock = time.time()
        index = int(clock // seconds)
        return cls(index, (index + 1) * seconds - clock)


class TokenRateThrottle(BaseThrottle):
    """TRIAGE_API_RATE_LIMIT requests per token, answered 429 with Retry-After beyond it.

    Ninja runs it after authentication, so `request.auth` is the ApiToken. A fixed window
    per token, counted with an atomic increment (count_hit): of any number of concurrent
    requests exactly the limit pass in a window. (Ninja's sliding log read the history and
    wrote it back, so concurrent requests passed on the same count: 700 of 700 at a limit
    of 600.) A burst straddling two windows may see up to twice the limit in one period.
    The rate is read from settings on every request; the wait is kept per thread, since
    ninja keeps one throttle object per API.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        rate = settings.TRIAGE_API_RATE_LIMIT
        token: Any = getattr(request, "auth", None)
        if not rate or token is None:
            return True  # no limit configured, or nothing to key on (auth refused first)
        limit, seconds = parse_rate(rate)
        window = Window.now(seconds)
        self._local.wait = window.remaining
        key = f"throttle:token:{token.pk}:{seconds}:{window.index}"
        return count_hit(key, window_seconds=seconds + 1) <= limit

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)


class TooManyFailures(Exception):
    """Too many failed authentications from one address: 429 with Retry-After."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(
            "too many requests with a missing or invalid token from this address "
            f"(limit {settings.TRIAGE_API_AUTH_FAILURE_LIMIT}); retry later"
        )


def _failure_key(request: HttpRequest) -> tuple[str, int, int, Window] | None:
    rate = settings.TRIAGE_API_AUTH_FAILURE_LIMIT
    if not rate:
        return None
    limit, seconds = parse_rate(rate)
    window = Window.now(seconds)
    address = get_client_ip_address(request) or "unknown"
    return f"throttle:authfail:{address}:{seconds}:{window.index}", limit, seconds, window


def refuse_if_failing(request: HttpRequest) -> None:
    """Before a token is looked at: an address over its failure limit is not answered
    whether its token is valid (guessing tokens would otherwise cost nothing)."""
    found = _failure_key(request)
    if found is None:
        return
    key, limit, _, window = found
    if int(cache.get(key, 0)) >= limit:
        raise TooManyFailures(window.remaining)


def count_failure(request: HttpRequest) -> None:
    found = _failure_key(request)
    if found is not None:
        key, _, seconds, _ = found
        count_hit(key, window_seconds=seconds + 1)
