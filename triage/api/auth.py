"""Who may call the API: bearer tokens, their scopes, and a rate limit per token.

Each endpoint declares the scope it needs (`auth=scoped(ApiToken.Scope.INGEST)`); a
valid token without it gets a 403 naming the missing scope. An endpoint that declares
none refuses every token (the API's default), so a new endpoint is never open to all
tokens by accident.

The rate limit is django-ninja's own throttling, keyed by the token's id, so every
token has its own bucket whatever its name or the address it calls from. The bucket
lives in Django's cache: shared by all processes only when the cache is (Redis, with
TRIAGE_CACHE_URL); the default local-memory cache counts per process.
"""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.throttling import SimpleRateThrottle

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
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected(
            "missing bearer token: send 'Authorization: Bearer <token>'", challenge="Bearer"
        )
    api_token = ApiToken.authenticate(token.strip())
    if api_token is None:
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


class TokenRateThrottle(SimpleRateThrottle):
    """TRIAGE_API_RATE_LIMIT requests per token, answered 429 with Retry-After beyond it.

    Ninja runs it after authentication, so `request.auth` is the ApiToken. The rate is
    read from settings on every request (an operator's change applies on restart, a
    test's override at once). Ninja keeps one throttle object per API and the base
    class keeps the request's key and history on it between allow_request() and
    wait(); they are kept per thread here, so a threaded server never mixes two
    tokens' buckets.

    Counting is approximate under concurrency: the history is read and written back
    (ninja's sliding log), so simultaneous requests of one token can each pass on the
    same count and a burst may exceed the limit by a few requests.
    """

    scope = "token"

    def __init__(self) -> None:
        # Not super().__init__(): it parses a fixed rate once; ours comes from settings.
        self._local = threading.local()
        self.rate = None
        self.num_requests, self.duration = None, None

    # The base class's per-request state, kept per thread.
    key = property(
        lambda self: getattr(self._local, "key", None),
        lambda self, value: setattr(self._local, "key", value),
    )
    history = property(
        lambda self: getattr(self._local, "history", []),
        lambda self, value: setattr(self._local, "history", value),
    )
    now = property(
        lambda self: getattr(self._local, "now", 0.0),
        lambda self, value: setattr(self._local, "now", value),
    )

    def allow_request(self, request: HttpRequest) -> bool:
        self.rate = settings.TRIAGE_API_RATE_LIMIT or None
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return bool(super().allow_request(request))

    def get_cache_key(self, request: HttpRequest) -> str | None:
        token: Any = getattr(request, "auth", None)
        if self.rate is None or token is None:
            return None  # no limit configured, or nothing to key on (auth refused first)
        return self.cache_format % {"scope": self.scope, "ident": token.pk}
