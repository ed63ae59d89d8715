"""API tokens: bearer tokens for the HTTP API, stored as hashes, with scopes.

Registered with the triage app through triage.models (which re-exports these names).
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_scopes() -> list[str]:
    return list(ApiToken.DEFAULT_SCOPES)


class ApiToken(models.Model):
    """A bearer token for the HTTP API. Only its sha256 is stored.

    Its scopes say which endpoints it may call (a token with the wrong scope gets a
    403 naming the missing one), so an integration that only pushes items cannot
    read them back, and a metrics scraper cannot touch items at all.
    """

    class Scope(models.TextChoices):
        INGEST = "ingest", "ingest: POST /api/items"
        READ = "read", "read: GET /api/items/<id>"
        EVENTS = "events", "events: GET /api/events"
        EXPORT = "export", "export: GET /api/export"
        METRICS = "metrics", "metrics: GET /api/metrics and the Prometheus /metrics"

    # What an integration does: push items, read them back, follow the events feed.
    # Export and metrics are asked for explicitly.
    DEFAULT_SCOPES = (Scope.INGEST, Scope.READ, Scope.EVENTS)

    name = models.CharField(max_length=100, unique=True)
    scopes = models.JSONField(
        default=default_scopes,
        help_text="What the token may call: ingest, read, events, export, metrics.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, name: str, scopes: Iterable[str] | None = None) -> tuple["ApiToken", str]:
        """Create a token; the plain value is returned once and never stored."""
        token = "trg_" + secrets.token_urlsafe(32)
        obj = cls.objects.create(
            name=name,
            scopes=cls.clean_scopes(cls.DEFAULT_SCOPES if scopes is None else scopes),
            token_hash=hash_token(token),
            prefix=token[:8],
        )
        return obj, token

    @classmethod
    def clean_scopes(cls, scopes: Iterable[str]) -> list[str]:
        """The scopes in a stable order, each once; an unknown one is a ValidationError."""
        wanted = {str(s).strip() for s in scopes}
        unknown = sorted(wanted - set(cls.Scope.values))
        if unknown:
            raise ValidationError(
                f"unknown scope(s) {', '.join(map(repr, unknown))}; "
                f"use {', '.join(cls.Scope.values)}"
            )
        return [s for s in cls.Scope.values if s in wanted]

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])

    @classmethod
    def authenticate(cls, plain: str) -> "ApiToken | None":
        """The active token whose value is `plain`, or None.

        The lookup is by the sha256 of the presented value, through the unique
        index. Timing can at most reveal how many leading characters of that
        *hash* matched a stored hash, which says nothing useful about any token
        (finding a value with a chosen hash prefix is a preimage search, and
        tokens carry 256 bits of randomness). The hashes are then compared once
        more with hmac.compare_digest, so the decision itself is constant-time.
        """
        presented = hash_token(plain)
        token = cls.objects.filter(token_hash=presented).first()
        if token is None or not hmac.compare_digest(token.token_hash, presented):
            return None
        return token if token.is_active else None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
